//! CelebA attribute-paired accuracy: for each attribute, the pairs where both
//! images have it, and the verification accuracy at fixed similarity thresholds
//! (genuine accepted when `score > t`, impostor rejected when `score ≤ t`).

use face_data::formats::celeba::CelebaAttributes;
use face_metrics::threshold_accuracy;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// The thresholds of the usual table.
pub const DEFAULT_THRESHOLDS: [f64; 3] = [0.6, 0.7, 0.8];

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeRow {
    /// Attribute name (`"all"` for every pair).
    pub attribute: String,
    /// Pairs where both images have the attribute.
    pub pairs: usize,
    /// Of which genuine.
    pub genuine: usize,
    /// Of which impostor.
    pub impostor: usize,
    /// `(threshold, accuracy)`; accuracy is `None` when no pair qualifies.
    pub accuracy: Vec<(f64, Option<f64>)>,
}

/// A pair of CelebA image names with its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPair {
    /// First image file name (as in `list_attr_celeba.txt`).
    pub a: String,
    /// Second image file name.
    pub b: String,
    /// Same identity.
    pub genuine: bool,
}

/// Builds the table: an `all` row, then one row per attribute in file order.
///
/// # Errors
/// A score count ≠ pair count, a non-finite score, or an image absent from the
/// attribute file (named, with the pair number).
pub fn attribute_table(
    pairs: &[NamedPair],
    scores: &[f64],
    attributes: &CelebaAttributes,
    thresholds: &[f64],
) -> Result<Vec<AttributeRow>> {
    if scores.len() != pairs.len() {
        return Err(EvalError::Inconsistent(format!(
            "{} scores for {} pairs",
            scores.len(),
            pairs.len()
        )));
    }
    let by_name: std::collections::HashMap<&str, usize> = attributes
        .images
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let rows: Vec<(usize, usize)> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let look = |name: &str| {
                by_name.get(name).copied().ok_or_else(|| {
                    EvalError::Inconsistent(format!(
                        "pair {}: image {name:?} is not in the attribute file",
                        i + 1
                    ))
                })
            };
            Ok((look(&p.a)?, look(&p.b)?))
        })
        .collect::<Result<_>>()?;
    let row = |name: &str, keep: &dyn Fn(usize) -> bool| -> Result<AttributeRow> {
        let idx: Vec<usize> = (0..pairs.len()).filter(|&i| keep(i)).collect();
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        let g: Vec<bool> = idx.iter().map(|&i| pairs[i].genuine).collect();
        let genuine = g.iter().filter(|&&x| x).count();
        let accuracy = thresholds
            .iter()
            .map(|&t| {
                Ok((
                    t,
                    if idx.is_empty() {
                        None
                    } else {
                        Some(threshold_accuracy(&s, &g, t)?)
                    },
                ))
            })
            .collect::<Result<_>>()?;
        Ok(AttributeRow {
            attribute: name.to_owned(),
            pairs: idx.len(),
            genuine,
            impostor: idx.len() - genuine,
            accuracy,
        })
    };
    let mut table = vec![row("all", &|_| true)?];
    for (k, name) in attributes.names.iter().enumerate() {
        table.push(row(name, &|i| {
            let (a, b) = rows[i];
            attributes.get(a, k) && attributes.get(b, k)
        })?);
    }
    Ok(table)
}

/// The table as text.
pub fn table_text(rows: &[AttributeRow]) -> String {
    use std::fmt::Write;
    let mut s = format!("{:<22}{:>8}{:>8}{:>8}", "attribute", "pairs", "genuine", "impost");
    if let Some(r) = rows.first() {
        for (t, _) in &r.accuracy {
            let _ = write!(s, "{:>10}", format!("acc@{t}"));
        }
    }
    s.push('\n');
    for r in rows {
        let _ = write!(
            s,
            "{:<22}{:>8}{:>8}{:>8}",
            r.attribute, r.pairs, r.genuine, r.impostor
        );
        for (_, a) in &r.accuracy {
            match a {
                Some(a) => {
                    let _ = write!(s, "{:>9.2}%", 100.0 * a);
                }
                None => {
                    let _ = write!(s, "{:>10}", "-");
                }
            }
        }
        s.push('\n');
    }
    s
}
