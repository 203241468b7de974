//! LFW verification protocol files (Huang et al., "Labeled Faces in the Wild", 2007;
//! <http://vis-www.cs.umass.edu/lfw/README.txt>).
//!
//! `pairs.txt` starts with `10 300` (folds, pairs of each kind per fold); each fold is 300
//! matched lines `name i j` followed by 300 mismatched lines `name1 i name2 j`.
//! `pairsDevTrain.txt` / `pairsDevTest.txt` start with a single number `n`: one set of `n`
//! matched then `n` mismatched lines. Image `i` of `name` is `name/name_{i:04}.jpg` under the
//! image root (`lfw/` or the aligned variants, which keep the tree).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::text::{lines, read_text, At};

/// One image of the LFW tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LfwImage {
    /// Person name (`Abel_Pacheco`).
    pub name: String,
    /// 1-based image number.
    pub number: u32,
}

impl LfwImage {
    /// Path relative to the image root: `name/name_0001.jpg`.
    pub fn relative_path(&self) -> PathBuf {
        PathBuf::from(&self.name).join(format!("{}_{:04}.jpg", self.name, self.number))
    }
}

/// One verification pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfwPair {
    /// First image.
    pub a: LfwImage,
    /// Second image.
    pub b: LfwImage,
    /// `true` for a matched (same person) pair.
    pub same: bool,
    /// 0-based fold.
    pub fold: usize,
}

/// A parsed pairs file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfwPairs {
    /// Number of folds (10 for `pairs.txt`, 1 for the development files).
    pub folds: usize,
    /// Matched pairs per fold (equal to the mismatched count).
    pub per_fold: usize,
    /// All pairs, fold by fold, matched before mismatched within a fold (file order).
    pub pairs: Vec<LfwPair>,
}

impl LfwPairs {
    /// Parses the text of a pairs file.
    ///
    /// # Errors
    /// A bad header, a matched line where a mismatched one is due (or the reverse), an image
    /// number that is not a positive integer, a mismatched pair naming the same person twice,
    /// or a line count that differs from the header's promise — each naming the line.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut it = lines(text);
        let header = it
            .next()
            .ok_or_else(|| DataError::parse(path, 1, "empty pairs file"))?;
        let at = At {
            path,
            line: header.number,
        };
        let h: Vec<&str> = header.text.split_whitespace().collect();
        let (folds, per_fold) = match h.as_slice() {
            [n] => (1, at.parse::<usize>(n, "pair count")?),
            [f, n] => (
                at.parse::<usize>(f, "fold count")?,
                at.parse::<usize>(n, "pairs per fold")?,
            ),
            _ => return Err(at.err("header must be `folds pairs_per_fold` or a single pair count")),
        };
        if folds == 0 || per_fold == 0 {
            return Err(at.err("the header promises no pairs"));
        }
        let number = |at: &At, t: &str| -> Result<u32> {
            match t.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(at.err(format!("image number must be a positive integer, found {t:?}"))),
            }
        };
        let total = folds * 2 * per_fold;
        let mut pairs = Vec::with_capacity(total.min(1 << 20));
        let mut last_line = header.number;
        for line in it {
            let at = At {
                path,
                line: line.number,
            };
            last_line = line.number;
            let k = pairs.len();
            if k >= total {
                return Err(at.err(format!("more lines than the header's {folds}×2×{per_fold} pairs")));
            }
            let fold = k / (2 * per_fold);
            let same = k % (2 * per_fold) < per_fold;
            let f: Vec<&str> = line.text.split_whitespace().collect();
            let pair = match (same, f.as_slice()) {
                (true, [name, i, j]) => LfwPair {
                    a: LfwImage { name: (*name).to_owned(), number: number(&at, i)? },
                    b: LfwImage { name: (*name).to_owned(), number: number(&at, j)? },
                    same,
                    fold,
                },
                (false, [n1, i, n2, j]) => {
                    if n1 == n2 {
                        return Err(at.err(format!("mismatched pair names {n1} twice")));
                    }
                    LfwPair {
                        a: LfwImage { name: (*n1).to_owned(), number: number(&at, i)? },
                        b: LfwImage { name: (*n2).to_owned(), number: number(&at, j)? },
                        same,
                        fold,
                    }
                }
                (true, _) => {
                    return Err(at.err(format!(
                        "fold {} expects a matched line `name i j` (pair {} of {per_fold}), found {} fields",
                        fold + 1,
                        k % (2 * per_fold) + 1,
                        f.len()
                    )))
                }
                (false, _) => {
                    return Err(at.err(format!(
                        "fold {} expects a mismatched line `name1 i name2 j` (pair {} of {per_fold}), found {} fields",
                        fold + 1,
                        k % (2 * per_fold) - per_fold + 1,
                        f.len()
                    )))
                }
            };
            pairs.push(pair);
        }
        if pairs.len() != total {
            return Err(DataError::parse(
                path,
                last_line,
                format!(
                    "the header promises {total} pairs but the file has {}",
                    pairs.len()
                ),
            ));
        }
        Ok(Self {
            folds,
            per_fold,
            pairs,
        })
    }

    /// Reads and parses a pairs file.
    ///
    /// # Errors
    /// As [`LfwPairs::parse`], or I/O.
    pub fn read(path: &Path) -> Result<Self> {
        Self::parse(&read_text(path)?, path)
    }

    /// The pairs of one fold (0-based).
    pub fn fold(&self, fold: usize) -> &[LfwPair] {
        let n = 2 * self.per_fold;
        fold.checked_mul(n)
            .and_then(|start| self.pairs.get(start..start.checked_add(n)?))
            .unwrap_or(&[])
    }

    /// Distinct images referenced by the pairs, in first-use order (what must be embedded).
    pub fn images(&self) -> Vec<LfwImage> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in &self.pairs {
            for im in [&p.a, &p.b] {
                if seen.insert(im) {
                    out.push(im.clone());
                }
            }
        }
        out
    }

    /// Checks that every referenced image exists under `root`; returns the missing paths.
    pub fn missing_images(&self, root: &Path) -> Vec<PathBuf> {
        self.images()
            .iter()
            .map(|i| root.join(i.relative_path()))
            .filter(|p| !p.is_file())
            .collect()
    }
}
