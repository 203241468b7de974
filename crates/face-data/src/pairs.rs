//! Verification pair lists: the file format the evaluation code reads, and demographic-balanced
//! list generation (equal genuine/impostor pairs per group, impostors within the group, as in
//! the balanced protocols of RFW and of the deployment talk on imbalanced face databases).
//!
//! File format (UTF-8, one pair per line, fields separated by a TAB, written `⇥` here):
//! ```text
//! # facekit pairs v1
//! group⇥label⇥path_a⇥path_b
//! male/asian⇥1⇥m.0abc/01.jpg⇥m.0abc/07.jpg
//! ```
//! `label` is 1 for the same identity, 0 otherwise; `group` may be empty; paths may contain
//! spaces but not tabs or line breaks. Lines starting with `#` are comments.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::text::{clip, read_text};

const HEADER: &str = "# facekit pairs v1";
const COLUMNS: &str = "group\tlabel\tpath_a\tpath_b";

/// One verification pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    /// Group name (e.g. `female/african`); empty when not grouped.
    pub group: String,
    /// Same identity.
    pub genuine: bool,
    /// First image path.
    pub a: String,
    /// Second image path.
    pub b: String,
}

/// A list of pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairList {
    /// The pairs, in file order.
    pub pairs: Vec<Pair>,
}

impl PairList {
    /// Parses the pair-list format.
    ///
    /// # Errors
    /// A line without 4 tab-separated fields, a label other than 0/1, or an empty path.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut pairs = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() || line.starts_with('#') || (pairs.is_empty() && line == COLUMNS) {
                continue;
            }
            let err = |m: String| DataError::parse(path, i + 1, m);
            let f: Vec<&str> = line.split('\t').collect();
            let [group, label, a, b] = f.as_slice() else {
                return Err(err(format!(
                    "expected 4 tab-separated fields (group, label, path_a, path_b), found {}: {:?}",
                    f.len(),
                    clip(line)
                )));
            };
            let genuine = match *label {
                "1" => true,
                "0" => false,
                other => return Err(err(format!("label must be 0 or 1, found {:?}", clip(other)))),
            };
            if a.is_empty() || b.is_empty() {
                return Err(err("empty image path".into()));
            }
            pairs.push(Pair {
                group: (*group).to_owned(),
                genuine,
                a: (*a).to_owned(),
                b: (*b).to_owned(),
            });
        }
        Ok(Self { pairs })
    }

    /// Reads a pair-list file.
    ///
    /// # Errors
    /// As [`PairList::parse`], or I/O.
    pub fn read(path: &Path) -> Result<Self> {
        Self::parse(&read_text(path)?, path)
    }

    /// Serialises to the pair-list format.
    ///
    /// # Errors
    /// A field containing a tab or line break (it could not be read back).
    pub fn to_text(&self) -> Result<String> {
        let mut out = format!("{HEADER}\n{COLUMNS}\n");
        for (i, p) in self.pairs.iter().enumerate() {
            for field in [&p.group, &p.a, &p.b] {
                if field.contains(['\t', '\n', '\r']) {
                    return Err(DataError::param(
                        "pairs",
                        format!("pair {i}: {field:?} contains a tab or line break"),
                    ));
                }
            }
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                p.group,
                u8::from(p.genuine),
                p.a,
                p.b
            ));
        }
        Ok(out)
    }

    /// Writes the list atomically (temporary file, then rename).
    ///
    /// # Errors
    /// As [`PairList::to_text`], or I/O.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(face_io::write_atomic(path, self.to_text()?.as_bytes())?)
    }

    /// Pairs per group: `(genuine, impostor)` counts.
    pub fn group_counts(&self) -> BTreeMap<&str, (usize, usize)> {
        let mut m: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for p in &self.pairs {
            let e = m.entry(p.group.as_str()).or_default();
            if p.genuine {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        m
    }
}

/// An image available for pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupedImage {
    /// Path written to the list.
    pub path: String,
    /// Identity.
    pub identity: u32,
    /// Demographic group (e.g. `female/asian`).
    pub group: String,
}

/// Builds a demographic-balanced list: for every group, `pairs_per_group` distinct pairs, half
/// genuine (two images of one identity of the group) and half impostor (two identities of the
/// group). Identities are drawn uniformly, then images uniformly, so prolific identities do not
/// dominate. Groups come out in sorted order; deterministic for a seed.
///
/// # Errors
/// An odd `pairs_per_group`, an identity listed in two groups, or a group that cannot supply
/// enough distinct genuine or impostor pairs (named, with what it has).
pub fn balanced_pairs(images: &[GroupedImage], pairs_per_group: usize, seed: u64) -> Result<PairList> {
    if pairs_per_group == 0 || !pairs_per_group.is_multiple_of(2) {
        return Err(DataError::param(
            "pairs_per_group",
            format!("{pairs_per_group} must be even and positive"),
        ));
    }
    let half = pairs_per_group / 2;
    // group → identity → image indices
    let mut groups: BTreeMap<&str, BTreeMap<u32, Vec<usize>>> = BTreeMap::new();
    let mut identity_group: std::collections::HashMap<u32, &str> = std::collections::HashMap::new();
    for (i, im) in images.iter().enumerate() {
        if let Some(g) = identity_group.insert(im.identity, im.group.as_str()) {
            if g != im.group {
                return Err(DataError::Inconsistent(format!(
                    "identity {} is in groups {g} and {}",
                    im.identity, im.group
                )));
            }
        }
        groups
            .entry(im.group.as_str())
            .or_default()
            .entry(im.identity)
            .or_default()
            .push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(groups.len() * pairs_per_group);
    for (group, ids) in &groups {
        let ids: Vec<&Vec<usize>> = ids.values().collect();
        let multi: Vec<&Vec<usize>> = ids.iter().copied().filter(|v| v.len() >= 2).collect();
        let genuine_possible: usize = multi.iter().map(|v| v.len() * (v.len() - 1) / 2).sum();
        if genuine_possible < half {
            return Err(DataError::NotEnough(format!(
                "group {group:?}: {half} genuine pairs wanted, only {genuine_possible} exist ({} identities with ≥ 2 images)",
                multi.len()
            )));
        }
        let total: usize = ids.iter().map(|v| v.len()).sum();
        let same: usize = ids
            .iter()
            .map(|v| v.len() * (v.len().saturating_sub(1)) / 2)
            .sum();
        let impostor_possible = total * total.saturating_sub(1) / 2 - same;
        if impostor_possible < half {
            return Err(DataError::NotEnough(format!(
                "group {group:?}: {half} impostor pairs wanted, only {impostor_possible} exist ({} identities)",
                ids.len()
            )));
        }
        let mut seen: HashSet<(usize, usize)> = HashSet::with_capacity(pairs_per_group);
        let key = |x: usize, y: usize| (x.min(y), x.max(y));
        // Rejection sampling; when the request is close to all possible pairs, enumerate instead.
        let draw = |rng: &mut ChaCha8Rng,
                    genuine: bool,
                    seen: &mut HashSet<(usize, usize)>|
         -> Vec<(usize, usize)> {
            let possible = if genuine {
                genuine_possible
            } else {
                impostor_possible
            };
            let mut chosen = Vec::with_capacity(half);
            if half * 4 >= possible {
                let mut all = Vec::with_capacity(possible);
                for (ia, a) in ids.iter().enumerate() {
                    if genuine {
                        for x in 0..a.len() {
                            for y in x + 1..a.len() {
                                all.push(key(a[x], a[y]));
                            }
                        }
                    } else {
                        for b in &ids[ia + 1..] {
                            for &x in a.iter() {
                                for &y in b.iter() {
                                    all.push(key(x, y));
                                }
                            }
                        }
                    }
                }
                all.shuffle(rng);
                all.truncate(half);
                seen.extend(all.iter().copied());
                return all;
            }
            while chosen.len() < half {
                let pair = if genuine {
                    let v = multi[rng.gen_range(0..multi.len())];
                    let s = v.choose_multiple(rng, 2).copied().collect::<Vec<_>>();
                    key(s[0], s[1])
                } else {
                    let s = rand::seq::index::sample(rng, ids.len(), 2);
                    let (va, vb) = (ids[s.index(0)], ids[s.index(1)]);
                    key(va[rng.gen_range(0..va.len())], vb[rng.gen_range(0..vb.len())])
                };
                if seen.insert(pair) {
                    chosen.push(pair);
                }
            }
            chosen
        };
        for genuine in [true, false] {
            for (x, y) in draw(&mut rng, genuine, &mut seen) {
                out.push(Pair {
                    group: (*group).to_owned(),
                    genuine,
                    a: images[x].path.clone(),
                    b: images[y].path.clone(),
                });
            }
        }
    }
    Ok(PairList { pairs: out })
}
