//! Per-pair score files, so models can be compared pair by pair (insightface's IJB scripts
//! save theirs too).
//!
//! `scores.tsv` has a header line and one row per pair, in the protocol's pair order:
//!
//! | column | meaning |
//! |---|---|
//! | `a`, `b` | the two ids (image paths, or template ids for IJB) |
//! | `group` | the pair's group (empty when the protocol has none) |
//! | `label` | `1` genuine (same person), `0` impostor |
//! | `score` | the similarity; empty when a side is missing |
//! | `missing` | `-` none, `a`, `b` or `ab`: the side(s) without an embedding (failure to enrol) |
//!
//! IJB-sized protocols (millions of pairs) write `scores.npy` instead: one `float32` per pair in
//! the order of the protocol's pair file, `NaN` where a side is missing, with `scores_pairs.npy`
//! beside it: one `int64` row `[template a, template b, label]` per pair, in the same order.

use std::fmt::Write;
use std::path::Path;

use crate::error::Result;

/// One row of a score file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairScore<'a> {
    /// First id.
    pub a: &'a str,
    /// Second id.
    pub b: &'a str,
    /// Group (empty for none).
    pub group: &'a str,
    /// Same person.
    pub genuine: bool,
    /// The score (`None` when a side is missing).
    pub score: Option<f64>,
    /// First side missing.
    pub missing_a: bool,
    /// Second side missing.
    pub missing_b: bool,
}

/// The outcome of scoring one id pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Cosine similarity; `None` when a side has no embedding.
    pub score: Option<f64>,
    /// The first id has no embedding.
    pub missing_a: bool,
    /// The second id has no embedding.
    pub missing_b: bool,
}

/// Scores id pairs on `embeddings`: each pair's cosine, or `None` with the side(s) that have no
/// row (a failure to enrol, for [`crate::enrol::apply_policy`]).
pub fn score_id_pairs<'a>(
    embeddings: &crate::Embeddings,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Scored> {
    pairs
        .into_iter()
        .map(|(a, b)| {
            let (ia, ib) = (embeddings.position(a), embeddings.position(b));
            Scored {
                score: ia.zip(ib).map(|(x, y)| embeddings.cosine(x, y)),
                missing_a: ia.is_none(),
                missing_b: ib.is_none(),
            }
        })
        .collect()
}

/// The header of `scores.tsv`.
pub const SCORES_TSV_HEADER: &str = "a\tb\tgroup\tlabel\tscore\tmissing";

/// The text of `scores.tsv` (header, then one row per pair). Tabs and line breaks inside ids are
/// replaced by spaces so every row keeps six columns.
pub fn scores_tsv<'a>(rows: impl IntoIterator<Item = PairScore<'a>>) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let mut out = String::from(SCORES_TSV_HEADER);
    out.push('\n');
    for r in rows {
        let missing = match (r.missing_a, r.missing_b) {
            (false, false) => "-",
            (true, false) => "a",
            (false, true) => "b",
            (true, true) => "ab",
        };
        let score = r.score.map_or(String::new(), |s| format!("{s}"));
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{score}\t{missing}",
            clean(r.a),
            clean(r.b),
            clean(r.group),
            u8::from(r.genuine)
        );
    }
    out
}

/// Writes `scores.tsv` atomically.
///
/// # Errors
/// I/O failure.
pub fn write_scores_tsv<'a>(path: &Path, rows: impl IntoIterator<Item = PairScore<'a>>) -> Result<()> {
    Ok(face_io::write_atomic(path, scores_tsv(rows).as_bytes())?)
}

/// Writes `scores.npy` (one `float32` per pair, `NaN` where a side is missing) and, beside it,
/// `scores_pairs.npy` (`int64` rows `[a, b, label]`).
///
/// # Errors
/// I/O failure, or `scores` and `pairs` of different lengths.
pub fn write_scores_npy(dir: &Path, scores: &[Option<f32>], pairs: &[(i64, i64, bool)]) -> Result<()> {
    if scores.len() != pairs.len() {
        return Err(crate::EvalError::Inconsistent(format!(
            "{} scores for {} pairs",
            scores.len(),
            pairs.len()
        )));
    }
    let ids: Vec<i64> = pairs.iter().flat_map(|&(a, b, g)| [a, b, i64::from(g)]).collect();
    crate::write_npy_i64(&dir.join("scores_pairs.npy"), pairs.len(), 3, &ids)?;
    let data: Vec<f32> = scores.iter().map(|s| s.unwrap_or(f32::NAN)).collect();
    crate::write_npy_f32(&dir.join("scores.npy"), data.len(), 1, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_pairs_score_or_name_the_missing_side() {
        let e = crate::Embeddings::new(vec!["a".into(), "b".into()], 2, vec![1.0, 0.0, 0.6, 0.8]).unwrap();
        let s = score_id_pairs(&e, [("a", "b"), ("a", "z"), ("y", "z")]);
        assert!((s[0].score.unwrap() - 0.6).abs() < 1e-6);
        assert_eq!((s[1].score, s[1].missing_a, s[1].missing_b), (None, false, true));
        assert_eq!((s[2].missing_a, s[2].missing_b), (true, true));
    }

    #[test]
    fn rows_keep_six_columns_and_mark_missing_sides() {
        let text = scores_tsv([
            PairScore {
                a: "x/1.jpg",
                b: "x/2.jpg",
                group: "",
                genuine: true,
                score: Some(0.5),
                missing_a: false,
                missing_b: false,
            },
            PairScore {
                a: "odd\tname.jpg",
                b: "y.jpg",
                group: "cross",
                genuine: false,
                score: None,
                missing_a: false,
                missing_b: true,
            },
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], SCORES_TSV_HEADER);
        assert_eq!(lines[1], "x/1.jpg\tx/2.jpg\t\t1\t0.5\t-");
        assert_eq!(lines[2], "odd name.jpg\ty.jpg\tcross\t0\t\tb");
        assert!(lines.iter().all(|l| l.split('\t').count() == 6));
    }
}
