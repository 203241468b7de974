//! Placing impostor scores among the sorted genuine scores without sorting the impostors.
//!
//! Verification sets have few genuine pairs and many impostors (IJB-C 1:1: 19,557
//! against 15,638,932). Every ranking metric — ROC corners, AUC, TAR@FAR, EER — only
//! needs to know, for each impostor, where it falls among the distinct genuine
//! scores. With `m` distinct genuine values `v[0] > v[1] > … > v[m-1]` the score line
//! splits into `2m + 1` *slots*, in decreasing score order:
//!
//! * slot `2j`: the open interval `(v[j], v[j-1])` (with `v[-1] = +inf`, `v[m] = -inf`);
//! * slot `2j + 1`: the single value `v[j]`.
//!
//! A uniform grid over the genuine range turns a lookup into one multiply, one
//! table read and a scan of the (usually 0–2) genuine values in that grid cell.

use rayon::prelude::*;

use crate::checks::canonical;

/// Sorted distinct genuine scores with a grid for O(1) expected slot lookup.
#[derive(Debug, Clone)]
pub(crate) struct GenuineIndex {
    /// Distinct genuine scores, decreasing.
    pub values: Vec<f64>,
    /// Multiplicity of each value.
    pub counts: Vec<u64>,
    /// `above[j]`: genuine scores strictly greater than `values[j]`; `above[m]` = total.
    pub above: Vec<u64>,
    lo: f64,
    scale: f64,
    /// Per grid cell `c`: number of distinct values whose cell is greater than `c`.
    cell_start: Vec<u32>,
}

impl GenuineIndex {
    /// Builds the index. `genuine` must be finite and non-empty (checked by callers).
    pub fn new(genuine: impl IntoIterator<Item = f64>) -> Self {
        let mut sorted: Vec<f64> = genuine.into_iter().map(canonical).collect();
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        let mut values: Vec<f64> = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        for s in sorted {
            match values.last() {
                Some(&v) if v == s => *counts.last_mut().expect("non-empty with values") += 1,
                _ => {
                    values.push(s);
                    counts.push(1);
                }
            }
        }
        let mut above = Vec::with_capacity(values.len() + 1);
        let mut acc = 0;
        above.push(0);
        for &c in &counts {
            acc += c;
            above.push(acc);
        }

        let m = values.len();
        let cells = (2 * m).next_power_of_two().clamp(1, 1 << 20);
        let (lo, hi) = (values[m - 1], values[0]);
        let mut scale = cells as f64 / (hi - lo);
        if !scale.is_finite() {
            scale = 0.0;
        }
        let mut index = Self {
            values,
            counts,
            above,
            lo,
            scale,
            cell_start: vec![0; cells],
        };
        // cell_start[c] = #values with cell > c. Values are decreasing, so their
        // cells are non-increasing along the array.
        let mut j = 0usize;
        for c in (0..cells).rev() {
            index.cell_start[c] = j as u32;
            while j < m && index.cell(index.values[j]) >= c {
                j += 1;
            }
            // After this loop, j = #values with cell >= c; cell_start[c] must count
            // cells > c, which is what j was before the loop.
        }
        index
    }

    /// Number of distinct genuine values.
    pub fn distinct(&self) -> usize {
        self.values.len()
    }

    /// Total genuine scores.
    pub fn total(&self) -> u64 {
        self.above[self.values.len()]
    }

    /// Number of slots, `2m + 1`.
    pub fn slots(&self) -> usize {
        2 * self.values.len() + 1
    }

    /// The grid cell of `x`: a monotone non-decreasing function of `x`, so values
    /// in a higher cell are strictly greater than any `x` in a lower one.
    #[inline(always)]
    fn cell(&self, x: f64) -> usize {
        // Truncation equals floor for c >= 1 and avoids a libm call on baseline x86-64.
        let c = (x - self.lo) * self.scale;
        if c >= (self.cell_start.len() - 1) as f64 {
            self.cell_start.len() - 1
        } else if c >= 1.0 {
            c as usize
        } else {
            0
        }
    }

    /// The slot of a finite score `s`.
    #[inline(always)]
    pub fn slot(&self, s: f64) -> usize {
        let c = self.cell(s);
        let mut j = self.cell_start[c] as usize;
        while j < self.values.len() && self.values[j] > s {
            j += 1;
        }
        if j < self.values.len() && self.values[j] == s {
            2 * j + 1
        } else {
            2 * j
        }
    }

    /// Genuine scores strictly greater than every score in `slot`.
    pub fn genuine_above_slot(&self, slot: usize) -> u64 {
        self.above[slot / 2]
    }

    /// Twice the Mann–Whitney wins of one impostor in `slot` against all genuine
    /// scores: 2 per genuine above it, 1 per genuine tied with it.
    #[inline(always)]
    pub fn twice_wins(&self, slot: usize) -> u64 {
        let ties = if slot % 2 == 1 { self.counts[slot / 2] } else { 0 };
        2 * self.above[slot / 2] + ties
    }

    /// Genuine scores `>= t`.
    pub fn genuine_at_least(&self, t: f64) -> u64 {
        let slot = self.slot(t);
        if slot % 2 == 1 {
            self.above[slot / 2 + 1]
        } else {
            self.above[slot / 2]
        }
    }

    /// Whether `s` lies in `slot` (used to gather the impostors of a slot range).
    #[inline]
    pub fn in_slot_range(&self, s: f64, first: usize, last: usize) -> bool {
        // Upper bound from `first`, lower bound from `last`.
        let below_top = if first % 2 == 1 {
            s <= self.values[first / 2]
        } else if first == 0 {
            true
        } else {
            s < self.values[first / 2 - 1]
        };
        let above_bottom = if last % 2 == 1 {
            s >= self.values[last / 2]
        } else if last / 2 == self.values.len() {
            true
        } else {
            s > self.values[last / 2]
        };
        below_top && above_bottom
    }
}

/// Per-slot statistics of the impostor scores.
#[derive(Debug, Clone)]
pub(crate) struct SlotCounts {
    /// Impostors in each slot.
    pub count: Vec<u64>,
    /// Highest impostor in each slot (`-inf` when empty).
    pub max: Vec<f64>,
    /// Lowest impostor in each slot (`+inf` when empty).
    pub min: Vec<f64>,
}

impl SlotCounts {
    fn empty(slots: usize) -> Self {
        Self {
            count: vec![0; slots],
            max: vec![f64::NEG_INFINITY; slots],
            min: vec![f64::INFINITY; slots],
        }
    }

    fn merge(mut self, other: Self) -> Self {
        for i in 0..self.count.len() {
            self.count[i] += other.count[i];
            self.max[i] = self.max[i].max(other.max[i]);
            self.min[i] = self.min[i].min(other.min[i]);
        }
        self
    }

    #[inline(always)]
    fn add(&mut self, index: &GenuineIndex, s: f64) {
        let k = index.slot(s);
        self.count[k] += 1;
        if s > self.max[k] {
            self.max[k] = s;
        }
        if s < self.min[k] {
            self.min[k] = s;
        }
    }

    /// Counts the impostors of `scores` (entries whose `is_genuine` is false; all of
    /// them when `is_genuine` is `None`), in parallel. Returns `None` when a score
    /// is not finite (the caller finds and reports it), so that validation costs
    /// no separate pass over the data.
    pub fn count(index: &GenuineIndex, scores: &[f64], is_genuine: Option<&[bool]>) -> Option<Self> {
        let slots = index.slots();
        let chunk = (scores.len() / (4 * rayon::current_num_threads())).max(1 << 14);
        let empty = || Some(SlotCounts::empty(slots));
        let merge = |a: Option<SlotCounts>, b: Option<SlotCounts>| Some(a?.merge(b?));
        let count_part = |part: &[f64], labels: Option<&[bool]>| -> Option<SlotCounts> {
            let mut acc = SlotCounts::empty(slots);
            let mut finite = true;
            match labels {
                None => {
                    for &s in part {
                        finite &= s.is_finite();
                        acc.add(index, s);
                    }
                }
                Some(l) => {
                    for (&s, &g) in part.iter().zip(l) {
                        finite &= s.is_finite();
                        if !g {
                            acc.add(index, s);
                        }
                    }
                }
            }
            finite.then_some(acc)
        };
        match is_genuine {
            None => scores
                .par_chunks(chunk)
                .map(|p| count_part(p, None))
                .reduce(empty, merge),
            Some(labels) => scores
                .par_chunks(chunk)
                .zip(labels.par_chunks(chunk))
                .map(|(p, l)| count_part(p, Some(l)))
                .reduce(empty, merge),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_definition() {
        // distinct genuine: 0.9 (x2), 0.5, 0.1
        let idx = GenuineIndex::new([0.5, 0.9, 0.1, 0.9]);
        assert_eq!(idx.values, vec![0.9, 0.5, 0.1]);
        assert_eq!(idx.counts, vec![2, 1, 1]);
        assert_eq!(idx.above, vec![0, 2, 3, 4]);
        assert_eq!(idx.slot(2.0), 0);
        assert_eq!(idx.slot(0.9), 1);
        assert_eq!(idx.slot(0.7), 2);
        assert_eq!(idx.slot(0.5), 3);
        assert_eq!(idx.slot(0.3), 4);
        assert_eq!(idx.slot(0.1), 5);
        assert_eq!(idx.slot(-7.0), 6);
        assert_eq!(idx.genuine_at_least(0.5), 3);
        assert_eq!(idx.genuine_at_least(0.6), 2);
        assert!(idx.in_slot_range(0.7, 2, 2));
        assert!(!idx.in_slot_range(0.5, 2, 2));
        assert!(idx.in_slot_range(0.5, 1, 3));
    }

    #[test]
    fn slot_agrees_with_binary_search_on_dense_ties() {
        let gen: Vec<f64> = (0..500).map(|i| ((i * 37) % 101) as f64 / 100.0).collect();
        let idx = GenuineIndex::new(gen.iter().copied());
        for k in -50..200 {
            let s = k as f64 / 137.0;
            let j = idx.values.partition_point(|&v| v > s);
            let expect = if j < idx.values.len() && idx.values[j] == s {
                2 * j + 1
            } else {
                2 * j
            };
            assert_eq!(idx.slot(s), expect, "score {s}");
        }
        for &v in &idx.values {
            assert_eq!(idx.slot(v) % 2, 1);
        }
    }

    #[test]
    fn single_genuine_value_and_negative_zero() {
        let idx = GenuineIndex::new([0.0]);
        assert_eq!(idx.slot(-0.0), 1);
        assert_eq!(idx.slot(1e-300), 0);
        assert_eq!(idx.slot(-1e-300), 2);
    }
}
