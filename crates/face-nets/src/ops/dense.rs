//! The fast CPU kernels of the transformer layers: linear layers on the `gemm` crate's packed
//! kernels (forward and both gradients, with transposed operands read through their strides
//! instead of copied) and the exact GELU in one vectorised pass (forward and backward).

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::cpu::{parallelism, sgemm, Strided};

/// A read-only f32 matrix in memory: its first element and (column, row) strides in elements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matrix {
    pub ptr: *const f32,
    pub col_stride: isize,
    pub row_stride: isize,
}

/// GEMMs smaller than this many multiply-adds run on one thread (the pool's start-up costs
/// more than the work).
const PARALLEL_MACS: usize = 1 << 17;

/// Outputs at least this long are filled in parallel.
const PARALLEL_FILL: usize = 1 << 16;

/// `len` zeros. A long one is written in parallel: with freed memory kept for reuse
/// (`keep_freed_memory`), `vec![0.0; len]` is a memset on the calling thread while the pool
/// waits.
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    if len < PARALLEL_FILL {
        return vec![0f32; len];
    }
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .for_each(|c| c.fill(MaybeUninit::new(0.0)));
    // SAFETY: every one of the `len` elements was written just above.
    unsafe { out.set_len(len) };
    out
}

/// `row` repeated `m` times (a bias broadcast over the rows), in parallel when long.
fn tiled(row: &[f32], m: usize) -> Vec<f32> {
    let n = row.len();
    let len = m * n;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    if n == 0 {
        return out;
    }
    let rows_per_task = (CHUNK / n).max(1);
    let fill = |c: &mut [MaybeUninit<f32>]| {
        for r in c.chunks_mut(n) {
            r.iter_mut().zip(row).for_each(|(o, b)| {
                o.write(*b);
            });
        }
    };
    if len < PARALLEL_FILL {
        fill(&mut out.spare_capacity_mut()[..len]);
    } else {
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(rows_per_task * n)
            .for_each(fill);
    }
    // SAFETY: every one of the `len` elements was written above (whole rows of `n`).
    unsafe { out.set_len(len) };
    out
}

/// `x·w + bias` for `x` `[m, k]` (row-major) and `w` `[k, n]` (any strides): Burn's `Linear`.
///
/// # Safety
/// `w` must address `k × n` elements of one live allocation.
pub(crate) unsafe fn linear(x: &[f32], w: Matrix, bias: Option<&[f32]>, [m, k, n]: [usize; 3]) -> Vec<f32> {
    debug_assert_eq!(x.len(), m * k);
    let mut out = match bias {
        Some(b) if b.len() == n => tiled(b, m),
        Some(b) => b.iter().copied().cycle().take(m * n).collect(),
        None => zeroed(m * n),
    };
    if m * n == 0 {
        return out;
    }
    // SAFETY: `out` is `m × n` row-major, `x` is `m × k` row-major, `w` is the caller's.
    unsafe {
        sgemm(
            [m, n, k],
            (out.as_mut_ptr(), 1, n as isize),
            bias.is_some(),
            (x.as_ptr(), 1, k as isize),
            (w.ptr, w.col_stride, w.row_stride),
            parallelism(m * n * k >= PARALLEL_MACS),
        );
    }
    out
}

/// The gradients of [`linear`] from `dy` `[m, n]`: `(∂L/∂x = dy·wᵀ, ∂L/∂w = xᵀ·dy, ∂L/∂b = Σ dy)`,
/// each computed only when asked for. `∂L/∂w` is `[k, n]` row-major.
///
/// # Safety
/// `w` must address `k × n` elements of one live allocation.
pub(crate) unsafe fn linear_backward(
    x: &[f32],
    w: Matrix,
    dy: &[f32],
    [m, k, n]: [usize; 3],
    [want_dx, want_dw, want_db]: [bool; 3],
) -> [Option<Vec<f32>>; 3] {
    debug_assert_eq!((x.len(), dy.len()), (m * k, m * n));
    let par = parallelism(m * n * k >= PARALLEL_MACS);
    // SAFETY: `dy` is `m × n` and `x` `m × k`, row-major; `wᵀ` is `w` with its strides swapped
    // and `xᵀ` is `x` read by columns.
    let dx = want_dx.then(|| unsafe {
        product(
            [m, k, n],
            (dy.as_ptr(), 1, n as isize),
            (w.ptr, w.row_stride, w.col_stride),
            par,
        )
    });
    // SAFETY: as above.
    let dw = want_dw.then(|| unsafe {
        product(
            [k, n, m],
            (x.as_ptr(), k as isize, 1),
            (dy.as_ptr(), 1, n as isize),
            par,
        )
    });
    let db = want_db.then(|| column_sums(dy, n));
    [dx, dw, db]
}

/// `lhs·rhs` (`m × k` by `k × n`) as a new row-major `m × n` matrix.
///
/// # Safety
/// `lhs` and `rhs` must address `m × k` and `k × n` elements of live allocations.
unsafe fn product(
    [m, n, k]: [usize; 3],
    lhs: Strided<*const f32>,
    rhs: Strided<*const f32>,
    par: Parallelism,
) -> Vec<f32> {
    let mut out = zeroed(m * n);
    if !out.is_empty() {
        // SAFETY: `out` is `m × n` row-major; the sources are the caller's.
        unsafe { sgemm([m, n, k], (out.as_mut_ptr(), 1, n as isize), false, lhs, rhs, par) };
    }
    out
}

/// The sums of the columns of a row-major `[_, n]` matrix (f32 accumulators, rows in order).
fn column_sums(v: &[f32], n: usize) -> Vec<f32> {
    let mut sums = vec![0f32; n];
    if n > 0 {
        simd!(add_rows(&mut sums, v));
    }
    sums
}

#[inline(always)]
fn add_rows(sums: &mut [f32], v: &[f32]) {
    for row in v.chunks_exact(sums.len()) {
        sums.iter_mut().zip(row).for_each(|(s, x)| *s += x);
    }
}

/// The sizes of a multi-head self-attention over packed projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttentionShape {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence.
    pub tokens: usize,
    /// Width `c` of q, k and v (the packed input is `3c` wide).
    pub width: usize,
    /// Heads (`c / heads` wide each).
    pub heads: usize,
}

impl AttentionShape {
    fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    fn scale(&self) -> f32 {
        (self.head_dim() as f32).powf(-0.5)
    }
}

/// Scaled dot-product self-attention from packed `qkv` `[b, n, 3c]` (q, k, v side by side):
/// per sequence and head `softmax(q·kᵀ/√d)·v`, with the heads side by side in `[b, n, c]`.
/// Also returns the probabilities `[b, heads, n, n]`, which the backward pass reuses.
///
/// q, k and v are read in place through their strides; each sequence is a task.
pub(crate) fn attention(qkv: &[f32], s: AttentionShape) -> (Vec<f32>, Vec<f32>) {
    let (n, c, hd) = (s.tokens, s.width, s.head_dim());
    debug_assert_eq!(qkv.len(), s.batch * n * 3 * c);
    let mut out = zeroed(s.batch * n * c);
    let mut probs = zeroed(s.batch * s.heads * n * n);
    if out.is_empty() || probs.is_empty() {
        return (out, probs);
    }
    let (row, scale) = (3 * c as isize, s.scale());
    out.par_chunks_mut(n * c)
        .zip(probs.par_chunks_mut(s.heads * n * n))
        .zip(qkv.par_chunks(n * 3 * c))
        .for_each(|((out, probs), qkv)| {
            for (h, p) in probs.chunks_mut(n * n).enumerate() {
                let q = qkv[h * hd..].as_ptr();
                let k = qkv[c + h * hd..].as_ptr();
                let v = qkv[2 * c + h * hd..].as_ptr();
                // SAFETY: q, k and v address n rows of hd values, 3c apart, inside `qkv`; `p`
                // is n × n and `out[h·hd..]` n rows of hd values, c apart, inside `out`.
                unsafe {
                    // p = q·kᵀ (kᵀ is k read by columns)
                    sgemm(
                        [n, n, hd],
                        (p.as_mut_ptr(), 1, n as isize),
                        false,
                        (q, 1, row),
                        (k, row, 1),
                        Parallelism::None,
                    );
                }
                for r in p.chunks_exact_mut(n) {
                    simd!(softmax_row(r, scale));
                }
                let o = out[h * hd..].as_mut_ptr();
                // SAFETY: as above.
                unsafe {
                    sgemm(
                        [n, hd, n],
                        (o, 1, c as isize),
                        false,
                        (p.as_ptr(), 1, n as isize),
                        (v, 1, row),
                        Parallelism::None,
                    );
                }
            }
        });
    (out, probs)
}

/// `r ← softmax(scale·r)` over one row (max subtracted first).
#[inline(always)]
fn softmax_row(r: &mut [f32], scale: f32) {
    let max = r.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    let mut sum = 0f32;
    for v in r.iter_mut() {
        *v = exp((*v - max) * scale);
        sum += *v;
    }
    let inv = 1.0 / sum;
    r.iter_mut().for_each(|v| *v *= inv);
}

/// The gradient of [`attention`] with respect to the packed `qkv`, from `dy` `[b, n, c]` and
/// the forward's probabilities `P`: per sequence and head `dv = Pᵀ·dy`, `dP = dy·vᵀ`,
/// `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dq = dS·k/√d`, `dk = dSᵀ·q/√d`.
pub(crate) fn attention_backward(qkv: &[f32], probs: &[f32], dy: &[f32], s: AttentionShape) -> Vec<f32> {
    let (n, c, hd) = (s.tokens, s.width, s.head_dim());
    let mut dqkv = zeroed(qkv.len());
    if dqkv.is_empty() || probs.is_empty() {
        return dqkv;
    }
    let (row, scale) = (3 * c as isize, s.scale());
    dqkv.par_chunks_mut(n * 3 * c)
        .zip(qkv.par_chunks(n * 3 * c))
        .zip(probs.par_chunks(s.heads * n * n).zip(dy.par_chunks(n * c)))
        .for_each_init(
            || vec![0f32; n * n],
            |ds, ((dqkv, qkv), (probs, dy))| {
                for (h, p) in probs.chunks(n * n).enumerate() {
                    let at = |part: usize| part * c + h * hd;
                    let (q, k, v) = (
                        qkv[at(0)..].as_ptr(),
                        qkv[at(1)..].as_ptr(),
                        qkv[at(2)..].as_ptr(),
                    );
                    let g = dy[h * hd..].as_ptr();
                    let base = dqkv.as_mut_ptr();
                    // SAFETY: as in `attention`; dq, dk and dv are disjoint column blocks of
                    // `dqkv`'s n rows (offsets inside it), and `ds` is n × n.
                    let (dq, dk, dv) = unsafe { (base.add(at(0)), base.add(at(1)), base.add(at(2))) };
                    // SAFETY: as above.
                    unsafe {
                        // dv = Pᵀ·dy
                        sgemm(
                            [n, hd, n],
                            (dv, 1, row),
                            false,
                            (p.as_ptr(), n as isize, 1),
                            (g, 1, c as isize),
                            Parallelism::None,
                        );
                        // dP = dy·vᵀ
                        sgemm(
                            [n, n, hd],
                            (ds.as_mut_ptr(), 1, n as isize),
                            false,
                            (g, 1, c as isize),
                            (v, row, 1),
                            Parallelism::None,
                        );
                    }
                    for (d, p) in ds.chunks_exact_mut(n).zip(p.chunks_exact(n)) {
                        simd!(softmax_row_backward(d, p, scale));
                    }
                    // SAFETY: as above.
                    unsafe {
                        // dq = dS·k, dk = dSᵀ·q (the scale is in dS)
                        sgemm(
                            [n, hd, n],
                            (dq, 1, row),
                            false,
                            (ds.as_ptr(), 1, n as isize),
                            (k, 1, row),
                            Parallelism::None,
                        );
                        sgemm(
                            [n, hd, n],
                            (dk, 1, row),
                            false,
                            (ds.as_ptr(), n as isize, 1),
                            (q, 1, row),
                            Parallelism::None,
                        );
                    }
                }
            },
        );
    dqkv
}

/// `d ← scale·p ⊙ (d − Σ d⊙p)`: a softmax row's backward (with the scale of its logits).
#[inline(always)]
fn softmax_row_backward(d: &mut [f32], p: &[f32], scale: f32) {
    let dot: f32 = d.iter().zip(p).map(|(d, p)| d * p).sum();
    d.iter_mut().zip(p).for_each(|(d, p)| *d = scale * p * (*d - dot));
}

/// Elements per parallel task of the element-wise passes.
const CHUNK: usize = 1 << 14;

/// The exact GELU, `x·Φ(x)` (Φ the standard normal CDF), elementwise.
pub(crate) fn gelu(x: &[f32]) -> Vec<f32> {
    let mut out = zeroed(x.len());
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| simd!(gelu_body(o, x)));
    out
}

#[inline(always)]
fn gelu_body(out: &mut [f32], x: &[f32]) {
    for (o, x) in out.iter_mut().zip(x) {
        *o = x * normal_cdf_and_pdf(*x).0;
    }
}

/// The gradient of [`gelu`]: `dy·(Φ(x) + x·φ(x))`.
pub(crate) fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut out = zeroed(x.len());
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(o, (x, dy))| simd!(gelu_backward_body(o, x, dy)));
    out
}

#[inline(always)]
fn gelu_backward_body(out: &mut [f32], x: &[f32], dy: &[f32]) {
    for ((o, x), g) in out.iter_mut().zip(x).zip(dy) {
        let (cdf, pdf) = normal_cdf_and_pdf(*x);
        *o = g * (cdf + x * pdf);
    }
}

/// `(Φ(x), φ(x))`, branch-free so that loops over it vectorise.
///
/// `Φ(x) = ½·erfc(−x/√2)` with erfc from Abramowitz & Stegun 7.1.26 (absolute error of erf
/// ≤ 1.5·10⁻⁷), which shares `exp(−x²/2)` with the density.
#[inline(always)]
fn normal_cdf_and_pdf(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_72, 1.421_413_8, -1.453_152_1, 1.061_405_4];
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let gauss = exp(-0.5 * x * x);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    // ½·erfc(|x|/√2) = Φ(−|x|)
    let tail = 0.5 * poly * gauss;
    let cdf = if x >= 0.0 { 1.0 - tail } else { tail };
    (cdf, FRAC_1_SQRT_2PI * gauss)
}

/// `eˣ` to about 2 ulp, branch-free: `2ⁿ·e^r` with `n = round(x/ln 2)`, `|r| ≤ ln 2 / 2` and a
/// degree-7 Taylor polynomial for `e^r`. Inputs below −87 give `e⁻⁸⁷` (≈ 1.6·10⁻³⁸), not 0.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // ln 2 split so that n·LN2_HI is exact (Cody & Waite).
    const LN2_HI: f32 = 0.693_359_4; // 355/512 exactly
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n ∈ [−126, 127]: 2ⁿ is a normal float built from its exponent bits.
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Rows per parallel task of the row-wise passes ([`layer_norm`]). Fixed, so the order in
/// which the backward adds the rows' parameter gradients does not depend on the thread count.
const ROWS: usize = 64;

/// LayerNorm over rows of `γ.len()` values: `(x − mean)·rstd·γ + β` with
/// `rstd = 1/√(var + eps)` and the biased variance (Burn's `layer_norm`, PyTorch's
/// `LayerNorm`). Returns the output and each row's `(mean, rstd)` for the backward.
pub(crate) fn layer_norm(
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f32,
) -> (Vec<f32>, Vec<[f32; 2]>) {
    let d = gamma.len();
    let mut out = zeroed(x.len());
    let mut stats = vec![[0f32; 2]; x.len().checked_div(d).unwrap_or(0)];
    if d == 0 {
        return (out, stats);
    }
    out.par_chunks_mut(ROWS * d)
        .zip(stats.par_chunks_mut(ROWS))
        .zip(x.par_chunks(ROWS * d))
        .for_each(|((out, stats), x)| simd!(layer_norm_body(out, stats, x, gamma, beta, eps)));
    (out, stats)
}

#[inline(always)]
fn layer_norm_body(
    out: &mut [f32],
    stats: &mut [[f32; 2]],
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f32,
) {
    let d = gamma.len();
    for ((out, stat), x) in out.chunks_exact_mut(d).zip(stats).zip(x.chunks_exact(d)) {
        let mean = lane_sum(x.iter().copied()) / d as f32;
        let var = lane_sum(x.iter().map(|v| (v - mean) * (v - mean))) / d as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        *stat = [mean, rstd];
        let normed = out.iter_mut().zip(x).zip(gamma);
        match beta {
            Some(beta) => normed
                .zip(beta)
                .for_each(|(((o, x), g), b)| *o = (x - mean) * rstd * g + b),
            None => normed.for_each(|((o, x), g)| *o = (x - mean) * rstd * g),
        }
    }
}

/// The gradients of [`layer_norm`] from `dy`, with the forward's `(mean, rstd)` per row:
/// `(∂L/∂x, ∂L/∂γ, ∂L/∂β)`. With `x̂ = (x − mean)·rstd` and `g = dy ⊙ γ`:
/// `∂x = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂))` per row, `∂γ = Σ dy ⊙ x̂` and `∂β = Σ dy` over
/// rows. The parameter gradients are summed per block of [`ROWS`] rows, then block by block in
/// order, so they do not depend on scheduling or the thread count.
pub(crate) fn layer_norm_backward(
    x: &[f32],
    gamma: &[f32],
    stats: &[[f32; 2]],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let mut dx = zeroed(x.len());
    if d == 0 {
        return (dx, Vec::new(), Vec::new());
    }
    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(ROWS * d)
        .zip(x.par_chunks(ROWS * d))
        .zip(dy.par_chunks(ROWS * d))
        .zip(stats.par_chunks(ROWS))
        .map(|(((dx, x), dy), stats)| {
            let mut sums = (vec![0f32; d], vec![0f32; d]);
            simd!(layer_norm_backward_body(dx, &mut sums, x, dy, gamma, stats));
            sums
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![0f32; d], vec![0f32; d]);
    for (g, b) in &partial {
        dgamma.iter_mut().zip(g).for_each(|(a, v)| *a += v);
        dbeta.iter_mut().zip(b).for_each(|(a, v)| *a += v);
    }
    (dx, dgamma, dbeta)
}

#[inline(always)]
fn layer_norm_backward_body(
    dx: &mut [f32],
    (dgamma, dbeta): &mut (Vec<f32>, Vec<f32>),
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    stats: &[[f32; 2]],
) {
    let d = gamma.len();
    let rows = dx
        .chunks_exact_mut(d)
        .zip(x.chunks_exact(d))
        .zip(dy.chunks_exact(d));
    for (((dx, x), dy), &[mean, rstd]) in rows.zip(stats) {
        let xhat = |x: f32| (x - mean) * rstd;
        let mean_g = lane_sum(dy.iter().zip(gamma).map(|(dy, g)| dy * g)) / d as f32;
        let mean_gx = lane_sum(dy.iter().zip(gamma).zip(x).map(|((dy, g), x)| dy * g * xhat(*x))) / d as f32;
        for ((((dx, x), dy), g), (dg, db)) in dx
            .iter_mut()
            .zip(x)
            .zip(dy)
            .zip(gamma)
            .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
        {
            let xh = xhat(*x);
            *dx = rstd * (dy * g - mean_g - xh * mean_gx);
            *dg += dy * xh;
            *db += dy;
        }
    }
}

/// `x` `[r, c]` (row-major) scaled to unit L2 norm along `dim` (1: each row, 0: each
/// column), each norm clamped below at `eps` (`F.normalize`). Returns the output and the
/// unclamped norms (`r` of them for rows, `c` for columns), in the order Burn's composed
/// `x / ‖x‖` sums (row after row).
pub(crate) fn l2_normalize(x: &[f32], [r, c]: [usize; 2], dim: usize, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let mut out = zeroed(x.len());
    if r * c == 0 {
        return (out, vec![0f32; if dim == 1 { r } else { c }]);
    }
    let norms: Vec<f32> = if dim == 1 {
        x.par_chunks(c)
            .map(|row| row.iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect()
    } else {
        column_blocks(c)
            .flat_map_iter(|cols| {
                let mut sums = vec![0f32; cols.len()];
                for row in x.chunks_exact(c) {
                    simd!(add_squares(&mut sums, &row[cols.clone()]));
                }
                sums.into_iter().map(f32::sqrt)
            })
            .collect()
    };
    out.par_chunks_mut(c)
        .zip(x.par_chunks(c))
        .enumerate()
        .for_each(|(i, (o, row))| {
            if dim == 1 {
                let n = norms[i].max(eps);
                o.iter_mut().zip(row).for_each(|(o, v)| *o = v / n);
            } else {
                simd!(divide_by_norms(o, row, &norms, eps));
            }
        });
    (out, norms)
}

/// The gradient of [`l2_normalize`] from `dy`, with its unclamped `norms`: along `dim`,
/// `∂x = (dy − y·Σ dy⊙y)/n` with `y = x/n`, and `dy/eps` where the norm was clamped (the
/// clamp passes no gradient to the norm there).
pub(crate) fn l2_normalize_backward(
    x: &[f32],
    [r, c]: [usize; 2],
    dim: usize,
    eps: f32,
    norms: &[f32],
    dy: &[f32],
) -> Vec<f32> {
    let mut dx = zeroed(x.len());
    if r * c == 0 {
        return dx;
    }
    let scale = |n: f32| if n < eps { (eps, 0.0) } else { (n, 1.0) };
    // Σ dy⊙y along `dim` (0 where the norm was clamped).
    let dots: Vec<f32> = if dim == 1 {
        x.par_chunks(c)
            .zip(dy.par_chunks(c))
            .zip(norms)
            .map(|((row, g), &n)| {
                let (n, on) = scale(n);
                on * row.iter().zip(g).map(|(v, g)| v / n * g).sum::<f32>()
            })
            .collect()
    } else {
        column_blocks(c)
            .flat_map_iter(|cols| {
                let mut sums = vec![0f32; cols.len()];
                for (row, g) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
                    let (row, g) = (&row[cols.clone()], &g[cols.clone()]);
                    sums.iter_mut()
                        .zip(row.iter().zip(g))
                        .for_each(|(s, (v, g))| *s += v * g);
                }
                sums.into_iter()
                    .zip(&norms[cols])
                    .map(|(s, &n)| {
                        let (n, on) = scale(n);
                        on * s / n
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    dx.par_chunks_mut(c)
        .zip(x.par_chunks(c).zip(dy.par_chunks(c)))
        .enumerate()
        .for_each(|(i, (d, (row, g)))| {
            for (j, ((d, v), g)) in d.iter_mut().zip(row).zip(g).enumerate() {
                let k = if dim == 1 { i } else { j };
                let (n, _) = scale(norms[k]);
                *d = (g - v / n * dots[k]) / n;
            }
        });
    dx
}

/// Blocks of columns for the column-wise passes of [`l2_normalize`], in parallel.
fn column_blocks(
    c: usize,
) -> rayon::iter::Map<rayon::range::Iter<usize>, impl Fn(usize) -> std::ops::Range<usize> + Sync + Send> {
    const BLOCK: usize = 2048;
    (0..c.div_ceil(BLOCK))
        .into_par_iter()
        .map(move |b| b * BLOCK..((b + 1) * BLOCK).min(c))
}

#[inline(always)]
fn add_squares(sums: &mut [f32], row: &[f32]) {
    sums.iter_mut().zip(row).for_each(|(s, v)| *s += v * v);
}

#[inline(always)]
fn divide_by_norms(out: &mut [f32], row: &[f32], norms: &[f32], eps: f32) {
    for ((o, v), n) in out.iter_mut().zip(row).zip(norms) {
        *o = v / n.max(eps);
    }
}

/// The sum of `values` in 16 interleaved partial sums, so that the loop vectorises (a single
/// running sum is a chain the compiler may not reorder).
#[inline(always)]
fn lane_sum(values: impl Iterator<Item = f32>) -> f32 {
    let mut lanes = [0f32; 16];
    for (i, v) in values.enumerate() {
        lanes[i % 16] += v;
    }
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn erf(x: f64) -> f64 {
        // The Maclaurin series converges quickly for |x| ≤ 3 (it is used only there); beyond,
        // 1 − erfc with erfc's continued fraction.
        if x.abs() <= 3.0 {
            let mut term = x;
            let mut sum = x;
            for k in 1..200 {
                term *= -x * x / k as f64;
                sum += term / (2 * k + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let z = x.abs();
            let mut f = z;
            for k in (1..60).rev() {
                f = z + (k as f64 / 2.0) / f;
            }
            let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / f;
            x.signum() * (1.0 - erfc)
        }
    }

    #[test]
    fn exp_is_within_three_ulp_of_libm() {
        for x in (-8700..=8800).map(|i| i as f32 * 0.01) {
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 3.0 * f32::EPSILON * want,
                "exp({x}) = {got}, libm {want}"
            );
        }
    }

    /// LayerNorm in f64 by its definition: rows of `γ.len()` values.
    fn layer_norm_f64(x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
        let d = gamma.len();
        x.chunks(d)
            .flat_map(|row| {
                let mean = row.iter().sum::<f64>() / d as f64;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
                let rstd = 1.0 / (var + eps).sqrt();
                (0..d).map(move |j| (row[j] - mean) * rstd * gamma[j] + beta[j])
            })
            .collect()
    }

    /// The LayerNorm kernels against the definition in f64: the forward, and the three
    /// gradients of `L = Σ r ⊙ y` against central finite differences of the f64 forward, on
    /// 3 rows of 5 and on 130 rows of 7 (three blocks of rows, the last one short).
    #[test]
    fn layer_norm_and_its_gradients_match_finite_differences() {
        for (rows, d, seed) in [(3, 5, 1), (130, 7, 2)] {
            let eps = 1e-5;
            let x = values(rows * d, seed, 2.0);
            let gamma: Vec<f32> = values(d, seed + 10, 0.5).iter().map(|g| g + 1.0).collect();
            let beta = values(d, seed + 20, 1.0);
            let r = values(rows * d, seed + 30, 1.0);
            let (y, stats) = layer_norm(&x, &gamma, Some(&beta), eps as f32);
            let (dx, dgamma, dbeta) = layer_norm_backward(&x, &gamma, &stats, &r);

            let f64s = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
            let (x64, g64, b64, r64) = (f64s(&x), f64s(&gamma), f64s(&beta), f64s(&r));
            let want = layer_norm_f64(&x64, &g64, &b64, eps);
            for (k, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!((f64::from(*a) - b).abs() <= 2e-6, "y[{k}] = {a} vs {b}");
            }
            let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
                layer_norm_f64(x, g, b, eps)
                    .iter()
                    .zip(&r64)
                    .map(|(y, r)| y * r)
                    .sum()
            };
            let h = 1e-6;
            let numeric = |which: usize, k: usize| {
                let mut args = [x64.clone(), g64.clone(), b64.clone()];
                args[which][k] += h;
                let up = loss(&args[0], &args[1], &args[2]);
                args[which][k] -= 2.0 * h;
                let down = loss(&args[0], &args[1], &args[2]);
                (up - down) / (2.0 * h)
            };
            for (which, got) in [(0, &dx), (1, &dgamma), (2, &dbeta)] {
                // every element for the small case, a spread of them for the large one
                let step = if rows * d > 100 && which == 0 { 37 } else { 1 };
                for k in (0..got.len()).step_by(step) {
                    let want = numeric(which, k);
                    let err = (f64::from(got[k]) - want).abs();
                    assert!(
                        err <= 1e-4 * (1.0 + want.abs()),
                        "{rows}×{d}, gradient {which}[{k}]: {} vs {want}",
                        got[k]
                    );
                }
            }
        }
    }

    /// L2 normalisation along each dimension against the definition in f64, and its gradient
    /// of `L = Σ r ⊙ y` against central finite differences, with a zero row and a zero column
    /// (norm clamped: gradient `r/eps`), on 4 × 5 and on 3 × 2100 (columns in two blocks).
    #[test]
    fn l2_normalize_and_its_gradient_match_finite_differences() {
        for (r, c, seed) in [(4, 5, 1), (3, 2100, 2)] {
            let mut x = values(r * c, seed, 2.0);
            x[c..2 * c].fill(0.0); // row 1
            (0..r).for_each(|i| x[i * c + 3] = 0.0); // column 3
            let dy = values(r * c, seed + 7, 1.0);
            let eps = 1e-3f32;
            for dim in [0, 1] {
                let (y, norms) = l2_normalize(&x, [r, c], dim, eps);
                let dx = l2_normalize_backward(&x, [r, c], dim, eps, &norms, &dy);
                let forward = |x: &[f64]| -> Vec<f64> {
                    let norm = |i: usize, j: usize| {
                        let n: f64 = if dim == 1 {
                            (0..c).map(|k| x[i * c + k] * x[i * c + k]).sum()
                        } else {
                            (0..r).map(|k| x[k * c + j] * x[k * c + j]).sum()
                        };
                        n.sqrt().max(f64::from(eps))
                    };
                    (0..r * c).map(|k| x[k] / norm(k / c, k % c)).collect()
                };
                let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                for (k, (a, b)) in y.iter().zip(forward(&x64)).enumerate() {
                    assert!(
                        (f64::from(*a) - b).abs() <= 1e-6,
                        "dim {dim}: y[{k}] = {a} vs {b}"
                    );
                }
                let h = 1e-6;
                let loss = |x: &[f64]| {
                    forward(x)
                        .iter()
                        .zip(&dy)
                        .map(|(y, g)| y * f64::from(*g))
                        .sum::<f64>()
                };
                let step = if r * c > 100 { 97 } else { 1 };
                let picks = (0..r * c).step_by(step).chain([c + 1, 3, 2 * c + 3]);
                for k in picks {
                    let (mut up, mut down) = (x64.clone(), x64.clone());
                    up[k] += h;
                    down[k] -= h;
                    let want = (loss(&up) - loss(&down)) / (2.0 * h);
                    let err = (f64::from(dx[k]) - want).abs();
                    assert!(
                        err <= 1e-3 * (1.0 + want.abs()),
                        "dim {dim}: dx[{k}] = {} vs {want}",
                        dx[k]
                    );
                }
            }
        }
    }

    #[test]
    fn gelu_and_its_gradient_match_the_definition() {
        let x = values(5000, 3, 9.0);
        let dy = values(5000, 4, 1.0);
        let (y, dx) = (gelu(&x), gelu_backward(&x, &dy));
        for i in 0..x.len() {
            let v = f64::from(x[i]);
            let cdf = 0.5 * (1.0 + erf(v / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let want_y = v * cdf;
            let want_dx = f64::from(dy[i]) * (cdf + v * pdf);
            assert!(
                (f64::from(y[i]) - want_y).abs() <= 2e-6 * (1.0 + v.abs()),
                "gelu({v}) = {} vs {want_y}",
                y[i]
            );
            assert!(
                (f64::from(dx[i]) - want_dx).abs() <= 2e-6,
                "gelu'({v}) = {} vs {want_dx}",
                dx[i]
            );
        }
    }

    /// Attention by the definition, in f64.
    fn naive_attention(qkv: &[f64], s: AttentionShape) -> Vec<f64> {
        let (n, c, hd) = (s.tokens, s.width, s.width / s.heads);
        let mut out = vec![0f64; s.batch * n * c];
        for b in 0..s.batch {
            let at =
                |t: usize, part: usize, h: usize, d: usize| qkv[(b * n + t) * 3 * c + part * c + h * hd + d];
            for h in 0..s.heads {
                for i in 0..n {
                    let logits: Vec<f64> = (0..n)
                        .map(|j| {
                            (0..hd).map(|d| at(i, 0, h, d) * at(j, 1, h, d)).sum::<f64>() / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = logits.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
                    let e: Vec<f64> = logits.iter().map(|v| (v - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for d in 0..hd {
                        out[(b * n + i) * c + h * hd + d] = (0..n).map(|j| e[j] / sum * at(j, 2, h, d)).sum();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn attention_and_its_gradient_match_the_definition() {
        for (case, s) in [
            AttentionShape {
                batch: 2,
                tokens: 5,
                width: 6,
                heads: 2,
            },
            AttentionShape {
                batch: 3,
                tokens: 1,
                width: 4,
                heads: 1,
            },
            AttentionShape {
                batch: 1,
                tokens: 17,
                width: 12,
                heads: 3,
            },
            // Sharp softmaxes: inputs up to ±5 give logits of ±20.
            AttentionShape {
                batch: 1,
                tokens: 20,
                width: 24,
                heads: 3,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let len = s.batch * s.tokens * 3 * s.width;
            let qkv = values(len, 50 + case as u32, if case == 3 { 5.0 } else { 2.0 });
            let r = values(s.batch * s.tokens * s.width, 60 + case as u32, 1.0);
            let wide: Vec<f64> = qkv.iter().map(|v| f64::from(*v)).collect();
            let (out, probs) = attention(&qkv, s);
            close(&out, &naive_attention(&wide, s));
            // ∂/∂qkv of L = Σ r ⊙ attention(qkv), by central differences of the f64 definition.
            let loss = |x: &[f64]| {
                naive_attention(x, s)
                    .iter()
                    .zip(&r)
                    .map(|(a, r)| a * f64::from(*r))
                    .sum::<f64>()
            };
            let want: Vec<f64> = (0..len)
                .map(|i| {
                    let (mut up, mut down) = (wide.clone(), wide.clone());
                    up[i] += 1e-6;
                    down[i] -= 1e-6;
                    (loss(&up) - loss(&down)) / 2e-6
                })
                .collect();
            close(&attention_backward(&qkv, &probs, &r, s), &want);
        }
    }

    fn naive(x: &[f32], w: &[f32], [m, k, n]: [usize; 3]) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| f64::from(x[i * k + p]) * f64::from(w[p * n + j]))
                    .sum();
            }
        }
        out
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1f64, |a, v| a.max(v.abs()));
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() <= 1e-5 * scale, "{g} vs {w}");
        }
    }

    #[test]
    fn linear_and_its_gradients_match_the_definition_on_odd_shapes() {
        for (case, [m, k, n]) in [[1, 1, 1], [3, 5, 7], [37, 19, 53], [130, 64, 200], [1, 300, 2]]
            .into_iter()
            .enumerate()
        {
            let seed = case as u32 * 10;
            let (x, w, b, dy) = (
                values(m * k, seed, 1.0),
                values(k * n, seed + 1, 1.0),
                values(n, seed + 2, 1.0),
                values(m * n, seed + 3, 1.0),
            );
            let row = Matrix {
                ptr: w.as_ptr(),
                col_stride: 1,
                row_stride: n as isize,
            };
            // The same weights stored transposed (`[n, k]`, as `LinearLayout::Col` keeps them).
            let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
            let col = Matrix {
                ptr: wt.as_ptr(),
                col_stride: k as isize,
                row_stride: 1,
            };
            let mut want = naive(&x, &w, [m, k, n]);
            want.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v += f64::from(b[i % n]));
            for layout in [row, col] {
                // SAFETY: both layouts address the k × n weights of a live vector.
                let (y, [dx, dw, db]) = unsafe {
                    (
                        linear(&x, layout, Some(&b), [m, k, n]),
                        linear_backward(&x, layout, &dy, [m, k, n], [true; 3]),
                    )
                };
                close(&y, &want);
                // ∂x = dy·wᵀ: the product of dy [m, n] with wt [n, k].
                close(&dx.unwrap_or_default(), &naive(&dy, &wt, [m, n, k]));
                let xt: Vec<f32> = (0..k * m).map(|i| x[(i % m) * k + i / m]).collect();
                close(&dw.unwrap_or_default(), &naive(&xt, &dy, [k, m, n]));
                let sums: Vec<f64> = (0..n)
                    .map(|j| (0..m).map(|i| f64::from(dy[i * n + j])).sum())
                    .collect();
                close(&db.unwrap_or_default(), &sums);
            }
            // SAFETY: as above.
            let y = unsafe { linear(&x, row, None, [m, k, n]) };
            close(&y, &naive(&x, &w, [m, k, n]));
        }
    }
}
