//! 1:1 verification metrics on genuine / impostor similarity scores: AUC, TAR@FAR in
//! three conventions, EER with its interval, ROC corners and DET points.
//!
//! [`VerificationScores`] never sorts the impostors. It sorts the (few) genuine
//! scores and counts impostors per slot between them (see the `slots` module):
//! O(n) work, parallel, exact. Where a convention depends on the tie structure of
//! impostors between two genuine scores (insightface's nearest point, the k-th
//! impostor, the EER threshold) only the impostors of that one interval are
//! gathered and sorted.
//!
//! Conventions: a pair is accepted when `score >= threshold`; FAR = accepted
//! impostors / impostors; TAR = accepted genuine / genuine; FRR = 1 − TAR.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::checks;
use crate::error::Result;
use crate::slots::{GenuineIndex, SlotCounts};

/// The FAR targets reported by default: 1e-6 … 1e-1, as IJB-B/C papers do.
pub const DEFAULT_FAR_TARGETS: [f64; 6] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/// Impostor-holding slots on each side of the target's slot that the
/// nearest-point search reads first (with the genuine points between). Enough in
/// the common case; the search doubles the window when it is not.
const NEAREST_START_WIDTH: usize = 1;

/// How a TAR is read off the ROC at a FAR target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FarConvention {
    /// insightface `eval_ijbc.py`: on scikit-learn's `roc_curve` (with
    /// `drop_intermediate=True`) take the point whose FPR is nearest the target;
    /// ties go to the larger TPR (insightface flips the arrays before `min`).
    /// Bit-identical to insightface.
    Nearest,
    /// The largest TAR whose actual FAR is at most the target (bob.measure style).
    AtMost,
    /// Threshold = the k-th highest impostor score, `k = round(N_impostor · FAR)`
    /// (half away from zero); with `k = 0` the threshold is just above the highest impostor.
    KthNegative,
}

impl FarConvention {
    /// All three conventions.
    pub const ALL: [FarConvention; 3] = [Self::Nearest, Self::AtMost, Self::KthNegative];
}

/// One TAR@FAR result: what was asked, what was achieved, and where.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TarAtFar {
    /// The convention used.
    pub convention: FarConvention,
    /// The FAR asked for.
    pub target_far: f64,
    /// True accept rate at the chosen threshold.
    pub tar: f64,
    /// The FAR actually achieved at that threshold.
    pub far: f64,
    /// The decision threshold (accept when `score >= threshold`; `+inf` accepts nothing).
    #[serde(with = "crate::serde_float")]
    pub threshold: f64,
    /// Genuine pairs accepted.
    pub accepted_genuine: u64,
    /// Impostor pairs accepted.
    pub accepted_impostors: u64,
}

/// Equal error rate: where FAR and FRR cross.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Eer {
    /// The EER, linearly interpolated between the two ROC points that bracket
    /// the crossing.
    pub eer: f64,
    /// Lower end of the interval the crossing must lie in:
    /// `max(FAR_before, FRR_after)`.
    pub lower: f64,
    /// Upper end: `min(FRR_before, FAR_after)`.
    pub upper: f64,
    /// The first threshold (from the top) at which FAR ≥ FRR.
    #[serde(with = "crate::serde_float")]
    pub threshold: f64,
}

/// One corner of the ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Threshold (accept when `score >= threshold`).
    #[serde(with = "crate::serde_float")]
    pub threshold: f64,
    /// False accept rate.
    pub far: f64,
    /// True accept rate.
    pub tar: f64,
}

/// One point of a DET curve: error rates and their probit (normal deviate) coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetPoint {
    /// Threshold.
    #[serde(with = "crate::serde_float")]
    pub threshold: f64,
    /// False accept rate (FMR).
    pub far: f64,
    /// False reject rate (FNMR).
    pub frr: f64,
    /// `probit(far)`.
    pub x: f64,
    /// `probit(frr)`.
    pub y: f64,
}

impl DetPoint {
    /// The DET point of an ROC point, or `None` where FAR or FRR is 0 or 1
    /// (infinite probit).
    pub fn from_roc(r: &RocPoint) -> Option<Self> {
        let frr = 1.0 - r.tar;
        let (x, y) = (crate::probit(r.far), crate::probit(frr));
        (x.is_finite() && y.is_finite()).then_some(DetPoint {
            threshold: r.threshold,
            far: r.far,
            frr,
            x,
            y,
        })
    }
}

#[derive(Debug, Clone)]
enum Impostors<'a> {
    /// Mixed scores with labels; impostors are the `false` entries.
    Pairs {
        scores: Cow<'a, [f64]>,
        genuine: Cow<'a, [bool]>,
    },
    /// Impostor scores alone.
    Split(Cow<'a, [f64]>),
}

/// A corner of the ROC at slot granularity.
#[derive(Debug, Clone, Copy)]
struct Corner {
    fps: u64,
    tps: u64,
    threshold: f64,
    /// The slot that ends at this corner (`usize::MAX` for the start).
    slot: usize,
}

/// A point of the exact (full) curve inside a window of slots.
#[derive(Debug, Clone, Copy)]
struct LocalPoint {
    threshold: f64,
    /// Impostors and genuine scores at exactly this threshold.
    m: u64,
    g: u64,
    /// Cumulative counts after this point.
    fps: u64,
    tps: u64,
}

/// Genuine and impostor similarity scores, indexed for fast exact metrics.
///
/// # Examples
/// ```
/// use face_metrics::{FarConvention, VerificationScores};
/// let genuine = [0.9, 0.8, 0.75, 0.3];
/// let impostor = [0.7, 0.5, 0.4, 0.2, 0.1];
/// let v = VerificationScores::from_split(&genuine, &impostor).unwrap();
/// assert_eq!(v.auc(), 17.0 / 20.0); // genuine 0.3 beats only 2 of 5 impostors
/// let t = v.tar_at_far(&[0.2], FarConvention::AtMost).unwrap();
/// assert_eq!((t[0].tar, t[0].far, t[0].threshold), (0.75, 0.0, 0.75));
/// let eer = v.eer();
/// assert!(eer.lower <= eer.eer && eer.eer <= eer.upper);
/// ```
#[derive(Debug)]
pub struct VerificationScores<'a> {
    impostors: Impostors<'a>,
    index: GenuineIndex,
    slots: SlotCounts,
    n_impostor: u64,
    corners: Vec<Corner>,
    /// scikit-learn keeps every point when there are at most two distinct scores.
    keep_all: bool,
    /// Impostors of the run slots gathered so far, sorted decreasing.
    runs: Mutex<HashMap<usize, Vec<f64>>>,
}

impl<'a> VerificationScores<'a> {
    /// From mixed `scores` and labels (`true` = genuine / same identity).
    ///
    /// # Errors
    /// Length mismatch, empty input, a non-finite score, or a missing class.
    pub fn from_pairs(
        scores: impl Into<Cow<'a, [f64]>>,
        genuine: impl Into<Cow<'a, [bool]>>,
    ) -> Result<Self> {
        let scores = scores.into();
        let genuine = genuine.into();
        let what = "verification scores";
        checks::same_len(what, scores.len(), genuine.len())?;
        checks::non_empty(what, scores.len())?;
        let gen: Vec<f64> = scores
            .par_iter()
            .zip(genuine.par_iter())
            .filter(|(_, &g)| g)
            .map(|(&s, _)| s)
            .collect();
        let n_imp = scores.len() - gen.len();
        checks::both_classes(what, gen.len(), n_imp)?;
        if !gen.iter().all(|s| s.is_finite()) {
            // Report the user's row, not the position among genuine scores.
            return Err(checks::non_finite_error(what, &scores));
        }
        let index = GenuineIndex::new(gen);
        // Finiteness of the impostors is checked inside the counting pass.
        let Some(slots) = SlotCounts::count(&index, &scores, Some(&genuine)) else {
            return Err(checks::non_finite_error(what, &scores));
        };
        Ok(Self::assemble(Impostors::Pairs { scores, genuine }, index, slots))
    }

    /// From separate genuine and impostor scores.
    ///
    /// # Errors
    /// An empty side or a non-finite score.
    pub fn from_split(genuine: &[f64], impostor: impl Into<Cow<'a, [f64]>>) -> Result<Self> {
        let impostor = impostor.into();
        checks::both_classes("verification scores", genuine.len(), impostor.len())?;
        checks::all_finite("genuine scores", genuine)?;
        let index = GenuineIndex::new(genuine.iter().copied());
        // Finiteness of the impostors is checked inside the counting pass.
        let Some(slots) = SlotCounts::count(&index, &impostor, None) else {
            return Err(checks::non_finite_error("impostor scores", &impostor));
        };
        Ok(Self::assemble(Impostors::Split(impostor), index, slots))
    }

    fn assemble(impostors: Impostors<'a>, index: GenuineIndex, slots: SlotCounts) -> Self {
        let n_impostor = slots.count.iter().sum();
        let mut corners = vec![Corner {
            fps: 0,
            tps: 0,
            threshold: f64::INFINITY,
            slot: usize::MAX,
        }];
        let (mut fps, mut tps) = (0, 0);
        let mut distinct_lower_bound = index.distinct();
        for slot in 0..index.slots() {
            let c = slots.count[slot];
            if slot % 2 == 0 {
                if c == 0 {
                    continue;
                }
                distinct_lower_bound += if slots.max[slot] == slots.min[slot] { 1 } else { 2 };
                fps += c;
                corners.push(Corner {
                    fps,
                    tps,
                    threshold: slots.min[slot],
                    slot,
                });
            } else {
                fps += c;
                tps += index.counts[slot / 2];
                corners.push(Corner {
                    fps,
                    tps,
                    threshold: index.values[slot / 2],
                    slot,
                });
            }
        }
        Self {
            impostors,
            index,
            slots,
            n_impostor,
            corners,
            keep_all: distinct_lower_bound <= 2,
            runs: Mutex::new(HashMap::new()),
        }
    }

    /// Number of genuine scores.
    pub fn n_genuine(&self) -> u64 {
        self.index.total()
    }

    /// Number of impostor scores.
    pub fn n_impostor(&self) -> u64 {
        self.n_impostor
    }

    /// Mann–Whitney AUC with ties counting ½ — equal to the trapezoid area under
    /// the ROC (scikit-learn's `roc_auc_score`).
    pub fn auc(&self) -> f64 {
        let mut twice_wins: u128 = 0;
        for (slot, &c) in self.slots.count.iter().enumerate() {
            twice_wins += u128::from(c) * u128::from(self.index.twice_wins(slot));
        }
        twice_wins as f64 / (2 * u128::from(self.n_genuine()) * u128::from(self.n_impostor)) as f64
    }

    /// The ROC at its corners, from `(0, 0)` at `+inf` to `(1, 1)`: the same
    /// geometric curve as scikit-learn's, without the collinear points.
    pub fn roc_points(&self) -> Vec<RocPoint> {
        let (p, n) = (self.n_genuine() as f64, self.n_impostor as f64);
        self.corners
            .iter()
            .map(|c| RocPoint {
                threshold: c.threshold,
                far: c.fps as f64 / n,
                tar: c.tps as f64 / p,
            })
            .collect()
    }

    /// DET points (FAR, FRR and their probits) at the ROC corners; points where
    /// either rate is 0 or 1 (infinite probit) are left out.
    pub fn det_points(&self) -> Vec<DetPoint> {
        self.roc_points().iter().filter_map(DetPoint::from_roc).collect()
    }

    /// TAR at each FAR target under one convention.
    ///
    /// # Errors
    /// A target outside (0, 1].
    pub fn tar_at_far(&self, targets: &[f64], convention: FarConvention) -> Result<Vec<TarAtFar>> {
        for &t in targets {
            checks::rate("FAR target", t)?;
        }
        let needed: Vec<usize> = targets
            .iter()
            .flat_map(|&f| self.slots_needed(f, convention))
            .collect();
        self.load_runs(&needed);
        Ok(targets
            .iter()
            .map(|&far| match convention {
                FarConvention::AtMost => self.tar_at_most(far),
                FarConvention::KthNegative => self.tar_kth_negative(far),
                FarConvention::Nearest => self.tar_nearest(far),
            })
            .collect())
    }

    /// FNMR at each FMR target (`1 − TAR` at the same threshold).
    ///
    /// # Errors
    /// A target outside (0, 1].
    pub fn fnmr_at_fmr(&self, targets: &[f64], convention: FarConvention) -> Result<Vec<f64>> {
        Ok(self
            .tar_at_far(targets, convention)?
            .into_iter()
            .map(|t| 1.0 - t.tar)
            .collect())
    }

    fn result(&self, convention: FarConvention, target: f64, threshold: f64, tps: u64, fps: u64) -> TarAtFar {
        TarAtFar {
            convention,
            target_far: target,
            tar: tps as f64 / self.n_genuine() as f64,
            far: fps as f64 / self.n_impostor as f64,
            threshold,
            accepted_genuine: tps,
            accepted_impostors: fps,
        }
    }

    fn tar_at_most(&self, far: f64) -> TarAtFar {
        // Only thresholds at genuine values can be optimal: lowering the threshold
        // to the next genuine value below adds genuine pairs, anything between adds
        // only impostors.
        let n = self.n_impostor as f64;
        let best = self
            .corners
            .iter()
            .filter(|c| c.slot != usize::MAX && c.slot % 2 == 1)
            .take_while(|c| c.fps as f64 / n <= far)
            .last();
        match best {
            Some(c) => self.result(FarConvention::AtMost, far, c.threshold, c.tps, c.fps),
            None => self.result(FarConvention::AtMost, far, f64::INFINITY, 0, 0),
        }
    }

    fn tar_kth_negative(&self, far: f64) -> TarAtFar {
        let k = ((far * self.n_impostor as f64).round() as u64).min(self.n_impostor);
        let conv = FarConvention::KthNegative;
        if k == 0 {
            let top = self.slots.max.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let t = top.next_up();
            return self.result(conv, far, t, self.index.genuine_at_least(t), 0);
        }
        let (slot, before) = self.slot_of_rank(k);
        let (t, fps) = if slot % 2 == 1 {
            (self.index.values[slot / 2], before + self.slots.count[slot])
        } else {
            let run = self.gather(slot, slot);
            let t = run[(k - before - 1) as usize];
            let at_least = run.partition_point(|&s| s >= t) as u64;
            (t, before + at_least)
        };
        self.result(conv, far, t, self.index.genuine_at_least(t), fps)
    }

    fn tar_nearest(&self, far: f64) -> TarAtFar {
        let target_rank = (far * self.n_impostor as f64).ceil().max(1.0) as u64;
        let home = self.slot_of_rank(target_rank.min(self.n_impostor)).0;
        let mut width = NEAREST_START_WIDTH;
        loop {
            let (first, last) = self.nearest_window(home, width);
            if let Some((threshold, tps, fps)) = self.nearest_in_window(far, first, last) {
                return self.result(FarConvention::Nearest, far, threshold, tps, fps);
            }
            // The window could not decide (a long collinear stretch reaches its
            // edge): widen it. The whole curve always decides.
            width *= 2;
        }
    }

    /// The slots from the `width`-th impostor-holding slot before `home` to the
    /// `width`-th after it (or the ends of the curve).
    fn nearest_window(&self, home: usize, width: usize) -> (usize, usize) {
        let count = &self.slots.count;
        let (mut first, mut taken) = (home, 0);
        while first > 0 && taken < width {
            first -= 1;
            taken += usize::from(count[first] > 0);
        }
        let (mut last, mut taken) = (home, 0);
        while last + 1 < count.len() && taken < width {
            last += 1;
            taken += usize::from(count[last] > 0);
        }
        (first, last)
    }

    /// The slot containing the impostor of rank `k` (1-based, from the top), and
    /// the number of impostors in the slots before it.
    fn slot_of_rank(&self, k: u64) -> (usize, u64) {
        let mut before = 0;
        for (s, &c) in self.slots.count.iter().enumerate() {
            if before + c >= k && c > 0 {
                return (s, before);
            }
            before += c;
        }
        (self.index.slots() - 1, before)
    }

    /// Run slots (even, non-empty) that computing `far` under `convention` reads
    /// in the common case, so that one pass can gather them all.
    fn slots_needed(&self, far: f64, convention: FarConvention) -> Vec<usize> {
        let n = self.n_impostor as f64;
        let wanted: Vec<usize> = match convention {
            FarConvention::AtMost => vec![],
            FarConvention::KthNegative => {
                let k = ((far * n).round() as u64).min(self.n_impostor);
                if k == 0 {
                    vec![]
                } else {
                    vec![self.slot_of_rank(k).0]
                }
            }
            FarConvention::Nearest => {
                let home = self
                    .slot_of_rank(((far * n).ceil().max(1.0) as u64).min(self.n_impostor))
                    .0;
                let (first, last) = self.nearest_window(home, NEAREST_START_WIDTH);
                (first..=last).collect()
            }
        };
        wanted
            .into_iter()
            .filter(|&s| s % 2 == 0 && self.slots.count[s] > 0)
            .collect()
    }

    /// Gathers the impostors of the given run slots that are not cached yet, in
    /// one parallel pass over all impostors.
    fn load_runs(&self, slots: &[usize]) {
        let mut missing: Vec<usize> = {
            let cache = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .iter()
                .copied()
                .filter(|&s| s % 2 == 0 && !cache.contains_key(&s))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return;
        }
        let idx = &self.index;
        // Run slots are disjoint open intervals, in decreasing score order. A
        // score outside [lowest, highest] of the wanted runs is rejected by two
        // comparisons, which is the fate of almost every impostor.
        let (lowest, highest) = missing
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
                (lo.min(self.slots.min[s]), hi.max(self.slots.max[s]))
            });
        let owner = |x: f64| -> Option<usize> {
            if x < lowest || x > highest {
                return None;
            }
            // `x` lies in a slot after `s` exactly when it is below all of slots 0..=s.
            let pos = missing.partition_point(|&s| !idx.in_slot_range(x, 0, s));
            (pos < missing.len() && idx.in_slot_range(x, missing[pos], missing[pos])).then_some(pos)
        };
        let empty = || vec![Vec::new(); missing.len()];
        let take = |acc: &mut Vec<Vec<f64>>, x: f64| {
            let x = checks::canonical(x);
            if let Some(p) = owner(x) {
                acc[p].push(x);
            }
        };
        let merge = |mut a: Vec<Vec<f64>>, b: Vec<Vec<f64>>| {
            a.iter_mut().zip(b).for_each(|(x, y)| x.extend(y));
            a
        };
        const CHUNK: usize = 1 << 16;
        let mut gathered = match &self.impostors {
            Impostors::Split(s) => s
                .par_chunks(CHUNK)
                .map(|c| {
                    let mut acc = empty();
                    c.iter().for_each(|&x| take(&mut acc, x));
                    acc
                })
                .reduce(empty, merge),
            Impostors::Pairs { scores, genuine } => scores
                .par_chunks(CHUNK)
                .zip(genuine.par_chunks(CHUNK))
                .map(|(c, g)| {
                    let mut acc = empty();
                    c.iter()
                        .zip(g)
                        .filter(|(_, &g)| !g)
                        .for_each(|(&x, _)| take(&mut acc, x));
                    acc
                })
                .reduce(empty, merge),
        };
        gathered
            .par_iter_mut()
            .for_each(|v| v.sort_unstable_by(|a, b| b.total_cmp(a)));
        let mut cache = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        for (slot, v) in missing.into_iter().zip(gathered) {
            cache.insert(slot, v);
        }
    }

    /// The impostors in slots `first..=last`, sorted decreasing.
    fn gather(&self, first: usize, last: usize) -> Vec<f64> {
        let runs: Vec<usize> = (first..=last)
            .filter(|s| s % 2 == 0 && self.slots.count[*s] > 0)
            .collect();
        self.load_runs(&runs);
        let cache = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for s in first..=last {
            let c = self.slots.count[s];
            if c == 0 {
                continue;
            }
            if s % 2 == 1 {
                // Impostors tied with a genuine value are all that value.
                out.extend(std::iter::repeat_n(self.index.values[s / 2], c as usize));
            } else if let Some(run) = cache.get(&s) {
                out.extend_from_slice(run);
            }
        }
        out
    }

    /// Gathers, in one pass, every run that a report at these FAR targets
    /// (all conventions) and the EER will read.
    pub(crate) fn preload(&self, targets: &[f64]) {
        let mut needed: Vec<usize> = FarConvention::ALL
            .iter()
            .flat_map(|&c| targets.iter().flat_map(move |&f| self.slots_needed(f, c)))
            .collect();
        needed.extend(self.eer_corner().1.filter(|s| s % 2 == 0));
        self.load_runs(&needed);
    }

    /// The exact curve points of slots `first..=last`, with the counts before them.
    fn materialize(&self, first: usize, last: usize) -> (Vec<LocalPoint>, u64, u64) {
        let imp = self.gather(first, last);
        let fps_before: u64 = self.slots.count[..first].iter().sum();
        let tps_before = self.index.genuine_above_slot(first);
        let gen: Vec<(f64, u64)> = (first..=last)
            .filter(|s| s % 2 == 1)
            .map(|s| (self.index.values[s / 2], self.index.counts[s / 2]))
            .collect();
        let mut points: Vec<LocalPoint> = Vec::new();
        let (mut fps, mut tps) = (fps_before, tps_before);
        let (mut i, mut j) = (0, 0);
        while i < imp.len() || j < gen.len() {
            let v = match (imp.get(i), gen.get(j)) {
                (Some(&a), Some(&(b, _))) => a.max(b),
                (Some(&a), None) => a,
                (None, Some(&(b, _))) => b,
                (None, None) => break,
            };
            let mut m = 0;
            while i < imp.len() && imp[i] == v {
                m += 1;
                i += 1;
            }
            let mut g = 0;
            if j < gen.len() && gen[j].0 == v {
                g = gen[j].1;
                j += 1;
            }
            fps += m;
            tps += g;
            points.push(LocalPoint {
                threshold: v,
                m,
                g,
                fps,
                tps,
            });
        }
        (points, fps_before, tps_before)
    }

    /// insightface's nearest point, decided inside a window of slots, or `None`
    /// when the window is too narrow to decide. Returns (threshold, tps, fps).
    fn nearest_in_window(&self, far: f64, first: usize, last: usize) -> Option<(f64, u64, u64)> {
        let at_start = first == 0;
        let at_end = last == self.index.slots() - 1;
        let (pts, fps_before, _) = self.materialize(first, last);
        let n = self.n_impostor as f64;
        let f_star = far * n;
        if !at_start && fps_before as f64 >= f_star {
            return None;
        }
        // Is the FPR value first reached at point q still on the curve after
        // scikit-learn drops collinear points? Point q (with impostors) stands for
        // its value unless the next point has the very same increments.
        let represented = |q: usize| -> Option<bool> {
            if self.keep_all || (at_start && q == 0) {
                return Some(true);
            }
            match pts.get(q + 1) {
                Some(next) => Some(next.m == 0 || (next.m, next.g) != (pts[q].m, pts[q].g)),
                None => at_end.then_some(true),
            }
        };
        // The last point sharing point q's FPR: where insightface reads the TPR.
        let block_end = |q: usize| -> Option<(f64, u64)> {
            let mut r = q + 1;
            while r < pts.len() && pts[r].m == 0 {
                r += 1;
            }
            (r < pts.len() || at_end).then(|| (pts[r - 1].threshold, pts[r - 1].tps))
        };

        let mut right = None;
        for (q, pt) in pts.iter().enumerate() {
            if pt.m > 0 && pt.fps as f64 >= f_star {
                match represented(q)? {
                    true => {
                        right = Some(q);
                        break;
                    }
                    false => continue,
                }
            }
        }
        if right.is_none() && !at_end {
            return None;
        }
        // None here with at_start means the FPR-0 block at the top of the curve.
        let mut left = None;
        for q in (0..pts.len()).rev() {
            if pts[q].m > 0 && (pts[q].fps as f64) <= f_star && represented(q)? {
                left = Some(q);
                break;
            }
        }
        if left.is_none() && !at_start {
            return None;
        }
        let dist = |fps: u64| (fps as f64 / n - far).abs();
        let left_fps = left.map_or(0, |q| pts[q].fps);
        let pick_right = match right {
            None => false,
            Some(r) => dist(pts[r].fps) <= dist(left_fps),
        };
        if pick_right {
            let r = right?;
            let (t, tps) = block_end(r)?;
            return Some((t, tps, pts[r].fps));
        }
        match left {
            Some(q) => {
                let (t, tps) = block_end(q)?;
                Some((t, tps, pts[q].fps))
            }
            None => {
                // FPR = 0: the block runs from the +inf point to the last point
                // before the first impostor.
                let first_imp = pts.iter().position(|p| p.m > 0).unwrap_or(pts.len());
                if first_imp == 0 {
                    Some((f64::INFINITY, 0, 0))
                } else {
                    let p = pts[first_imp - 1];
                    Some((p.threshold, p.tps, 0))
                }
            }
        }
    }

    /// The first ROC corner with FAR ≥ FRR, and the slot ending there.
    fn eer_corner(&self) -> (usize, Option<usize>) {
        let (p, n) = (self.n_genuine() as f64, self.n_impostor as f64);
        let b = self
            .corners
            .iter()
            .position(|c| c.fps as f64 / n >= 1.0 - c.tps as f64 / p)
            .unwrap_or(self.corners.len() - 1);
        (b, Some(self.corners[b].slot).filter(|&s| s != usize::MAX))
    }

    /// The equal error rate, its interval and threshold.
    ///
    /// On the full ROC (every distinct threshold, `(0, 0)` at `+inf` first), let
    /// `b` be the first point with FAR ≥ FRR and `a` the point before it. The EER is
    /// where the straight line from `a` to `b` crosses FAR = FRR; it lies in
    /// `[max(FAR_a, FRR_b), min(FRR_a, FAR_b)]`.
    pub fn eer(&self) -> Eer {
        let (p, n) = (self.n_genuine() as f64, self.n_impostor as f64);
        let far_frr = |fps: u64, tps: u64| (fps as f64 / n, 1.0 - tps as f64 / p);
        let b = self.eer_corner().0;
        let (cb, ca) = (self.corners[b], self.corners[b - 1]);
        // Bracketing points of the full curve.
        let (a_pt, b_pt) = if cb.slot % 2 == 0 {
            // The crossing is inside a run of impostors: walk its exact points.
            let (pts, _, _) = self.materialize(cb.slot, cb.slot);
            let q = pts
                .iter()
                .position(|pt| {
                    let (far, frr) = far_frr(pt.fps, pt.tps);
                    far >= frr
                })
                .unwrap_or(pts.len() - 1);
            let a = if q == 0 {
                (ca.fps, ca.tps)
            } else {
                (pts[q - 1].fps, pts[q - 1].tps)
            };
            (a, (pts[q].fps, pts[q].tps, pts[q].threshold))
        } else {
            ((ca.fps, ca.tps), (cb.fps, cb.tps, cb.threshold))
        };
        let (far_a, frr_a) = far_frr(a_pt.0, a_pt.1);
        let (far_b, frr_b) = far_frr(b_pt.0, b_pt.1);
        let alpha = (frr_a - far_a) / ((far_b - far_a) - (frr_b - frr_a));
        Eer {
            eer: far_a + alpha * (far_b - far_a),
            lower: far_a.max(frr_b),
            upper: frr_a.min(far_b),
            threshold: b_pt.2,
        }
    }
}

/// Verification accuracy at a threshold: genuine pairs with `score > threshold`
/// plus impostor pairs with `score <= threshold`, over all pairs. On a list of
/// genuine pairs alone it is the fraction scoring above the threshold (the
/// "accuracy at 0.6 / 0.7 / 0.8" table).
///
/// # Errors
/// Length mismatch, empty input or a non-finite score or threshold.
///
/// # Examples
/// ```
/// let acc = face_metrics::threshold_accuracy(&[0.9, 0.65, 0.5], &[true, true, false], 0.6).unwrap();
/// assert_eq!(acc, 1.0);
/// ```
pub fn threshold_accuracy(scores: &[f64], genuine: &[bool], threshold: f64) -> Result<f64> {
    checks::same_len("threshold_accuracy", scores.len(), genuine.len())?;
    checks::non_empty("threshold_accuracy", scores.len())?;
    checks::all_finite("threshold_accuracy", scores)?;
    checks::all_finite("threshold_accuracy threshold", &[threshold])?;
    let correct = scores
        .par_iter()
        .zip(genuine.par_iter())
        .filter(|(&s, &g)| (s > threshold) == g)
        .count();
    Ok(correct as f64 / scores.len() as f64)
}
