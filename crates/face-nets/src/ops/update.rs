//! The parameter updates of a training step on NdArray f32, each one parallel pass over a
//! parameter: AdamW (gradient clipping, decoupled decay, both moments and the step) and the
//! exponential moving average of a teacher.
//!
//! Every element goes through the same f32 operations, in the same order, as Burn's composed
//! ops ([`super::adamw_step`]'s and [`super::ema`]'s other bodies), so the two agree to the bit;
//! only the clipping norm is summed in another order (fixed blocks in f64, so a run is the same
//! whatever the thread count).

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// Where a pass reads a tensor and writes its new value: in place, or from `src` into a new
/// buffer (when the old tensor is still shared).
pub(crate) enum Target<'a> {
    InPlace(&'a mut [f32]),
    Fresh(&'a [f32], &'a mut [MaybeUninit<f32>]),
}

impl Target<'_> {
    /// Elements written, which every source must match.
    fn len(&self) -> usize {
        match self {
            Target::InPlace(t) => t.len(),
            Target::Fresh(src, out) => {
                assert_eq!(src.len(), out.len(), "a fresh target as long as its source");
                out.len()
            }
        }
    }
}

/// The per-step constants of an AdamW update, every one already the f32 Burn's ops use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamConsts {
    /// The gradient's clipping factor, when clipping.
    pub clip: Option<f32>,
    /// `1 − lr·wd`, when the parameter decays.
    pub decay: Option<f32>,
    pub beta_1: f32,
    pub one_minus_beta_1: f32,
    pub beta_2: f32,
    pub one_minus_beta_2: f32,
    /// `√(1 − β₂ᵗ) / (1 − β₁ᵗ)`.
    pub correction: f32,
    /// `ε·√(1 − β₂ᵗ)`.
    pub epsilon: f32,
    pub lr: f32,
}

/// `min(1, max_norm / (‖g‖₂ + f32::MIN_POSITIVE))`: Burn's per-parameter norm clipping
/// factor, the sum of squares taken over fixed blocks in f64.
pub(crate) fn clip_factor(g: &[f32], max_norm: f32) -> f32 {
    let blocks: Vec<f64> = g
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>())
        .collect();
    let norm = (blocks.iter().sum::<f64>() as f32).sqrt();
    (max_norm * (1.0 / (norm + f32::MIN_POSITIVE))).min(1.0)
}

/// One AdamW step over a parameter `p` with gradient `g` and moments `m`, `v` (updated in
/// place).
///
/// # Panics
/// When the lengths differ (every element of a fresh target must be written).
pub(crate) fn adamw(p: Target<'_>, g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamConsts) {
    let n = p.len();
    assert!(
        g.len() == n && m.len() == n && v.len() == n,
        "adamw: unequal lengths"
    );
    match p {
        Target::InPlace(p) => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| simd!(adamw_in_place(p, g, m, v, k))),
        Target::Fresh(src, out) => out
            .par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((out, (src, g)), (m, v))| simd!(adamw_fresh(out, src, g, m, v, k))),
    }
}

#[inline(always)]
fn adamw_in_place(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamConsts) {
    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
        *p = adamw_element(*p, *g, m, v, k);
    }
}

#[inline(always)]
fn adamw_fresh(
    out: &mut [MaybeUninit<f32>],
    src: &[f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: &AdamConsts,
) {
    for ((((o, p), g), m), v) in out.iter_mut().zip(src).zip(g).zip(m).zip(v) {
        o.write(adamw_element(*p, *g, m, v, k));
    }
}

/// Burn's `Adam` step on one element, after its gradient clipping and `AdamW`'s decay: the
/// same operations in the same order.
#[inline(always)]
fn adamw_element(p: f32, g: f32, m: &mut f32, v: &mut f32, k: &AdamConsts) -> f32 {
    let g = match k.clip {
        Some(c) => g * c,
        None => g,
    };
    let p = match k.decay {
        Some(f) => p * f,
        None => p,
    };
    *m = *m * k.beta_1 + g * k.one_minus_beta_1;
    *v = *v * k.beta_2 + g * g * k.one_minus_beta_2;
    let delta = *m * k.correction / (v.sqrt() + k.epsilon);
    p - delta * k.lr
}

/// `t·a + s·b` element by element (the teacher's moving average, `a = m`, `b = 1 − m`).
///
/// # Panics
/// When the lengths differ.
pub(crate) fn blend(t: Target<'_>, s: &[f32], a: f32, b: f32) {
    assert_eq!(t.len(), s.len(), "blend: unequal lengths");
    match t {
        Target::InPlace(t) => t
            .par_chunks_mut(CHUNK)
            .zip(s.par_chunks(CHUNK))
            .for_each(|(t, s)| simd!(blend_in_place(t, s, a, b))),
        Target::Fresh(src, out) => out
            .par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK).zip(s.par_chunks(CHUNK)))
            .for_each(|(out, (t, s))| simd!(blend_fresh(out, t, s, a, b))),
    }
}

#[inline(always)]
fn blend_in_place(t: &mut [f32], s: &[f32], a: f32, b: f32) {
    for (t, s) in t.iter_mut().zip(s) {
        *t = *t * a + s * b;
    }
}

#[inline(always)]
fn blend_fresh(out: &mut [MaybeUninit<f32>], t: &[f32], s: &[f32], a: f32, b: f32) {
    for ((o, t), s) in out.iter_mut().zip(t).zip(s) {
        o.write(t * a + s * b);
    }
}
