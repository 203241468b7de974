//! irAUC: inverted running per-batch AUC, the training monitor of DESIGN.md.
//!
//! For a batch of P identities × K images, all B(B−1)/2 pairs are scored by
//! cosine; `AUC_b` is the Mann–Whitney AUC of genuine against impostor pairs
//! (ties ½). Batches without both kinds of pair are *skipped* and counted, never
//! scored 0. The running AUC smooths `AUC_b` (EMA or window mean) and
//! irAUC = 1 − running AUC: lower is better, read on a log axis.
//!
//! A mean of per-batch AUCs is not the AUC of all pairs pooled, so
//! [`StreamingAuc`] accumulates the pooled (global) AUC beside it.

use std::collections::VecDeque;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::checks;
use crate::error::{MetricsError, Result};
use crate::slots::GenuineIndex;

/// The AUC of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchAuc {
    /// Mann–Whitney AUC of the batch's pairs.
    pub auc: f64,
    /// Genuine (same-label) pairs.
    pub genuine_pairs: u64,
    /// Impostor pairs.
    pub impostor_pairs: u64,
}

/// Scores every pair of a batch of embeddings by cosine and computes its AUC.
#[derive(Debug, Clone, Default)]
pub struct PairwiseBatchAuc {
    normalized: Vec<f32>,
    gram: Vec<f32>,
}

impl PairwiseBatchAuc {
    /// A scorer with empty buffers (they grow to the largest batch seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// Cosine similarities of all pairs `i < j` of a row-major `b × dim` batch,
    /// with `same[i]` telling whether the pair is genuine. Returns
    /// (genuine scores, impostor scores).
    ///
    /// # Errors
    /// Shape mismatch, non-finite values, or a zero-norm row.
    pub fn pair_scores<L: PartialEq>(
        &mut self,
        embeddings: &[f32],
        dim: usize,
        labels: &[L],
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let b = self.gram_matrix(embeddings, dim, labels.len())?;
        let (mut gen, mut imp) = (Vec::new(), Vec::with_capacity(b * (b - 1) / 2));
        for i in 0..b {
            let row = &self.gram[i * b..(i + 1) * b];
            for j in i + 1..b {
                let s = f64::from(row[j]);
                if labels[i] == labels[j] {
                    gen.push(s);
                } else {
                    imp.push(s);
                }
            }
        }
        Ok((gen, imp))
    }

    /// The AUC of one batch, or `None` when the batch has no genuine or no
    /// impostor pair (the caller skips it).
    ///
    /// # Errors
    /// `embeddings.len() != labels.len() * dim`, `dim` = 0, fewer than 2 rows,
    /// non-finite values, or a zero-norm row.
    ///
    /// # Examples
    /// ```
    /// use face_metrics::PairwiseBatchAuc;
    /// // Two identities, two images each, in 2-D.
    /// let emb = [1.0, 0.0,  0.9, 0.1,  0.0, 1.0,  0.1, 0.9];
    /// let auc = PairwiseBatchAuc::new().compute(&emb, 2, &[0, 0, 1, 1]).unwrap().unwrap();
    /// assert_eq!((auc.auc, auc.genuine_pairs, auc.impostor_pairs), (1.0, 2, 4));
    /// let skipped = PairwiseBatchAuc::new().compute(&emb, 2, &[7, 7, 7, 7]).unwrap();
    /// assert!(skipped.is_none());
    /// ```
    pub fn compute<L: PartialEq + Sync>(
        &mut self,
        embeddings: &[f32],
        dim: usize,
        labels: &[L],
    ) -> Result<Option<BatchAuc>> {
        let b = self.gram_matrix(embeddings, dim, labels.len())?;
        let gen: Vec<f64> = (0..b)
            .flat_map(|i| (i + 1..b).map(move |j| (i, j)))
            .filter(|&(i, j)| labels[i] == labels[j])
            .map(|(i, j)| f64::from(self.gram[i * b + j]))
            .collect();
        let total = (b * (b - 1) / 2) as u64;
        let n_gen = gen.len() as u64;
        if n_gen == 0 || n_gen == total {
            return Ok(None);
        }
        let index = GenuineIndex::new(gen);
        // 2 × (wins + ties/2), accumulated per impostor without storing them;
        // rows are shared between the cores.
        let gram = &self.gram;
        let twice_wins: u64 = (0..b)
            .into_par_iter()
            .map(|i| {
                let row = &gram[i * b..(i + 1) * b];
                let mut acc = 0u64;
                for j in i + 1..b {
                    if labels[i] != labels[j] {
                        acc += index.twice_wins(index.slot(f64::from(row[j])));
                    }
                }
                acc
            })
            .sum();
        let n_imp = total - n_gen;
        Ok(Some(BatchAuc {
            auc: twice_wins as f64 / (2 * n_gen * n_imp) as f64,
            genuine_pairs: n_gen,
            impostor_pairs: n_imp,
        }))
    }

    /// L2-normalises the rows and fills `self.gram` (b × b, row-major) with
    /// their dot products. Returns `b`.
    fn gram_matrix(&mut self, embeddings: &[f32], dim: usize, b: usize) -> Result<usize> {
        if dim == 0 {
            return Err(MetricsError::InvalidParameter {
                what: "embedding dim",
                reason: "must be at least 1".into(),
            });
        }
        checks::same_len("embeddings (batch × dim)", b * dim, embeddings.len())?;
        if b < 2 {
            return Err(MetricsError::InvalidParameter {
                what: "batch size",
                reason: format!("needs at least 2 embeddings, got {b}"),
            });
        }
        // A branch-free scan first; the index of a bad value only when there is one.
        if !embeddings.iter().fold(true, |ok, x| ok & x.is_finite()) {
            checks::all_finite_f32("embeddings", embeddings)?;
        }
        self.normalized.clear();
        self.normalized.extend_from_slice(embeddings);
        for (row, chunk) in self.normalized.chunks_mut(dim).enumerate() {
            // Eight f32 lanes (vectorised), summed in f64 at the end.
            let mut lanes = [0f32; 8];
            let mut it = chunk.chunks_exact(8);
            for c in &mut it {
                for (l, x) in lanes.iter_mut().zip(c) {
                    *l += x * x;
                }
            }
            let tail: f64 = it.remainder().iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let norm = (lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + tail).sqrt();
            if !(norm > 0.0 && norm.is_finite()) {
                return Err(MetricsError::DegenerateEmbedding {
                    what: "embeddings",
                    row,
                    norm,
                });
            }
            let inv = (1.0 / norm) as f32;
            chunk.iter_mut().for_each(|x| *x *= inv);
        }
        // With beta = 0 the product never reads `gram`, so it needs no zeroing.
        self.gram.resize(b * b, 0.0);
        // Only pairs i < j are read, so two blocks cover them: rows [0, h) against
        // all columns, and rows [h, b) against columns [h, b). With h ≈ 0.382·b
        // that is 76 % of the full product's work.
        let h = ((b as f64) * 0.381_966).round() as usize;
        gram_block(&self.normalized, dim, b, 0, h, 0, &mut self.gram);
        gram_block(&self.normalized, dim, b, h, b, h, &mut self.gram);
        Ok(b)
    }
}

/// Fills rows `r0..r1`, columns `c0..b` of the `b × b` Gram matrix `gram` of
/// the row-normalised `x` (`b × dim`, row-major).
fn gram_block(x: &[f32], dim: usize, b: usize, r0: usize, r1: usize, c0: usize, gram: &mut [f32]) {
    let (m, n) = (r1.saturating_sub(r0), b.saturating_sub(c0));
    if m == 0 || n == 0 || dim == 0 || x.len() < b * dim || gram.len() < b * b || r1 > b {
        return;
    }
    // SAFETY: A = rows r0..r1 of x (m × dim, row stride dim); B = rows c0..b of x
    // read transposed (dim × n: row stride 1, column stride dim); C starts at
    // gram[r0·b + c0] (m × n, row stride b). The guard above keeps every index
    // inside `x` and `gram`, and `gram` does not alias `x`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            dim,
            n,
            1.0,
            x.as_ptr().add(r0 * dim),
            dim as isize,
            1,
            x.as_ptr().add(c0 * dim),
            1,
            dim as isize,
            0.0,
            gram.as_mut_ptr().add(r0 * b + c0),
            b as isize,
            1,
        );
    }
}

/// Mann–Whitney AUC of non-empty genuine and impostor score lists.
fn auc_of_split(gen: Vec<f64>, imp: &[f64]) -> BatchAuc {
    let (n_gen, n_imp) = (gen.len() as u64, imp.len() as u64);
    let index = GenuineIndex::new(gen);
    let twice_wins: u64 = imp.iter().map(|&s| index.twice_wins(index.slot(s))).sum();
    BatchAuc {
        auc: twice_wins as f64 / (2 * n_gen * n_imp) as f64,
        genuine_pairs: n_gen,
        impostor_pairs: n_imp,
    }
}

/// How the per-batch AUCs are smoothed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Smoothing {
    /// Exponential moving average `r ← (1 − alpha)·r + alpha·AUC_b`, started at
    /// the first batch's AUC. `alpha` in (0, 1].
    Ema {
        /// Weight of the newest batch.
        alpha: f64,
    },
    /// Mean of the last `n` batch AUCs.
    Window {
        /// Window length (≥ 1).
        n: usize,
    },
}

/// Running (smoothed) per-batch AUC.
#[derive(Debug, Clone)]
pub struct RunningAuc {
    smoothing: Smoothing,
    ema: Option<f64>,
    window: VecDeque<f64>,
    window_sum: f64,
}

impl RunningAuc {
    /// A running AUC with the given smoothing.
    ///
    /// # Errors
    /// `alpha` outside (0, 1] or a zero window.
    pub fn new(smoothing: Smoothing) -> Result<Self> {
        match smoothing {
            Smoothing::Ema { alpha } if !(alpha > 0.0 && alpha <= 1.0) => {
                return Err(MetricsError::InvalidParameter {
                    what: "EMA alpha",
                    reason: format!("must be in (0, 1], got {alpha}"),
                })
            }
            Smoothing::Window { n: 0 } => {
                return Err(MetricsError::InvalidParameter {
                    what: "window length",
                    reason: "must be at least 1".into(),
                })
            }
            _ => {}
        }
        Ok(Self {
            smoothing,
            ema: None,
            window: VecDeque::new(),
            window_sum: 0.0,
        })
    }

    /// Adds one batch AUC and returns the running value.
    pub fn update(&mut self, auc: f64) -> f64 {
        match self.smoothing {
            Smoothing::Ema { alpha } => {
                let r = self.ema.map_or(auc, |r| (1.0 - alpha) * r + alpha * auc);
                self.ema = Some(r);
                r
            }
            Smoothing::Window { n } => {
                self.window.push_back(auc);
                self.window_sum += auc;
                if self.window.len() > n {
                    self.window_sum -= self.window.pop_front().unwrap_or(0.0);
                }
                // Recompute from the window now and then to stop drift.
                if self.window.len() == n {
                    self.window_sum = self.window.iter().sum();
                }
                self.window_sum / self.window.len() as f64
            }
        }
    }

    /// The running AUC, `None` before the first batch.
    pub fn value(&self) -> Option<f64> {
        match self.smoothing {
            Smoothing::Ema { .. } => self.ema,
            Smoothing::Window { .. } => {
                (!self.window.is_empty()).then(|| self.window_sum / self.window.len() as f64)
            }
        }
    }
}

/// The pooled AUC of all pairs seen, in bounded memory: a fine histogram of
/// genuine and impostor scores over `[lo, hi]` (scores outside are clamped into
/// the edge bins).
///
/// **Exactness.** Pairs in different bins are ordered exactly; a genuine and an
/// impostor score in the same bin count ½. So the result is exact whenever no bin
/// holds both kinds, and in general [`StreamingAuc::auc`] returns the value with its
/// error bound `½ · Σ_bins genuine_b · impostor_b / (P · N)`. With the default
/// 2²⁰ bins over [−1, 1] (bin width 1.9e-6) on cosine scores the bound is
/// typically below 1e-5.
///
/// # Examples
/// ```
/// use face_metrics::StreamingAuc;
/// let mut acc = StreamingAuc::cosine();
/// acc.add(&[0.9, 0.8], &[0.1, 0.85]);
/// acc.add(&[0.7], &[-0.2]);
/// let (auc, bound) = acc.auc().unwrap();
/// // impostor 0.1 loses to 3 genuine, 0.85 to 1, -0.2 to 3: 7 of 9 pairs.
/// assert!((auc - 7.0 / 9.0).abs() <= bound + 1e-15);
/// ```
#[derive(Debug, Clone)]
pub struct StreamingAuc {
    lo: f64,
    hi: f64,
    genuine: Vec<u64>,
    impostor: Vec<u64>,
    skipped_non_finite: u64,
}

impl StreamingAuc {
    /// 2²⁰ bins over [−1, 1], for cosine similarities.
    pub fn cosine() -> Self {
        Self {
            lo: -1.0,
            hi: 1.0,
            genuine: vec![0; 1 << 20],
            impostor: vec![0; 1 << 20],
            skipped_non_finite: 0,
        }
    }

    /// `bins` bins over `[lo, hi]`.
    ///
    /// # Errors
    /// `bins` = 0, or `lo >= hi`, or a non-finite bound.
    pub fn new(lo: f64, hi: f64, bins: usize) -> Result<Self> {
        if bins == 0 || lo >= hi || !lo.is_finite() || !hi.is_finite() {
            return Err(MetricsError::InvalidParameter {
                what: "StreamingAuc",
                reason: format!("needs bins >= 1 and finite lo < hi, got {bins} bins over [{lo}, {hi}]"),
            });
        }
        Ok(Self {
            lo,
            hi,
            genuine: vec![0; bins],
            impostor: vec![0; bins],
            skipped_non_finite: 0,
        })
    }

    #[inline]
    fn bin(&self, s: f64) -> usize {
        let n = self.genuine.len();
        let b = ((s - self.lo) / (self.hi - self.lo) * n as f64).floor();
        if b <= 0.0 {
            0
        } else if b >= (n - 1) as f64 {
            n - 1
        } else {
            b as usize
        }
    }

    /// Adds genuine and impostor scores. Non-finite scores are not added; they
    /// are counted in [`StreamingAuc::skipped_non_finite`].
    pub fn add(&mut self, genuine: &[f64], impostor: &[f64]) {
        for &s in genuine {
            if s.is_finite() {
                let b = self.bin(s);
                self.genuine[b] += 1;
            } else {
                self.skipped_non_finite += 1;
            }
        }
        for &s in impostor {
            if s.is_finite() {
                let b = self.bin(s);
                self.impostor[b] += 1;
            } else {
                self.skipped_non_finite += 1;
            }
        }
    }

    /// Adds another accumulator of the same binning (e.g. from another worker).
    ///
    /// # Errors
    /// Different binning.
    pub fn merge(&mut self, other: &StreamingAuc) -> Result<()> {
        if (self.lo, self.hi, self.genuine.len()) != (other.lo, other.hi, other.genuine.len()) {
            return Err(MetricsError::InvalidParameter {
                what: "StreamingAuc::merge",
                reason: "accumulators have different binning".into(),
            });
        }
        self.genuine
            .iter_mut()
            .zip(&other.genuine)
            .for_each(|(a, b)| *a += b);
        self.impostor
            .iter_mut()
            .zip(&other.impostor)
            .for_each(|(a, b)| *a += b);
        self.skipped_non_finite += other.skipped_non_finite;
        Ok(())
    }

    /// Scores that were not added because they were NaN or infinite.
    pub fn skipped_non_finite(&self) -> u64 {
        self.skipped_non_finite
    }

    /// Genuine and impostor counts so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.genuine.iter().sum(), self.impostor.iter().sum())
    }

    /// The pooled AUC and its maximum absolute error (0 when exact).
    ///
    /// # Errors
    /// No genuine or no impostor score yet.
    pub fn auc(&self) -> Result<(f64, f64)> {
        let (p, n) = self.counts();
        checks::both_classes("StreamingAuc", p as usize, n as usize)?;
        // Walk bins from the top: each impostor wins against every genuine in a
        // higher bin and ties with those in its own.
        let (mut gen_above, mut twice_wins, mut twice_tied) = (0u128, 0u128, 0u128);
        for b in (0..self.genuine.len()).rev() {
            let (g, i) = (u128::from(self.genuine[b]), u128::from(self.impostor[b]));
            twice_wins += i * (2 * gen_above + g);
            twice_tied += i * g;
            gen_above += g;
        }
        let denom = 2.0 * p as f64 * n as f64;
        Ok((twice_wins as f64 / denom, twice_tied as f64 / denom))
    }
}

/// One update of an [`IrAucMonitor`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IrAucStep {
    /// The batch AUC, `None` when the batch was skipped.
    pub batch: Option<BatchAuc>,
    /// Running AUC after this batch (`None` until a batch is scored).
    pub running_auc: Option<f64>,
    /// irAUC = 1 − running AUC.
    pub ir_auc: Option<f64>,
}

/// The irAUC monitor: per-batch AUC, running AUC, irAUC, skipped batches, and
/// the exact-within-bound pooled AUC of all batches.
///
/// # Examples
/// ```
/// use face_metrics::{IrAucMonitor, Smoothing};
/// let mut m = IrAucMonitor::new(Smoothing::Ema { alpha: 0.1 }).unwrap();
/// let emb = [1.0, 0.0,  0.8, 0.2,  0.0, 1.0,  0.3, 0.7];
/// let step = m.update(&emb, 2, &[0, 0, 1, 1]).unwrap();
/// assert_eq!(step.ir_auc, Some(0.0));
/// m.update(&emb, 2, &[0, 0, 0, 0]).unwrap(); // single identity: skipped
/// assert_eq!(m.skipped(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct IrAucMonitor {
    scorer: PairwiseBatchAuc,
    running: RunningAuc,
    global: StreamingAuc,
    history: Vec<IrAucStep>,
    skipped: u64,
}

impl IrAucMonitor {
    /// A monitor with the given smoothing and a cosine [`StreamingAuc`].
    ///
    /// # Errors
    /// Invalid smoothing parameters.
    pub fn new(smoothing: Smoothing) -> Result<Self> {
        Ok(Self {
            scorer: PairwiseBatchAuc::new(),
            running: RunningAuc::new(smoothing)?,
            global: StreamingAuc::cosine(),
            history: Vec::new(),
            skipped: 0,
        })
    }

    /// Scores one batch (row-major `labels.len() × dim`).
    ///
    /// # Errors
    /// As [`PairwiseBatchAuc::compute`].
    pub fn update<L: PartialEq + Sync>(
        &mut self,
        embeddings: &[f32],
        dim: usize,
        labels: &[L],
    ) -> Result<IrAucStep> {
        let (gen, imp) = self.scorer.pair_scores(embeddings, dim, labels)?;
        let batch = if gen.is_empty() || imp.is_empty() {
            self.skipped += 1;
            None
        } else {
            self.global.add(&gen, &imp);
            Some(auc_of_split(gen, &imp))
        };
        let running_auc = match batch {
            Some(b) => Some(self.running.update(b.auc)),
            None => self.running.value(),
        };
        let step = IrAucStep {
            batch,
            running_auc,
            ir_auc: running_auc.map(|r| 1.0 - r),
        };
        self.history.push(step);
        Ok(step)
    }

    /// Batches skipped for lacking genuine or impostor pairs.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Every step so far.
    pub fn history(&self) -> &[IrAucStep] {
        &self.history
    }

    /// The current irAUC (`None` before the first scored batch).
    pub fn ir_auc(&self) -> Option<f64> {
        self.running.value().map(|r| 1.0 - r)
    }

    /// The pooled AUC over all scored batches, with its error bound.
    ///
    /// # Errors
    /// No scored batch yet.
    pub fn global_auc(&self) -> Result<(f64, f64)> {
        self.global.auc()
    }
}
