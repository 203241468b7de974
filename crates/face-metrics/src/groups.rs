//! Per-group breakdown: any metric computed per group label (e.g. a demographic
//! group), with the largest and smallest value and the gap between them.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::{Deserialize, Serialize};

use crate::checks;
use crate::error::Result;

/// A metric per group and the spread between groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupBreakdown {
    /// Metric value per group, keyed by the group's label.
    pub per_group: BTreeMap<String, f64>,
    /// Samples per group.
    pub sizes: BTreeMap<String, usize>,
    /// Group with the highest value and that value.
    pub max: (String, f64),
    /// Group with the lowest value and that value.
    pub min: (String, f64),
    /// `max − min`.
    pub gap: f64,
    /// `max / min` (`inf` when `min` is 0).
    #[serde(with = "crate::serde_float")]
    pub ratio: f64,
}

/// Computes `metric` on the indices of each group and summarises the spread.
///
/// `groups[i]` is the group of sample (pair, face, probe…) `i`; `metric` receives
/// the indices of one group's samples. Groups are visited in label order.
///
/// # Errors
/// Empty input, or the first error `metric` returns (e.g. a group with no
/// impostor pair), which names the problem.
///
/// # Examples
/// ```
/// let scores = [0.9, 0.2, 0.8, 0.6, 0.1, 0.7];
/// let genuine = [true, false, true, true, false, false];
/// let group = ["a", "a", "a", "b", "b", "b"];
/// let by_group = face_metrics::per_group(&group, |idx| {
///     let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
///     let g: Vec<bool> = idx.iter().map(|&i| genuine[i]).collect();
///     face_metrics::mann_whitney_auc(&s, &g)
/// }).unwrap();
/// assert_eq!(by_group.per_group["a"], 1.0);
/// assert_eq!(by_group.per_group["b"], 0.5);
/// assert_eq!(by_group.gap, 0.5);
/// ```
pub fn per_group<G, F>(groups: &[G], mut metric: F) -> Result<GroupBreakdown>
where
    G: Ord + Display,
    F: FnMut(&[usize]) -> Result<f64>,
{
    checks::non_empty("per_group groups", groups.len())?;
    let mut members: BTreeMap<&G, Vec<usize>> = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let mut per_group = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    let mut max = (String::new(), f64::NEG_INFINITY);
    let mut min = (String::new(), f64::INFINITY);
    for (g, idx) in members {
        let value = metric(&idx)?;
        let name = g.to_string();
        if value.is_nan() {
            return Err(crate::MetricsError::NonFinite {
                what: "per_group metric value",
                index: idx[0],
                value,
            });
        }
        if value > max.1 {
            max = (name.clone(), value);
        }
        if value < min.1 {
            min = (name.clone(), value);
        }
        sizes.insert(name.clone(), idx.len());
        per_group.insert(name, value);
    }
    Ok(GroupBreakdown {
        gap: max.1 - min.1,
        ratio: if min.1 == 0.0 {
            f64::INFINITY
        } else {
            max.1 / min.1
        },
        per_group,
        sizes,
        max,
        min,
    })
}
