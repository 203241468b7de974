//! Lexical analysis of caption corpora (LAION-Face style): what the words of image–caption
//! pairs tell a contrastive model about *who* is in a picture.
//!
//! A face model pretrained on captions (FaRL on LAION-Face) only sees identity through the
//! names in the captions. This module measures that signal: term and n-gram frequencies, the
//! share of captions naming a person from a given list and how many captions each named
//! identity gets, identity-bearing patterns ("photo of NAME", "NAME at …", "NAME's …"),
//! gender / age / face-attribute words, and the writing scripts of the corpus.
//!
//! Tokens are Unicode words (UAX #29) of the lower-cased caption; a trailing possessive `'s`
//! (or `’s`) is split off the word and remembered. N-grams run over all tokens; term counts
//! leave out stop words. Counting is exact while the number of distinct terms stays under
//! [`LexiconConfig::max_terms`]; beyond that the rarest entries are pruned and the report
//! states the largest possible undercount ([`LexiconReport::count_error_bound`]).

mod source;
pub mod words;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use unicode_script::{Script, UnicodeScript};
use unicode_segmentation::UnicodeSegmentation;

pub use source::{BadRowExample, BadRowKind, BadRows, CaptionFormat, CaptionReader};

use crate::error::{DataError, Result};

/// Settings of the analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct LexiconConfig {
    /// Longest n-gram counted (1 = terms only; 3 gives bigrams and trigrams too).
    pub max_ngram: usize,
    /// Entries kept in each report table.
    pub top: usize,
    /// Words left out of term counts.
    pub stop_words: Vec<String>,
    /// Person names to look for (any case; multi-word names match as a whole).
    pub names: Vec<String>,
    /// Gender words.
    pub gender_words: Vec<String>,
    /// Age words.
    pub age_words: Vec<String>,
    /// Face-attribute words.
    pub face_words: Vec<String>,
    /// Distinct entries per count table before pruning the rarest.
    pub max_terms: usize,
}

impl Default for LexiconConfig {
    fn default() -> Self {
        let own = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect();
        Self {
            max_ngram: 3,
            top: 50,
            stop_words: own(words::STOP_WORDS),
            names: Vec::new(),
            gender_words: own(words::GENDER_WORDS),
            age_words: own(words::AGE_WORDS),
            face_words: own(words::FACE_ATTRIBUTE_WORDS),
            max_terms: 4_000_000,
        }
    }
}

impl LexiconConfig {
    /// Reads a name list: one name per line, `#` comments and blank lines ignored.
    ///
    /// # Errors
    /// I/O or non-UTF-8 text.
    pub fn read_names(path: &Path) -> Result<Vec<String>> {
        let text = crate::text::read_text(path)?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect())
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// `max_ngram` outside 1–8, `top == 0`, or `max_terms < 1000`.
    pub fn validate(&self) -> Result<()> {
        if !(1..=8).contains(&self.max_ngram) || self.top == 0 || self.max_terms < 1000 {
            return Err(DataError::param(
                "lexicon",
                format!(
                    "max_ngram {} (1–8), top {} (> 0), max_terms {} (≥ 1000)",
                    self.max_ngram, self.top, self.max_terms
                ),
            ));
        }
        Ok(())
    }
}

/// Lower-cases `caption` and writes its word tokens into `norm`, joined by single spaces;
/// `spans` receives each token's byte range in `norm` and whether a possessive `'s` was split
/// off it.
pub fn tokenize(caption: &str, lower: &mut String, norm: &mut String, spans: &mut Vec<(usize, usize, bool)>) {
    lower.clear();
    norm.clear();
    spans.clear();
    if caption.is_ascii() {
        lower.push_str(caption);
        lower.make_ascii_lowercase();
    } else {
        lower.extend(caption.chars().flat_map(char::to_lowercase));
    }
    for word in lower.unicode_words() {
        let (word, possessive) = match word.strip_suffix("'s").or_else(|| word.strip_suffix("’s")) {
            Some(base) if !base.is_empty() => (base, true),
            _ => (word, false),
        };
        if !norm.is_empty() {
            norm.push(' ');
        }
        let start = norm.len();
        norm.push_str(word);
        spans.push((start, norm.len(), possessive));
    }
}

/// What a special word is.
#[derive(Debug, Clone, Copy, Default)]
struct WordInfo {
    stop: bool,
    depiction: bool,
    event: bool,
    /// (category, index within the category's list) for attribute words.
    attribute: Option<(u8, u16)>,
}

const CATEGORIES: [&str; 3] = ["gender", "age", "face_attribute"];

/// Counts of one thread's share of a batch, merged into the corpus totals.
#[derive(Debug, Default, Clone)]
struct Tally {
    captions: u64,
    tokens: u64,
    /// `grams[0]` = terms without stop words, `grams[n-1]` = n-grams.
    grams: Vec<FxHashMap<Box<str>, u64>>,
    name_captions: Vec<u64>,
    captions_with_name: u64,
    depiction: u64,
    event: u64,
    possessive: u64,
    captions_with_pattern: u64,
    attribute_words: [Vec<u64>; 3],
    attribute_captions: [u64; 3],
    scripts: FxHashMap<&'static str, u64>,
}

fn bump(map: &mut FxHashMap<Box<str>, u64>, key: &str, by: u64) {
    match map.get_mut(key) {
        Some(c) => *c += by,
        None => {
            map.insert(key.into(), by);
        }
    }
}

impl Tally {
    fn new(lex: &Lexicon) -> Self {
        Self {
            grams: vec![FxHashMap::default(); lex.config.max_ngram],
            name_captions: vec![0; lex.names.len()],
            attribute_words: [0, 1, 2].map(|c| vec![0; lex.attribute_lists[c].len()]),
            ..Default::default()
        }
    }

    fn merge(&mut self, other: Tally) {
        self.captions += other.captions;
        self.tokens += other.tokens;
        for (mine, theirs) in self.grams.iter_mut().zip(other.grams) {
            if mine.len() < theirs.len() {
                let small = std::mem::replace(mine, theirs);
                for (k, v) in small {
                    *mine.entry(k).or_insert(0) += v;
                }
            } else {
                for (k, v) in theirs {
                    *mine.entry(k).or_insert(0) += v;
                }
            }
        }
        for (a, b) in self.name_captions.iter_mut().zip(other.name_captions) {
            *a += b;
        }
        self.captions_with_name += other.captions_with_name;
        self.depiction += other.depiction;
        self.event += other.event;
        self.possessive += other.possessive;
        self.captions_with_pattern += other.captions_with_pattern;
        for c in 0..3 {
            for (a, b) in self.attribute_words[c].iter_mut().zip(&other.attribute_words[c]) {
                *a += b;
            }
            self.attribute_captions[c] += other.attribute_captions[c];
        }
        for (k, v) in other.scripts {
            *self.scripts.entry(k).or_insert(0) += v;
        }
    }
}

/// Scratch buffers reused across the captions of one thread.
#[derive(Default)]
struct Scratch {
    lower: String,
    norm: String,
    spans: Vec<(usize, usize, bool)>,
    matched: Vec<u32>,
    scripts: Vec<(Script, u32)>,
}

/// The dominant writing script of a caption (most letters), or `None` without letters.
fn dominant_script(caption: &str, counts: &mut Vec<(Script, u32)>) -> Option<Script> {
    if caption.is_ascii() {
        return caption
            .bytes()
            .any(|b| b.is_ascii_alphabetic())
            .then_some(Script::Latin);
    }
    counts.clear();
    for ch in caption.chars() {
        let s = ch.script();
        if matches!(s, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        match counts.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    counts.iter().max_by_key(|(_, n)| *n).map(|(s, _)| *s)
}

/// The corpus analysis: feed batches of captions, then ask for the report.
///
/// # Examples
/// ```
/// use face_data::captions::{Lexicon, LexiconConfig};
/// let config = LexiconConfig { names: vec!["Ada Lovelace".into()], ..Default::default() };
/// let mut lex = Lexicon::new(config).unwrap();
/// lex.add_batch(&["A photo of Ada Lovelace at the library".into(), "a smiling woman".into()]);
/// let r = lex.report(Default::default());
/// assert_eq!(r.names.captions_with_name, 1);
/// assert_eq!(r.patterns.depiction_of_name, 1);
/// assert_eq!(r.patterns.name_at_event, 1);
/// ```
pub struct Lexicon {
    config: LexiconConfig,
    words: FxHashMap<Box<str>, WordInfo>,
    attribute_lists: [Vec<String>; 3],
    names: Vec<String>,
    /// Normalised name, its token count.
    name_norms: Vec<(String, usize)>,
    /// First token → names starting with it, longest first.
    name_index: FxHashMap<Box<str>, Vec<u32>>,
    total: Tally,
    /// Per count table, the sum of the pruning thresholds so far.
    pruned: Vec<u64>,
}

impl Lexicon {
    /// Prepares the word tables and the name index.
    ///
    /// # Errors
    /// Invalid settings (see [`LexiconConfig::validate`]).
    pub fn new(config: LexiconConfig) -> Result<Self> {
        config.validate()?;
        let mut words: FxHashMap<Box<str>, WordInfo> = FxHashMap::default();
        for w in &config.stop_words {
            words.entry(w.to_lowercase().into()).or_default().stop = true;
        }
        for w in words::DEPICTION_WORDS {
            words.entry((*w).into()).or_default().depiction = true;
        }
        for w in words::EVENT_WORDS {
            words.entry((*w).into()).or_default().event = true;
        }
        let attribute_lists = [
            config.gender_words.clone(),
            config.age_words.clone(),
            config.face_words.clone(),
        ];
        for (c, list) in attribute_lists.iter().enumerate() {
            for (i, w) in list.iter().enumerate() {
                words.entry(w.to_lowercase().into()).or_default().attribute = Some((c as u8, i as u16));
            }
        }
        let mut s = Scratch::default();
        let mut names = Vec::new();
        let mut name_norms = Vec::new();
        let mut name_index: FxHashMap<Box<str>, Vec<u32>> = FxHashMap::default();
        for name in &config.names {
            tokenize(name, &mut s.lower, &mut s.norm, &mut s.spans);
            if s.spans.is_empty() || name_norms.iter().any(|(n, _)| *n == s.norm) {
                continue;
            }
            let first = &s.norm[s.spans[0].0..s.spans[0].1];
            name_index
                .entry(first.into())
                .or_default()
                .push(names.len() as u32);
            names.push(name.clone());
            name_norms.push((s.norm.clone(), s.spans.len()));
        }
        for ids in name_index.values_mut() {
            ids.sort_by_key(|&i| std::cmp::Reverse(name_norms[i as usize].1));
        }
        let config_max_ngram = config.max_ngram;
        let mut lex = Self {
            config,
            words,
            attribute_lists,
            names,
            name_norms,
            name_index,
            total: Tally::default(),
            pruned: vec![0; config_max_ngram],
        };
        lex.total = Tally::new(&lex);
        Ok(lex)
    }

    fn caption(&self, caption: &str, s: &mut Scratch, t: &mut Tally) {
        tokenize(caption, &mut s.lower, &mut s.norm, &mut s.spans);
        t.captions += 1;
        t.tokens += s.spans.len() as u64;
        if let Some(script) = dominant_script(caption, &mut s.scripts) {
            *t.scripts.entry(script.full_name()).or_insert(0) += 1;
        } else {
            *t.scripts.entry("None").or_insert(0) += 1;
        }
        let norm = s.norm.as_str();
        let spans = &s.spans;
        let n = spans.len();
        let mut seen_category = [false; 3];
        for (i, &(a, b, _)) in spans.iter().enumerate() {
            let tok = &norm[a..b];
            let info = self.words.get(tok).copied().unwrap_or_default();
            if !info.stop {
                bump(&mut t.grams[0], tok, 1);
            }
            if let Some((c, w)) = info.attribute {
                t.attribute_words[c as usize][w as usize] += 1;
                seen_category[c as usize] = true;
            }
            for g in 2..=self.config.max_ngram.min(n - i) {
                bump(&mut t.grams[g - 1], &norm[a..spans[i + g - 1].1], 1);
            }
        }
        for (c, seen) in seen_category.iter().enumerate() {
            t.attribute_captions[c] += u64::from(*seen);
        }
        if self.names.is_empty() {
            return;
        }
        s.matched.clear();
        let mut pattern = false;
        let mut i = 0;
        while i < n {
            let tok = &norm[spans[i].0..spans[i].1];
            let hit = self.name_index.get(tok).and_then(|ids| {
                ids.iter().copied().find(|&id| {
                    let (name, len) = &self.name_norms[id as usize];
                    i + len <= n && norm[spans[i].0..spans[i + len - 1].1] == *name
                })
            });
            let Some(id) = hit else {
                i += 1;
                continue;
            };
            let len = self.name_norms[id as usize].1;
            let end = i + len;
            if !s.matched.contains(&id) {
                s.matched.push(id);
            }
            let word = |k: usize| {
                self.words
                    .get(&norm[spans[k].0..spans[k].1])
                    .copied()
                    .unwrap_or_default()
            };
            if i >= 2 && &norm[spans[i - 1].0..spans[i - 1].1] == "of" && word(i - 2).depiction {
                t.depiction += 1;
                pattern = true;
            }
            if end < n && word(end).event {
                t.event += 1;
                pattern = true;
            }
            if spans[end - 1].2 {
                t.possessive += 1;
                pattern = true;
            }
            i = end;
        }
        for &id in &s.matched {
            t.name_captions[id as usize] += 1;
        }
        t.captions_with_name += u64::from(!s.matched.is_empty());
        t.captions_with_pattern += u64::from(pattern);
    }

    /// Analyses a batch of captions on all cores and adds it to the totals.
    pub fn add_batch(&mut self, captions: &[String]) {
        let min_len = (captions.len() / (4 * rayon::current_num_threads().max(1))).max(512);
        let this = &*self;
        let tally = captions
            .par_iter()
            .with_min_len(min_len)
            .fold(
                || (Scratch::default(), Tally::new(this)),
                |(mut s, mut t), c| {
                    this.caption(c, &mut s, &mut t);
                    (s, t)
                },
            )
            .map(|(_, t)| t)
            .reduce(
                || Tally::new(this),
                |mut a, b| {
                    a.merge(b);
                    a
                },
            );
        self.total.merge(tally);
        self.prune();
    }

    /// Keeps every count table under `max_terms` entries by dropping the rarest. An entry
    /// dropped with count ≤ t may come back and be dropped again later, so a table's
    /// undercount is bounded by the *sum* of its pruning thresholds; the report gives the
    /// largest such sum over the tables.
    fn prune(&mut self) {
        let cap = self.config.max_terms;
        for (map, bound) in self.total.grams.iter_mut().zip(&mut self.pruned) {
            if map.len() <= cap {
                continue;
            }
            let mut counts: Vec<u64> = map.values().copied().collect();
            let keep = cap / 2;
            let (_, threshold, _) = counts.select_nth_unstable_by(keep, |a, b| b.cmp(a));
            let threshold = *threshold;
            map.retain(|_, c| *c > threshold);
            *bound += threshold;
        }
    }

    /// Reads and analyses whole files, `batch` captions at a time; `progress` gets the running
    /// row count after each batch.
    ///
    /// # Errors
    /// A file-level problem of any source (see [`CaptionReader::open`]); bad rows are counted.
    pub fn add_files(
        &mut self,
        sources: &[(PathBuf, CaptionFormat)],
        column: &str,
        batch: usize,
        bad: &mut BadRows,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<FileSummary>> {
        let mut rows = 0;
        let mut out = Vec::with_capacity(sources.len());
        for (path, format) in sources {
            let mut reader = CaptionReader::open(path, *format, column)?;
            let mut captions = 0;
            while let Some(b) = reader.next_batch(batch.max(1), bad)? {
                captions += b.len() as u64;
                self.add_batch(&b);
                progress(rows + reader.rows());
            }
            rows += reader.rows();
            out.push(FileSummary {
                path: path.clone(),
                rows: reader.rows(),
                captions,
            });
        }
        Ok(out)
    }

    /// The report of everything added so far.
    pub fn report(&self, bad_rows: BadRows) -> LexiconReport {
        let top = self.config.top;
        let t = &self.total;
        let table = |map: &FxHashMap<Box<str>, u64>| top_k(map.iter().map(|(k, v)| (k.as_ref(), *v)), top);
        let named: Vec<(usize, u64)> = t
            .name_captions
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, c)| *c > 0)
            .collect();
        let mut histogram = [0u64; 5];
        for &(_, c) in &named {
            histogram[match c {
                1 => 0,
                2..=4 => 1,
                5..=9 => 2,
                10..=99 => 3,
                _ => 4,
            }] += 1;
        }
        let names = NameReport {
            list_size: self.names.len(),
            captions_with_name: t.captions_with_name,
            share: if t.captions > 0 {
                t.captions_with_name as f64 / t.captions as f64
            } else {
                0.0
            },
            distinct_identities: named.len(),
            mean_captions_per_identity: if named.is_empty() {
                0.0
            } else {
                named.iter().map(|(_, c)| *c as f64).sum::<f64>() / named.len() as f64
            },
            captions_per_identity: ["1", "2–4", "5–9", "10–99", "100+"]
                .iter()
                .zip(histogram)
                .map(|(b, n)| TermCount {
                    term: (*b).into(),
                    count: n,
                })
                .collect(),
            top: top_k(named.iter().map(|&(i, c)| (self.names[i].as_str(), c)), top),
        };
        let attributes = (0..3)
            .map(|c| AttributeReport {
                category: CATEGORIES[c].into(),
                captions: t.attribute_captions[c],
                occurrences: t.attribute_words[c].iter().sum(),
                words: top_k(
                    self.attribute_lists[c]
                        .iter()
                        .zip(&t.attribute_words[c])
                        .filter(|(_, n)| **n > 0)
                        .map(|(w, n)| (w.as_str(), *n)),
                    usize::MAX,
                ),
            })
            .collect();
        LexiconReport {
            captions: t.captions,
            bad_rows,
            tokens: t.tokens,
            distinct_terms: t.grams[0].len() as u64,
            top_terms: table(&t.grams[0]),
            top_ngrams: (2..=self.config.max_ngram)
                .map(|n| NgramTable {
                    n,
                    top: table(&t.grams[n - 1]),
                })
                .collect(),
            names,
            patterns: PatternCounts {
                depiction_of_name: t.depiction,
                name_at_event: t.event,
                name_possessive: t.possessive,
                captions_with_pattern: t.captions_with_pattern,
            },
            attributes,
            scripts: top_k(t.scripts.iter().map(|(k, v)| (*k, *v)), usize::MAX),
            count_error_bound: self.pruned.iter().copied().max().unwrap_or(0),
            files: Vec::new(),
        }
    }
}

/// The `k` largest counts, ties by term.
fn top_k<'a>(items: impl Iterator<Item = (&'a str, u64)>, k: usize) -> Vec<TermCount> {
    let mut v: Vec<(&str, u64)> = items.collect();
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    v.truncate(k);
    v.into_iter()
        .map(|(t, c)| TermCount {
            term: t.to_owned(),
            count: c,
        })
        .collect()
}

/// A term and its count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TermCount {
    /// The term (words joined by single spaces).
    pub term: String,
    /// Occurrences (or captions, where stated).
    pub count: u64,
}

/// Top n-grams of one length.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NgramTable {
    /// Words per n-gram.
    pub n: usize,
    /// The most frequent ones.
    pub top: Vec<TermCount>,
}

/// Who is named.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NameReport {
    /// Names in the list (after removing duplicates).
    pub list_size: usize,
    /// Captions naming at least one listed person.
    pub captions_with_name: u64,
    /// `captions_with_name / captions`.
    pub share: f64,
    /// Listed names that occur at least once — the identities a contrastive model could learn.
    pub distinct_identities: usize,
    /// Mean captions per occurring identity.
    pub mean_captions_per_identity: f64,
    /// Occurring identities by their number of captions (1, 2–4, 5–9, 10–99, 100+).
    pub captions_per_identity: Vec<TermCount>,
    /// Names with the most captions (count = captions).
    pub top: Vec<TermCount>,
}

/// Identity-bearing patterns, counted per name occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PatternCounts {
    /// "photo/picture/portrait/… of NAME".
    pub depiction_of_name: u64,
    /// "NAME at/attends/arrives/poses/… ".
    pub name_at_event: u64,
    /// "NAME's …".
    pub name_possessive: u64,
    /// Captions with at least one of the patterns.
    pub captions_with_pattern: u64,
}

/// Words of one attribute category.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttributeReport {
    /// `gender`, `age` or `face_attribute`.
    pub category: String,
    /// Captions with at least one word of the category.
    pub captions: u64,
    /// Occurrences of the category's words.
    pub occurrences: u64,
    /// Occurrences per word (only words that occur).
    pub words: Vec<TermCount>,
}

/// One input file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileSummary {
    /// Path.
    pub path: PathBuf,
    /// Data rows read.
    pub rows: u64,
    /// Captions analysed.
    pub captions: u64,
}

/// The analysis result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LexiconReport {
    /// Input files (filled by [`analyze_files`]).
    pub files: Vec<FileSummary>,
    /// Captions analysed.
    pub captions: u64,
    /// Rows without a usable caption.
    pub bad_rows: BadRows,
    /// Word tokens, stop words included.
    pub tokens: u64,
    /// Distinct non-stop terms.
    pub distinct_terms: u64,
    /// Most frequent non-stop terms.
    pub top_terms: Vec<TermCount>,
    /// Most frequent n-grams, n = 2…max_ngram.
    pub top_ngrams: Vec<NgramTable>,
    /// Named identities.
    pub names: NameReport,
    /// Identity-bearing patterns.
    pub patterns: PatternCounts,
    /// Gender, age and face-attribute words.
    pub attributes: Vec<AttributeReport>,
    /// Captions per dominant writing script (`None`: no letters).
    pub scripts: Vec<TermCount>,
    /// 0 when every count is exact; otherwise the largest count any entry may be missing
    /// after pruning rare entries to bound memory.
    pub count_error_bound: u64,
}

impl LexiconReport {
    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} captions ({} bad rows), {} tokens, {} distinct terms{}\n",
            self.captions,
            self.bad_rows.total(),
            self.tokens,
            self.distinct_terms,
            if self.count_error_bound > 0 {
                format!(" (counts may be low by ≤ {})", self.count_error_bound)
            } else {
                String::new()
            }
        );
        let terms: Vec<&str> = self.top_terms.iter().take(10).map(|t| t.term.as_str()).collect();
        s += &format!("top terms: {}\n", terms.join(", "));
        s += &format!(
            "captions naming a listed person: {} ({:.2} %), {} distinct identities, {:.1} captions each on average\n",
            self.names.captions_with_name,
            100.0 * self.names.share,
            self.names.distinct_identities,
            self.names.mean_captions_per_identity
        );
        s += &format!(
            "patterns: 'photo of NAME' {}, 'NAME at …' {}, \"NAME's\" {}\n",
            self.patterns.depiction_of_name, self.patterns.name_at_event, self.patterns.name_possessive
        );
        for a in &self.attributes {
            s += &format!(
                "{} words: in {} captions ({} occurrences)\n",
                a.category, a.captions, a.occurrences
            );
        }
        let scripts: Vec<String> = self
            .scripts
            .iter()
            .take(5)
            .map(|t| format!("{} {}", t.term, t.count))
            .collect();
        s += &format!("scripts: {}\n", scripts.join(", "));
        s
    }

    /// Writes `report.json`, `top_terms.svg` and `top_names.svg` into `dir`.
    ///
    /// # Errors
    /// I/O or a plotting failure.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let json =
            serde_json::to_string_pretty(self).map_err(|e| DataError::param("report", e.to_string()))?;
        face_io::write_atomic(&dir.join("report.json"), json.as_bytes())?;
        bar_chart(&dir.join("top_terms.svg"), "Most frequent terms", &self.top_terms)?;
        bar_chart(
            &dir.join("top_names.svg"),
            "Most captioned names",
            &self.names.top,
        )
    }
}

/// A horizontal bar chart of term counts as SVG.
///
/// # Errors
/// I/O or a plotting failure.
pub fn bar_chart(path: &Path, title: &str, terms: &[TermCount]) -> Result<()> {
    use plotters::prelude::*;
    let terms = &terms[..terms.len().min(30)];
    let height = 80 + 22 * terms.len().max(1) as u32;
    let plot = |path: &Path| -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (800, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let max = terms.iter().map(|t| t.count).max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(220)
            .build_cartesian_2d(0u64..max + max / 10 + 1, (0..terms.len().max(1)).into_segmented())?;
        // Most frequent at the top: row 0 is drawn lowest.
        let n = terms.len();
        let labels: Vec<String> = terms.iter().rev().map(|t| t.term.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n.max(1))
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        chart.draw_series(
            Histogram::horizontal(&chart)
                .style(BLUE.mix(0.6).filled())
                .margin(3)
                .data(terms.iter().enumerate().map(|(i, t)| (n - 1 - i, t.count))),
        )?;
        root.present()?;
        Ok(())
    };
    plot(path).map_err(|e| DataError::param("plot", format!("{}: {e}", path.display())))
}

/// Analyses files in one call: the format of each comes from its extension.
///
/// # Errors
/// An unknown extension, or as [`Lexicon::add_files`].
pub fn analyze_files(
    paths: &[PathBuf],
    column: &str,
    config: LexiconConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<LexiconReport> {
    let sources = paths
        .iter()
        .map(|p| {
            CaptionFormat::from_path(p)
                .map(|f| (p.clone(), f))
                .ok_or_else(|| {
                    DataError::param(
                        "input",
                        format!(
                            "{}: unknown caption file type (csv, tsv, jsonl, parquet)",
                            p.display()
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut lex = Lexicon::new(config)?;
    let mut bad = BadRows::default();
    let files = lex.add_files(&sources, column, 1 << 18, &mut bad, progress)?;
    let mut report = lex.report(bad);
    report.files = files;
    Ok(report)
}
