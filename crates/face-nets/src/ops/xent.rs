//! Soft-target cross-entropy between views ([`super::view_cross_entropy`]) on NdArray f32: one
//! parallel pass over the student's rows forward (tempered log-softmax and every weighted target
//! row's dot product) and one backward (`(p·Σw·q − Σ w·q)/τ`), with no `[rows, K]` temporary.

use rayon::prelude::*;

use super::dense::{exp, zeroed};

/// The layout of [`super::view_cross_entropy`]'s operands: `views` student views and `targets`
/// target views of `n` images each, over `k` classes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Views {
    pub n: usize,
    pub k: usize,
    pub views: usize,
    pub targets: usize,
}

/// The sum of `values` in f64 over 8 interleaved partial sums (so that it vectorises and a
/// row of 65 536 terms keeps its precision).
#[inline(always)]
fn sum64(values: impl Iterator<Item = f64>) -> f64 {
    let mut lanes = [0f64; 8];
    for (i, v) in values.enumerate() {
        lanes[i % 8] += v;
    }
    lanes.iter().sum()
}

/// The tempered row's maximum and `ln Σ exp(x/τ − max)`, the parts of its log-normaliser.
#[inline(always)]
fn normaliser(x: &[f32], inv_t: f32) -> (f32, f64) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v * inv_t));
    let sum = sum64(x.iter().map(|v| f64::from(exp(*v * inv_t - max))));
    (max, sum.ln())
}

/// The target rows that student row `row` is scored against, with their weights (pairs of
/// weight 0 skipped).
#[inline(always)]
fn weighted_targets<'a>(
    q: &'a [f32],
    w: &'a [f32],
    s: Views,
    row: usize,
) -> impl Iterator<Item = (f32, &'a [f32])> + 'a {
    let (v, r) = (row / s.n, row % s.n);
    (0..s.targets).filter_map(move |i| {
        let weight = w[v * s.targets + i];
        (weight != 0.0).then(|| (weight, &q[(i * s.n + r) * s.k..][..s.k]))
    })
}

/// `Σ_v Σ_i w[v·targets + i] · Σ_r −q[i·n + r] · log_softmax(x[v·n + r]/τ)` over rows of `k`.
pub(crate) fn forward(x: &[f32], q: &[f32], w: &[f32], s: Views, temperature: f32) -> f64 {
    let inv_t = 1.0 / temperature;
    let rows: Vec<f64> = x
        .par_chunks(s.k)
        .enumerate()
        .map(|(row, x)| simd!(forward_row(x, q, w, s, row, inv_t)))
        .collect();
    rows.iter().sum()
}

#[inline(always)]
fn forward_row(x: &[f32], q: &[f32], w: &[f32], s: Views, row: usize, inv_t: f32) -> f64 {
    let (max, log_sum) = normaliser(x, inv_t);
    let lse = f64::from(max) + log_sum;
    let mut loss = 0f64;
    for (weight, t) in weighted_targets(q, w, s, row) {
        let dot = sum64(
            t.iter()
                .zip(x)
                .map(|(q, x)| f64::from(*q) * f64::from(*x * inv_t)),
        );
        let mass = sum64(t.iter().map(|q| f64::from(*q)));
        loss += f64::from(weight) * (lse * mass - dot);
    }
    loss
}

/// The gradient of [`forward`] with respect to `x`, times `dy`.
pub(crate) fn backward(x: &[f32], q: &[f32], w: &[f32], s: Views, temperature: f32, dy: f32) -> Vec<f32> {
    let inv_t = 1.0 / temperature;
    let mut out = zeroed(x.len());
    out.par_chunks_mut(s.k)
        .zip(x.par_chunks(s.k))
        .enumerate()
        .for_each(|(row, (out, x))| simd!(backward_row(out, x, q, w, s, row, inv_t, dy)));
    out
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_row(out: &mut [f32], x: &[f32], q: &[f32], w: &[f32], s: Views, row: usize, inv_t: f32, dy: f32) {
    // `out` first holds the weighted target Σᵢ wᵢ·qᵢ, then the gradient.
    let mut mass = 0f64;
    for (weight, t) in weighted_targets(q, w, s, row) {
        for (o, q) in out.iter_mut().zip(t) {
            *o += weight * q;
        }
        mass += f64::from(weight) * sum64(t.iter().map(|q| f64::from(*q)));
    }
    let (max, log_sum) = normaliser(x, inv_t);
    let scale = dy * inv_t;
    let p_mass = (-log_sum).exp() as f32 * mass as f32;
    for (o, x) in out.iter_mut().zip(x) {
        *o = scale * (exp(*x * inv_t - max) * p_mass - *o);
    }
}
