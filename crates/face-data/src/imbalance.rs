//! Class-imbalance measures and iterative multi-label random oversampling.
//!
//! Two views of a table of per-image labels:
//! - **Within an attribute** (gender, age group, ethnicity, or one CelebA attribute as
//!   absent/present): for category `c` of attribute `a` with `n(a,c)` images,
//!   `IRLbl(a,c) = max_c' n(a,c') / n(a,c)`. The attribute's **imbalance ratio** is
//!   `max / min` category size (the measure of the deployment talk on imbalanced public face
//!   databases), and the table's **MeanIR** is the mean of `IRLbl` over all non-empty
//!   (attribute, category) cells; 1 means perfectly balanced.
//! - **Across labels** of a binary multi-label matrix (Charte et al., "Addressing imbalance in
//!   multilabel classification", Neurocomputing 2015): `IRLbl(λ) = max_λ' |Y_λ'| / |Y_λ|` over
//!   the positive counts, `MeanIR` its mean and `CVIR` its coefficient of variation —
//!   [`charte_measures`].
//!
//! [`ml_ros`] oversamples in the within-attribute view.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// Marks a missing value in [`LabelTable`].
pub const MISSING: u16 = u16::MAX;

/// One categorical attribute.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attribute {
    /// Name (`gender`, `Eyeglasses`).
    pub name: String,
    /// Category names; a value `v` means `categories[v]`.
    pub categories: Vec<String>,
}

/// Per-image categorical labels, row-major `rows × attributes`, [`MISSING`] where unknown.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelTable {
    /// The attributes (columns).
    pub attributes: Vec<Attribute>,
    /// Row-major values.
    pub values: Vec<u16>,
}

impl LabelTable {
    /// Builds a table, checking every value against its attribute's categories.
    ///
    /// # Errors
    /// A value length that is not a multiple of the attribute count, an attribute without
    /// categories, or a value out of range (naming row and attribute).
    pub fn new(attributes: Vec<Attribute>, values: Vec<u16>) -> Result<Self> {
        let a = attributes.len();
        if a == 0 || !values.len().is_multiple_of(a) {
            return Err(DataError::Inconsistent(format!(
                "{} values for {a} attributes",
                values.len()
            )));
        }
        if let Some(at) = attributes
            .iter()
            .find(|at| at.categories.is_empty() || at.categories.len() >= MISSING as usize)
        {
            return Err(DataError::param(
                "attributes",
                format!("{} has {} categories", at.name, at.categories.len()),
            ));
        }
        for (i, row) in values.chunks_exact(a).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if v != MISSING && v as usize >= attributes[j].categories.len() {
                    return Err(DataError::Inconsistent(format!(
                        "row {i}, attribute {}: value {v} but only {} categories",
                        attributes[j].name,
                        attributes[j].categories.len()
                    )));
                }
            }
        }
        Ok(Self { attributes, values })
    }

    /// A table of binary attributes (categories `absent`, `present`) from a row-major boolean
    /// matrix such as [`crate::formats::celeba::CelebaAttributes::values`].
    ///
    /// # Errors
    /// As [`LabelTable::new`].
    pub fn from_binary(names: &[String], values: &[bool]) -> Result<Self> {
        let attributes = names
            .iter()
            .map(|n| Attribute {
                name: n.clone(),
                categories: vec!["absent".into(), "present".into()],
            })
            .collect();
        Self::new(attributes, values.iter().map(|&b| u16::from(b)).collect())
    }

    /// Number of rows (images).
    pub fn rows(&self) -> usize {
        self.values.len() / self.attributes.len()
    }

    /// The values of row `i`.
    pub fn row(&self, i: usize) -> &[u16] {
        let a = self.attributes.len();
        &self.values[i * a..(i + 1) * a]
    }

    /// Category counts per attribute (missing values not counted).
    pub fn counts(&self) -> Vec<Vec<u64>> {
        let mut counts: Vec<Vec<u64>> = self
            .attributes
            .iter()
            .map(|a| vec![0; a.categories.len()])
            .collect();
        for row in self.values.chunks_exact(self.attributes.len()) {
            for (j, &v) in row.iter().enumerate() {
                if v != MISSING {
                    counts[j][v as usize] += 1;
                }
            }
        }
        counts
    }
}

/// Imbalance of one attribute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttributeImbalance {
    /// Attribute name.
    pub name: String,
    /// Images per category.
    pub counts: Vec<u64>,
    /// `IRLbl` per category; `None` for an empty category (it cannot be oversampled).
    pub irlbl: Vec<Option<f64>>,
    /// Largest over smallest non-empty category (1 when balanced or when only one category is
    /// populated).
    pub ratio: f64,
    /// Mean `IRLbl` over the non-empty categories.
    pub mean_ir: f64,
    /// Categories without any image.
    pub empty: Vec<String>,
}

/// The imbalance report of a table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImbalanceReport {
    /// One entry per attribute.
    pub attributes: Vec<AttributeImbalance>,
    /// Mean `IRLbl` over every non-empty (attribute, category).
    pub mean_ir: f64,
    /// The largest attribute ratio.
    pub max_ratio: f64,
}

fn attribute_imbalance(attribute: &Attribute, counts: &[u64]) -> AttributeImbalance {
    let max = counts.iter().copied().max().unwrap_or(0);
    let min = counts.iter().copied().filter(|&c| c > 0).min().unwrap_or(0);
    let irlbl: Vec<Option<f64>> = counts
        .iter()
        .map(|&c| (c > 0).then(|| max as f64 / c as f64))
        .collect();
    let present: Vec<f64> = irlbl.iter().flatten().copied().collect();
    let mean_ir = if present.is_empty() {
        1.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    AttributeImbalance {
        name: attribute.name.clone(),
        counts: counts.to_vec(),
        irlbl,
        ratio: if min > 0 { max as f64 / min as f64 } else { 1.0 },
        mean_ir,
        empty: counts
            .iter()
            .zip(&attribute.categories)
            .filter(|(c, _)| **c == 0)
            .map(|(_, n)| n.clone())
            .collect(),
    }
}

fn report_from_counts(table: &LabelTable, counts: &[Vec<u64>]) -> ImbalanceReport {
    let attributes: Vec<AttributeImbalance> = table
        .attributes
        .iter()
        .zip(counts)
        .map(|(a, c)| attribute_imbalance(a, c))
        .collect();
    let cells: Vec<f64> = attributes
        .iter()
        .flat_map(|a| a.irlbl.iter().flatten().copied())
        .collect();
    let mean_ir = if cells.is_empty() {
        1.0
    } else {
        cells.iter().sum::<f64>() / cells.len() as f64
    };
    let max_ratio = attributes.iter().map(|a| a.ratio).fold(1.0, f64::max);
    ImbalanceReport {
        attributes,
        mean_ir,
        max_ratio,
    }
}

/// Within-attribute imbalance of every attribute, and the table's MeanIR.
///
/// # Examples
/// ```
/// use face_data::imbalance::{imbalance, Attribute, LabelTable};
/// let gender = Attribute { name: "gender".into(), categories: vec!["m".into(), "f".into()] };
/// let table = LabelTable::new(vec![gender], vec![0, 0, 0, 1]).unwrap();
/// let r = imbalance(&table);
/// assert_eq!(r.attributes[0].ratio, 3.0);
/// assert_eq!(r.mean_ir, 2.0); // (1 + 3) / 2
/// ```
pub fn imbalance(table: &LabelTable) -> ImbalanceReport {
    report_from_counts(table, &table.counts())
}

/// Charte's multi-label measures over binary labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MultiLabelImbalance {
    /// Positive count per label.
    pub positives: Vec<u64>,
    /// `IRLbl` per label (`None` for a label without positives).
    pub irlbl: Vec<Option<f64>>,
    /// Mean of the defined `IRLbl`.
    pub mean_ir: f64,
    /// Coefficient of variation of `IRLbl` (population standard deviation / MeanIR).
    pub cvir: f64,
    /// The largest `IRLbl`.
    pub max_ir: f64,
}

/// Charte et al.'s `IRLbl`, `MeanIR`, `CVIR` of a row-major binary label matrix.
///
/// # Errors
/// A matrix length that is not a multiple of `labels`, `labels == 0`, or no positive at all.
pub fn charte_measures(values: &[bool], labels: usize) -> Result<MultiLabelImbalance> {
    if labels == 0 || !values.len().is_multiple_of(labels) {
        return Err(DataError::Inconsistent(format!(
            "{} values for {labels} labels",
            values.len()
        )));
    }
    let mut positives = vec![0u64; labels];
    for row in values.chunks_exact(labels) {
        for (p, &v) in positives.iter_mut().zip(row) {
            *p += u64::from(v);
        }
    }
    let max = positives.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return Err(DataError::NotEnough("no label has a positive example".into()));
    }
    let irlbl: Vec<Option<f64>> = positives
        .iter()
        .map(|&c| (c > 0).then(|| max as f64 / c as f64))
        .collect();
    let defined: Vec<f64> = irlbl.iter().flatten().copied().collect();
    let n = defined.len() as f64;
    let mean_ir = defined.iter().sum::<f64>() / n;
    let var = defined.iter().map(|v| (v - mean_ir).powi(2)).sum::<f64>() / n;
    Ok(MultiLabelImbalance {
        positives,
        irlbl,
        mean_ir,
        cvir: var.sqrt() / mean_ir,
        max_ir: defined.iter().copied().fold(1.0, f64::max),
    })
}

/// Settings of [`ml_ros`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlRosConfig {
    /// Stop once MeanIR is at or below this (≥ 1).
    pub target_mean_ir: f64,
    /// At most this many added samples.
    pub max_added: usize,
    /// Random seed.
    pub seed: u64,
}

/// Why [`ml_ros`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum StopReason {
    /// MeanIR reached the target.
    TargetReached,
    /// Every attribute is balanced.
    Balanced,
    /// `max_added` samples were added.
    Budget,
}

/// Result of [`ml_ros`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MlRosOutcome {
    /// Original row indices to replicate, in the order chosen (a row may appear repeatedly).
    pub added: Vec<usize>,
    /// MeanIR after each of the `steps` additions tried (index 0 = before any).
    pub trajectory: Vec<f64>,
    /// Why the loop stopped.
    pub stop: StopReason,
    /// Imbalance before oversampling.
    pub before: ImbalanceReport,
    /// Imbalance of the table plus the `added` rows.
    pub after: ImbalanceReport,
}

/// Iterative multi-label random oversampling (after Charte et al.'s ML-ROS): repeatedly take
/// the attribute with the largest imbalance ratio, its smallest non-empty category, and
/// replicate a uniformly drawn original row of that category, until MeanIR ≤ the target,
/// every attribute is balanced, or the budget is spent.
///
/// Replicating a row also moves the counts of its other attributes, so MeanIR need not fall
/// at every step; the returned `added` list is the prefix of the additions that reached the
/// lowest MeanIR (so `after.mean_ir ≤ before.mean_ir` always), and `trajectory` shows the
/// whole run. Deterministic for a given seed.
///
/// # Errors
/// A target below 1 or non-finite, or an empty table.
pub fn ml_ros(table: &LabelTable, config: &MlRosConfig) -> Result<MlRosOutcome> {
    if !(config.target_mean_ir >= 1.0 && config.target_mean_ir.is_finite()) {
        return Err(DataError::param(
            "target_mean_ir",
            format!("{} must be a finite number ≥ 1", config.target_mean_ir),
        ));
    }
    if table.rows() == 0 {
        return Err(DataError::NotEnough("the label table has no rows".into()));
    }
    let na = table.attributes.len();
    // Rows of each (attribute, category).
    let mut members: Vec<Vec<Vec<usize>>> = table
        .attributes
        .iter()
        .map(|a| vec![Vec::new(); a.categories.len()])
        .collect();
    for i in 0..table.rows() {
        for (j, &v) in table.row(i).iter().enumerate() {
            if v != MISSING {
                members[j][v as usize].push(i);
            }
        }
    }
    let mut counts = table.counts();
    let before = report_from_counts(table, &counts);
    let mean_ir = |counts: &[Vec<u64>]| report_from_counts(table, counts).mean_ir;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut added = Vec::new();
    let mut trajectory = vec![before.mean_ir];
    let (mut best, mut best_len) = (before.mean_ir, 0usize);
    let stop = loop {
        let current = *trajectory.last().unwrap_or(&before.mean_ir);
        if current <= config.target_mean_ir {
            break StopReason::TargetReached;
        }
        if added.len() >= config.max_added {
            break StopReason::Budget;
        }
        // Most imbalanced attribute (ties → first), then its smallest non-empty category.
        let mut pick: Option<(usize, f64)> = None;
        for (j, c) in counts.iter().enumerate() {
            let max = c.iter().copied().max().unwrap_or(0);
            let min = c.iter().copied().filter(|&x| x > 0).min().unwrap_or(0);
            if min > 0 {
                let r = max as f64 / min as f64;
                if pick.is_none_or(|(_, best_r)| r > best_r) {
                    pick = Some((j, r));
                }
            }
        }
        let Some((a, _)) = pick.filter(|(_, r)| *r > 1.0) else {
            break StopReason::Balanced;
        };
        let c = (0..counts[a].len())
            .filter(|&c| counts[a][c] > 0)
            .min_by_key(|&c| counts[a][c])
            .unwrap_or(0);
        let Some(&row) = members[a][c].choose(&mut rng) else {
            break StopReason::Balanced;
        };
        for (j, &v) in table.row(row).iter().enumerate().take(na) {
            if v != MISSING {
                counts[j][v as usize] += 1;
            }
        }
        added.push(row);
        let m = mean_ir(&counts);
        trajectory.push(m);
        if m < best {
            best = m;
            best_len = added.len();
        }
    };
    added.truncate(best_len);
    let mut final_counts = table.counts();
    for &row in &added {
        for (j, &v) in table.row(row).iter().enumerate() {
            if v != MISSING {
                final_counts[j][v as usize] += 1;
            }
        }
    }
    let after = report_from_counts(table, &final_counts);
    Ok(MlRosOutcome {
        added,
        trajectory,
        stop,
        before,
        after,
    })
}
