//! The fast CPU kernels behind [`super`]: f32, NCHW, contiguous.
//!
//! - Grouped and ordinary convolutions lower to one GEMM per image and group: the image's
//!   patches are unfolded (im2col) into a `[K, P]` matrix (`K = C/g·kh·kw`, `P = Ho·Wo`) and
//!   multiplied by the `[Co/g, K]` weights with the `gemm` crate's packed kernels (AVX-512 or
//!   AVX2/FMA, chosen at run time), in bands of output rows ([`TILE_BYTES`]). A 1×1 convolution
//!   with stride 1 and no padding skips the unfolding: the image already is `[C, H·W]`.
//! - Ungrouped 3×3 convolutions with stride 1 (most of a ResNet's work) run Winograd's
//!   F(2×2, 3×3) instead ([`winograd`]): 16 GEMMs with 2.25× fewer multiply-adds in all.
//! - Depthwise and thin grouped convolutions (≤ 4 input channels per group) are a direct kernel
//!   whose inner loop runs over contiguous output columns, with the padding bounds computed once
//!   per kernel tap.
//! - The epilogue — per-channel scale and shift (folded BatchNorm, bias), residual add,
//!   activation, in that order — runs over each output plane while it is still in cache.
//!
//! Images run in parallel on rayon's pool; a batch of one runs the GEMM itself in parallel.

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

/// Runs `$body` (a call to an `#[inline(always)]` function) compiled for AVX-512 or AVX2 + FMA
/// when the CPU has them, else for the build's baseline: the loops here are plain Rust that the
/// compiler vectorises for whichever target it compiles them for.
macro_rules! simd {
    ($generic:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512<'a, R>(f: impl FnOnce() -> R + 'a) -> R { f() }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<'a, R>(f: impl FnOnce() -> R + 'a) -> R { f() }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked on the line above).
                unsafe { avx512(|| $generic($($arg),*)) }
            } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA (checked on the line above).
                unsafe { avx2(|| $generic($($arg),*)) }
            } else {
                $generic($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $generic($($arg),*)
        }
    }};
}

mod winograd;

/// Everything a convolution needs to know about its shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    /// Top, left, bottom, right.
    pub pad: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl ConvShape {
    /// Output height and width, or `None` when the kernel does not fit the padded input.
    pub fn output(&self) -> Option<[usize; 2]> {
        let span = |input: usize, before: usize, after: usize, k: usize, d: usize, s: usize| {
            let padded = input + before + after;
            let reach = d * (k - 1) + 1;
            (s > 0 && k > 0 && padded >= reach).then(|| (padded - reach) / s + 1)
        };
        Some([
            span(
                self.h,
                self.pad[0],
                self.pad[2],
                self.kh,
                self.dilation[0],
                self.stride[0],
            )?,
            span(
                self.w,
                self.pad[1],
                self.pad[3],
                self.kw,
                self.dilation[1],
                self.stride[1],
            )?,
        ])
    }

    fn cin_per_group(&self) -> usize {
        self.c / self.groups
    }

    fn cout_per_group(&self) -> usize {
        self.co / self.groups
    }
}

/// The activation that ends a fused convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Act<'a> {
    /// None.
    Identity,
    /// max(x, 0).
    Relu,
    /// x for x ≥ 0, slope·x below; one slope for all channels or one per channel.
    PRelu(&'a [f32]),
}

/// A per-output-channel affine map `v·scale + shift` (a bias, or a folded BatchNorm).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Affine<'a> {
    pub scale: Option<&'a [f32]>,
    pub shift: Option<&'a [f32]>,
}

/// `out = act(conv(x, weight)·scale + shift + residual)`, all NCHW / OIHW, contiguous.
///
/// The caller has checked the shapes: `x` is `n·c·h·w` long, `weight` `co·c/g·kh·kw`, the
/// affine's vectors and a per-channel slope `co`, `residual` the output's length.
pub(crate) fn conv2d(
    x: &[f32],
    weight: &[f32],
    affine: Affine<'_>,
    residual: Option<&[f32]>,
    act: Act<'_>,
    s: &ConvShape,
) -> Vec<f32> {
    let [ho, wo] = s.output().expect("checked by the caller");
    let plane = ho * wo;
    let per_image_out = s.co * plane;
    let per_image_in = s.c * s.h * s.w;
    // Not zeroed: every element is written before it is read (the GEMM overwrites its whole
    // output, the direct kernel zeroes each plane on its worker). Zeroing the whole batch here
    // was one serial pass over the output while the workers waited (7 % of MobileFaceNet).
    let mut out = uninit_vec(s.n * per_image_out);
    let tail = |i: usize| Epilogue {
        affine,
        residual: residual.map(|r| &r[i * per_image_out..(i + 1) * per_image_out]),
        act,
    };
    if winograd::applies(s, [ho, wo]) {
        winograd::conv2d(x, weight, &mut out, s, [ho, wo], tail);
        // SAFETY: `winograd::conv2d` writes every element (see its documentation).
        return unsafe { assume_init_vec(out) };
    }
    // Grouped convolutions with few input channels per group (depthwise: one) are too thin for
    // GEMM (one call per group of an `og × k` product with k ≤ 36); they run direct.
    let direct = is_direct(s);
    let par = s.n == 1 && rayon::current_num_threads() > 1;
    out.par_chunks_mut(per_image_out)
        .zip(x.par_chunks(per_image_in))
        .enumerate()
        .for_each(|(i, (out, x))| {
            let tail = tail(i);
            if direct {
                direct_image(x, weight, out, s, [ho, wo], tail, par);
            } else {
                let out = gemm_image(x, weight, out, s, [ho, wo], par);
                tail.planes(out, plane, par);
            }
        });
    // SAFETY: every element was written above (see `gemm_image` and `direct_image`).
    unsafe { assume_init_vec(out) }
}

/// A vector of `len` floats whose values are not yet written. In builds with debug assertions
/// (the tests) they are NaN, so an element the kernels fail to write shows in every result
/// that reads it.
fn uninit_vec(len: usize) -> Vec<MaybeUninit<f32>> {
    if cfg!(debug_assertions) {
        return vec![MaybeUninit::new(f32::NAN); len];
    }
    let mut v = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit<f32>` has no validity requirement, and the capacity is `len`.
    unsafe { v.set_len(len) };
    v
}

/// # Safety
/// Every element of `v` must have been written.
unsafe fn assume_init_vec(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`; the caller guarantees the elements
    // are initialised; the allocation moves to the new vector with its length and capacity.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}

/// # Safety
/// Every element of `v` must have been written.
unsafe fn assume_init(v: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: same layout; the caller guarantees the elements are initialised.
    unsafe { &mut *(v as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Zeroes `v` and returns it as floats.
fn zeroed(v: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    v.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written.
    unsafe { assume_init(v) }
}

/// What follows a convolution, for one image: the per-channel affine map, the residual and
/// the activation ([`epilogue`]).
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    affine: Affine<'a>,
    residual: Option<&'a [f32]>,
    act: Act<'a>,
}

impl Epilogue<'_> {
    /// Applies it to an image's `[C, plane]` output, channels in parallel when `par`.
    fn planes(&self, out: &mut [f32], plane: usize, par: bool) {
        if !par || plane == 0 {
            return epilogue(out, plane, 0, *self);
        }
        // Blocks of channels of about 64 KB, so the threads share the work evenly.
        let per = (16 * 1024 / plane).max(1);
        out.par_chunks_mut(per * plane)
            .enumerate()
            .for_each(|(b, o)| epilogue(o, plane, b * per, *self));
    }
}

/// Whether [`conv2d`] runs this shape with its direct kernel (depthwise and thin grouped
/// convolutions) rather than im2col + GEMM. [`conv2d_backward`] takes only the GEMM shapes.
pub(crate) fn is_direct(s: &ConvShape) -> bool {
    s.groups > 1 && s.cin_per_group() <= 4
}

/// The gradients of `y = conv(x, weight)` (no bias, no epilogue) from `dy = ∂L/∂y`:
/// `(∂L/∂x, ∂L/∂weight)`, each computed only when asked for.
///
/// Both are GEMMs over the same unfolded patches as the forward pass, in the same bands of
/// output rows: per image and group, `∂W += dY·colsᵀ` (`[og, P]·[P, K]`) and
/// `dcols = Wᵀ·dY` (`[K, og]·[og, P]`) folded back onto the input (col2im, adding where
/// windows overlap). The weight gradient is summed per contiguous chunk of images, one chunk
/// per thread, and the chunks are added in order, so the result does not depend on scheduling.
/// The caller has checked the shapes as for [`conv2d`] and that it is not a direct-kernel shape.
pub(crate) fn conv2d_backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    s: &ConvShape,
    need_dx: bool,
    need_dw: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let Some([ho, wo]) = s.output() else {
        return (
            need_dx.then(|| vec![0.0; x.len()]),
            need_dw.then(|| vec![0.0; weight.len()]),
        );
    };
    let per_image_out = s.co * ho * wo;
    let per_image_in = s.c * s.h * s.w;
    let par = s.n == 1 && rayon::current_num_threads() > 1;
    let dx = need_dx.then(|| {
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(per_image_in)
            .zip(dy.par_chunks(per_image_out))
            .for_each(|(dx, dy)| input_grad_image(dy, weight, dx, s, [ho, wo], par));
        dx
    });
    let dw = need_dw.then(|| {
        let chunk = s.n.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let partial: Vec<Vec<f32>> = x
            .par_chunks(chunk * per_image_in)
            .zip(dy.par_chunks(chunk * per_image_out))
            .map(|(x, dy)| {
                let mut dw = vec![0f32; weight.len()];
                for (x, dy) in x.chunks(per_image_in).zip(dy.chunks(per_image_out)) {
                    weight_grad_image(x, dy, &mut dw, s, [ho, wo], par);
                }
                dw
            })
            .collect();
        let mut parts = partial.into_iter();
        let mut dw = parts.next().unwrap_or_else(|| vec![0f32; weight.len()]);
        for part in parts {
            dw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
        }
        dw
    });
    (dx, dw)
}

/// The band of output rows per GEMM call and whether the convolution needs no unfolding.
fn bands(s: &ConvShape, k: usize, [ho, wo]: [usize; 2]) -> (usize, bool) {
    let pointwise = s.kh == 1 && s.kw == 1 && s.stride == [1, 1] && s.pad == [0, 0, 0, 0];
    let band = if pointwise {
        ho
    } else {
        (TILE_BYTES / (4 * k * wo)).clamp(1, ho)
    };
    (band, pointwise)
}

pub(super) fn parallelism(par: bool) -> Parallelism {
    if par {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// A strided f32 matrix: its first element, column stride and row stride (in elements).
pub(super) type Strided<P> = (P, isize, isize);

/// `dst = lhs·rhs` (`m × k` by `k × n`), or `dst += lhs·rhs` when `accumulate`, on the `gemm`
/// crate's packed kernels.
///
/// # Safety
/// Every element the three strided matrices address (`m × n`, `m × k`, `k × n`) must lie inside
/// one live allocation each, and `dst` must overlap neither source.
pub(super) unsafe fn sgemm(
    [m, n, k]: [usize; 3],
    (dst, dst_cs, dst_rs): Strided<*mut f32>,
    accumulate: bool,
    (lhs, lhs_cs, lhs_rs): Strided<*const f32>,
    (rhs, rhs_cs, rhs_rs): Strided<*const f32>,
    parallelism: Parallelism,
) {
    let alpha = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            alpha,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Calls `f(g, y0, n, patches)` for each group `g` and band of output rows starting at row
/// `y0` (`n` = rows·Wo output columns), with the band's unfolded `[k, n]` patches, row-major
/// (`k = C/g·kh·kw`; for a pointwise convolution, the group's `[C/g, H·W]` input itself).
fn patch_bands(
    x: &[f32],
    s: &ConvShape,
    [ho, wo]: [usize; 2],
    mut f: impl FnMut(usize, usize, usize, &[f32]),
) {
    let cg = s.cin_per_group();
    let k = cg * s.kh * s.kw;
    let (band, pointwise) = bands(s, k, [ho, wo]);
    if pointwise {
        // One band of all `ho` rows per group.
        for g in 0..s.groups {
            f(g, 0, ho * wo, group_input(x, s, g));
        }
        return;
    }
    with_cols(k * band * wo, |cols| {
        for u in 0..s.groups * ho.div_ceil(band) {
            let (g, y0, rows) = band_unit(u, band, ho);
            let cols = &mut cols[..k * rows * wo];
            im2col(group_input(x, s, g), cg, s, [ho, wo], y0..y0 + rows, cols);
            f(g, y0, rows * wo, cols);
        }
    });
}

/// Group `g`'s `[C/g, H, W]` planes of one image.
fn group_input<'x>(x: &'x [f32], s: &ConvShape, g: usize) -> &'x [f32] {
    let per = s.cin_per_group() * s.h * s.w;
    &x[g * per..(g + 1) * per]
}

/// The `u`-th band of an image cut, group after group, into bands of `band` output rows:
/// `(group, first row, rows)`.
fn band_unit(u: usize, band: usize, ho: usize) -> (usize, usize, usize) {
    let per_group = ho.div_ceil(band);
    let y0 = (u % per_group) * band;
    (u / per_group, y0, band.min(ho - y0))
}

/// Runs `f` on this thread's patch buffer, grown to `len` floats. im2col writes every element
/// it hands on, so the buffer needs neither a fresh allocation nor zeroing each time. (A
/// nested call on the same thread, from a rayon task stolen inside `f`, finds the buffer
/// taken and uses a new one.)
fn with_cols<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut cols = COLS.with(|c| c.take());
    if cols.len() < len {
        cols.resize(len, 0.0);
    }
    let r = f(&mut cols[..len]);
    COLS.with(|c| c.replace(cols));
    r
}

thread_local! {
    /// [`patch_bands`]' patch buffer, one per thread.
    static COLS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `dw += dY·colsᵀ` for one image, group by group and band by band.
fn weight_grad_image(x: &[f32], dy: &[f32], dw: &mut [f32], s: &ConvShape, [ho, wo]: [usize; 2], par: bool) {
    let og = s.cout_per_group();
    let k = s.cin_per_group() * s.kh * s.kw;
    let p = ho * wo;
    patch_bands(x, s, [ho, wo], |g, y0, n, rhs| {
        let dy_g = &dy[g * og * p..(g + 1) * og * p];
        let dw_g = &mut dw[g * og * k..(g + 1) * og * k];
        let lhs = &dy_g[y0 * wo..];
        // SAFETY: `dw_g` is the row-major `og × k` block of this group; `lhs` is the `og × n`
        // block of `dy_g` at column `y0·wo` with row stride p (its last element,
        // (og−1)·p + y0·wo + n − 1 < og·p, is inside `dy_g`); `rhs` holds the `k × n` row-major
        // patches, read transposed as `n × k` (row stride 1, column stride n); the destination
        // does not overlap either source.
        unsafe {
            sgemm(
                [og, k, n],
                (dw_g.as_mut_ptr(), 1, k as isize),
                true,
                (lhs.as_ptr(), 1, p as isize),
                (rhs.as_ptr(), n as isize, 1),
                parallelism(par),
            );
        }
    });
}

/// `dx = col2im(Wᵀ·dY)` for one image (`dx` starts at zero), group by group and band by band.
fn input_grad_image(
    dy: &[f32],
    weight: &[f32],
    dx: &mut [f32],
    s: &ConvShape,
    [ho, wo]: [usize; 2],
    par: bool,
) {
    let cg = s.cin_per_group();
    let og = s.cout_per_group();
    let k = cg * s.kh * s.kw;
    let p = ho * wo;
    let (band, pointwise) = bands(s, k, [ho, wo]);
    let mut cols = if pointwise {
        Vec::new()
    } else {
        vec![0f32; k * band * wo]
    };
    for g in 0..s.groups {
        let dx_g = &mut dx[g * cg * s.h * s.w..(g + 1) * cg * s.h * s.w];
        let dy_g = &dy[g * og * p..(g + 1) * og * p];
        let w_g = &weight[g * og * k..(g + 1) * og * k];
        for y0 in (0..ho).step_by(band) {
            let rows = band.min(ho - y0);
            let n = rows * wo;
            let dst: &mut [f32] = if pointwise { &mut *dx_g } else { &mut cols[..k * n] };
            let rhs = &dy_g[y0 * wo..];
            // SAFETY: `dst` is a row-major `k × n` buffer of exactly that length (for a
            // pointwise convolution, the group's `[cg, H·W]` input gradient, n = H·W); `w_g`
            // is the row-major `og × k` weight read transposed (row stride 1, column stride
            // k); `rhs` is the `og × n` block of `dy_g` at column `y0·wo` with row stride p,
            // inside `dy_g` as in the forward pass; nothing overlaps.
            unsafe {
                sgemm(
                    [k, n, og],
                    (dst.as_mut_ptr(), 1, n as isize),
                    false,
                    (w_g.as_ptr(), k as isize, 1),
                    (rhs.as_ptr(), 1, p as isize),
                    parallelism(par),
                );
            }
            if !pointwise {
                col2im(&cols[..k * n], cg, s, [ho, wo], y0..y0 + rows, dx_g);
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each unfolded patch value back onto the input position it
/// was read from (positions in the padding are dropped).
fn col2im(
    cols: &[f32],
    cg: usize,
    s: &ConvShape,
    [_, wo]: [usize; 2],
    rows: std::ops::Range<usize>,
    dx: &mut [f32],
) {
    let p = rows.len() * wo;
    let [sh, sw] = s.stride;
    let [dh, dw] = s.dilation;
    let (pt, pl) = (s.pad[0], s.pad[1]);
    for ci in 0..cg {
        let dst = &mut dx[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for ky in 0..s.kh {
            for kx in 0..s.kw {
                let row = &cols[((ci * s.kh + ky) * s.kw + kx) * p..][..p];
                let (x0, x1) = valid_range(s.w, wo, sw, pl, kx * dw);
                if x0 >= x1 {
                    continue;
                }
                for (r, oy) in rows.clone().enumerate() {
                    let iy = (oy * sh + ky * dh) as isize - pt as isize;
                    if iy < 0 || iy >= s.h as isize {
                        continue;
                    }
                    let line = &mut dst[iy as usize * s.w..(iy as usize + 1) * s.w];
                    let src = &row[r * wo + x0..r * wo + x1];
                    let first = x0 * sw + kx * dw - pl;
                    if sw == 1 {
                        line[first..first + (x1 - x0)]
                            .iter_mut()
                            .zip(src)
                            .for_each(|(d, v)| *d += v);
                    } else {
                        for (j, v) in src.iter().enumerate() {
                            line[first + j * sw] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Bytes of unfolded patches per GEMM call: the image is unfolded in bands of output rows of
/// about this size (measured on iResNet-50, batch 32: 384 KB 12.5, 1.5 MB 18.7, 6 MB 16.8 img/s).
const TILE_BYTES: usize = 1536 * 1024;

/// One image through im2col + GEMM, group by group, in bands of output rows.
///
/// With `par` (a batch of one), an image of at least two bands per thread runs its bands in
/// parallel, each unfolded and multiplied on one thread; otherwise the bands run in turn and
/// each GEMM runs in parallel. Unfolding is a pass over memory that a parallel GEMM leaves
/// serial: for MTCNN's P-Net (27 × Wo patches per band for 10 output channels) it was the
/// largest serial part of the cascade (docs/BENCHMARKS.md, issue 18's seventh part).
fn gemm_image<'o>(
    x: &[f32],
    weight: &[f32],
    out: &'o mut [MaybeUninit<f32>],
    s: &ConvShape,
    [ho, wo]: [usize; 2],
    par: bool,
) -> &'o mut [f32] {
    let og = s.cout_per_group();
    let k = s.cin_per_group() * s.kh * s.kw;
    let p = ho * wo;
    let (band, pointwise) = bands(s, k, [ho, wo]);
    let units = s.groups * ho.div_ceil(band);
    let dst = SyncPtr(out.as_mut_ptr().cast::<f32>());
    // Band `(g, y0, n)`: `[og, n] = [og, k]·[k, n]` into group g's output from column `y0·wo`.
    let gemm_band = |g: usize, y0: usize, n: usize, rhs: &[f32], parallelism| {
        assert!(g < s.groups && y0 * wo + n <= p && rhs.len() == k * n);
        // SAFETY: group g's row-major `og × p` output (row stride p) starts at `g·og·p` inside
        // `out` (`co·p` long), and the destination is its `og × n` block from column `y0·wo`,
        // whose last element, (og−1)·p + y0·wo + n − 1 < og·p (asserted above), lies inside it;
        // the weights are the group's row-major `og × k` block and `rhs` the `k × n` row-major
        // patches; the three do not overlap. Without `accumulate` the `gemm` crate writes
        // every destination element and reads none, so it may be uninitialised. Distinct
        // bands write disjoint blocks (other columns of the same rows, or another group), so
        // they may run on different threads at once.
        unsafe {
            sgemm(
                [og, n, k],
                (dst.get().add(g * og * p + y0 * wo), 1, p as isize),
                false,
                (weight[g * og * k..(g + 1) * og * k].as_ptr(), 1, k as isize),
                (rhs.as_ptr(), 1, n as isize),
                parallelism,
            );
        }
    };
    if par && !pointwise && units >= 2 * rayon::current_num_threads() {
        let cg = s.cin_per_group();
        (0..units).into_par_iter().for_each(|u| {
            let (g, y0, rows) = band_unit(u, band, ho);
            with_cols(k * rows * wo, |cols| {
                im2col(group_input(x, s, g), cg, s, [ho, wo], y0..y0 + rows, cols);
                gemm_band(g, y0, rows * wo, cols, Parallelism::None);
            });
        });
    } else {
        patch_bands(x, s, [ho, wo], |g, y0, n, rhs| {
            gemm_band(g, y0, n, rhs, parallelism(par))
        });
    }
    // SAFETY: the bands of every group cover the image's `co × p` output, each written above.
    unsafe { assume_init(out) }
}

/// A pointer that threads may share: each writes only its own disjoint part of the buffer
/// (the caller's safety argument says which).
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);

// SAFETY: the pointer is only dereferenced by writes to disjoint parts, argued at each use.
unsafe impl Send for SyncPtr {}
// SAFETY: as above.
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not its field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Unfolds one group's `[cg, H, W]` input for output rows `rows` into
/// `[cg·kh·kw, rows·Wo]` (zero where the window leaves the image).
fn im2col(
    x: &[f32],
    cg: usize,
    s: &ConvShape,
    out: [usize; 2],
    rows: std::ops::Range<usize>,
    cols: &mut [f32],
) {
    simd!(im2col_body(x, cg, s, out, rows, cols))
}

#[inline(always)]
fn im2col_body(
    x: &[f32],
    cg: usize,
    s: &ConvShape,
    [_, wo]: [usize; 2],
    rows: std::ops::Range<usize>,
    cols: &mut [f32],
) {
    let p = rows.len() * wo;
    let [sh, sw] = s.stride;
    let [dh, dw] = s.dilation;
    let (pt, pl) = (s.pad[0], s.pad[1]);
    for ci in 0..cg {
        let src = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for ky in 0..s.kh {
            for kx in 0..s.kw {
                let row = &mut cols[((ci * s.kh + ky) * s.kw + kx) * p..][..p];
                let (x0, x1) = valid_range(s.w, wo, sw, pl, kx * dw);
                for (r, oy) in rows.clone().enumerate() {
                    let dst = &mut row[r * wo..(r + 1) * wo];
                    let iy = (oy * sh + ky * dh) as isize - pt as isize;
                    if iy < 0 || iy >= s.h as isize || x0 >= x1 {
                        dst.fill(0.0);
                        continue;
                    }
                    let line = &src[iy as usize * s.w..(iy as usize + 1) * s.w];
                    dst[..x0].fill(0.0);
                    dst[x1..].fill(0.0);
                    let first = x0 * sw + kx * dw - pl;
                    if sw == 1 {
                        dst[x0..x1].copy_from_slice(&line[first..first + (x1 - x0)]);
                    } else if sw == 2 && first + 2 * (x1 - x0) <= line.len() {
                        // every other value: a shuffle the compiler vectorises
                        let pairs = line[first..first + 2 * (x1 - x0)].chunks_exact(2);
                        dst[x0..x1].iter_mut().zip(pairs).for_each(|(d, p)| *d = p[0]);
                    } else {
                        for (j, d) in dst[x0..x1].iter_mut().enumerate() {
                            *d = line[first + j * sw];
                        }
                    }
                }
            }
        }
    }
}

/// The output columns `[x0, x1)` whose input column `ox·stride + offset − pad` lies inside
/// `[0, width)`.
fn valid_range(width: usize, out: usize, stride: usize, pad: usize, offset: usize) -> (usize, usize) {
    // ox·stride + offset ≥ pad  ⇔  ox ≥ ceil((pad − offset) / stride)
    let x0 = pad.saturating_sub(offset).div_ceil(stride);
    // ox·stride + offset − pad ≤ width − 1
    let x1 = if width + pad > offset {
        ((width + pad - offset - 1) / stride + 1).min(out)
    } else {
        0
    };
    (x0.min(out), x1.max(x0.min(out)))
}

/// One image's grouped convolution computed directly: each output plane is zeroed, accumulates
/// its group's input planes, each through [`depthwise_plane`], and goes through the epilogue
/// while it is in cache.
fn direct_image(
    x: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
    s: &ConvShape,
    [ho, wo]: [usize; 2],
    tail: Epilogue<'_>,
    par: bool,
) {
    let (cg, og) = (s.cin_per_group(), s.cout_per_group());
    let plane_in = s.h * s.w;
    let plane_out = ho * wo;
    let kk = s.kh * s.kw;
    let one = |(o, dst): (usize, &mut [MaybeUninit<f32>])| {
        let dst = zeroed(dst);
        for ci in 0..cg {
            let src = &x[((o / og) * cg + ci) * plane_in..][..plane_in];
            let w = &weight[(o * cg + ci) * kk..][..kk];
            depthwise_plane(src, w, dst, s, [ho, wo]);
        }
        epilogue(dst, plane_out, o, tail);
    };
    if plane_out == 0 {
        return;
    }
    if par {
        out.par_chunks_mut(plane_out).enumerate().for_each(one);
    } else {
        out.chunks_mut(plane_out).enumerate().for_each(one);
    }
}

/// `dst += conv(src, w)` for one input plane and one output plane.
fn depthwise_plane(src: &[f32], w: &[f32], dst: &mut [f32], s: &ConvShape, hw: [usize; 2]) {
    simd!(depthwise_plane_body(src, w, dst, s, hw))
}

#[inline(always)]
fn depthwise_plane_body(src: &[f32], w: &[f32], dst: &mut [f32], s: &ConvShape, [ho, wo]: [usize; 2]) {
    let [sh, sw] = s.stride;
    let [dh, dw] = s.dilation;
    let (pt, pl) = (s.pad[0], s.pad[1]);
    for ky in 0..s.kh {
        let (y0, y1) = valid_range(s.h, ho, sh, pt, ky * dh);
        for kx in 0..s.kw {
            let wv = w[ky * s.kw + kx];
            let (x0, x1) = valid_range(s.w, wo, sw, pl, kx * dw);
            if x0 >= x1 {
                continue;
            }
            for oy in y0..y1 {
                let iy = oy * sh + ky * dh - pt;
                let line = &src[iy * s.w..(iy + 1) * s.w];
                let first = x0 * sw + kx * dw - pl;
                let d = &mut dst[oy * wo + x0..oy * wo + x1];
                if sw == 1 {
                    for (d, v) in d.iter_mut().zip(&line[first..first + (x1 - x0)]) {
                        *d += wv * v;
                    }
                } else {
                    for (j, d) in d.iter_mut().enumerate() {
                        *d += wv * line[first + j * sw];
                    }
                }
            }
        }
    }
}

/// A 2-D pooling's geometry over `planes` independent `h × w` planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolShape {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Top and left (the bottom and right follow from the output size).
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
    /// Output height and width.
    pub out: [usize; 2],
}

/// What a pooling window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pool {
    /// The largest value in the window (positions outside the input are left out).
    Max,
    /// The mean: over the window's positions inside the input, or over the whole window when
    /// `count_pad` (the padding counted as zeros).
    Avg { count_pad: bool },
}

/// Max or average pooling, planes in parallel. A window is clipped to the input; a max window
/// with no position inside gives −∞ (the callers' output sizes never make one). NaN propagates
/// through a max, as in PyTorch and ONNX.
pub(crate) fn pool2d(x: &[f32], s: &PoolShape, kind: Pool) -> Vec<f32> {
    let (plane_in, plane_out) = (s.h * s.w, s.out[0] * s.out[1]);
    let mut out = vec![0f32; s.planes * plane_out];
    if plane_in * plane_out > 0 {
        // the column taps are the same for every plane; the row pass's buffer, one per task
        let cols: Vec<(usize, usize)> = (0..s.out[1]).map(|o| s.taps(o, 1)).collect();
        out.par_chunks_mut(plane_out)
            .zip(x.par_chunks(plane_in))
            .for_each_init(
                || vec![0f32; s.h * s.out[1]],
                |tmp, (dst, src)| pool_plane(src, dst, tmp, &cols, s, kind),
            );
    }
    out
}

/// One plane, separably: each window's rows reduced along the row first (`tmp`, one value per
/// input row and output column), then down the columns, so the second pass runs over whole
/// contiguous rows.
fn pool_plane(
    src: &[f32],
    dst: &mut [f32],
    tmp: &mut [f32],
    cols: &[(usize, usize)],
    s: &PoolShape,
    kind: Pool,
) {
    simd!(pool_plane_body(src, dst, tmp, cols, s, kind))
}

#[inline(always)]
fn pool_plane_body(
    src: &[f32],
    dst: &mut [f32],
    tmp: &mut [f32],
    cols: &[(usize, usize)],
    s: &PoolShape,
    kind: Pool,
) {
    let [ho, wo] = s.out;
    let max = matches!(kind, Pool::Max);
    let init = if max { f32::NEG_INFINITY } else { 0.0 };
    let combine = |acc: f32, v: f32| {
        if !max {
            acc + v
        } else if v > acc || v.is_nan() {
            v
        } else {
            acc
        }
    };
    for (line, t) in src.chunks_exact(s.w).zip(tmp.chunks_exact_mut(wo)) {
        for (t, &(first, n)) in t.iter_mut().zip(cols) {
            *t = (0..n)
                .map(|j| line[first + j * s.dilation[1]])
                .fold(init, combine);
        }
    }
    for oy in 0..ho {
        let (first, n) = s.taps(oy, 0);
        let row = &mut dst[oy * wo..(oy + 1) * wo];
        match n {
            0 => row.fill(init),
            _ => row.copy_from_slice(&tmp[first * wo..(first + 1) * wo]),
        }
        for j in 1..n {
            let src_row = &tmp[(first + j * s.dilation[0]) * wo..][..wo];
            row.iter_mut()
                .zip(src_row)
                .for_each(|(d, &v)| *d = combine(*d, v));
        }
        match kind {
            Pool::Max => {}
            Pool::Avg { count_pad: true } => {
                let window = (s.kernel[0] * s.kernel[1]) as f32;
                row.iter_mut().for_each(|d| *d /= window);
            }
            Pool::Avg { count_pad: false } => {
                for (d, &(_, nx)) in row.iter_mut().zip(cols) {
                    *d /= (n * nx).max(1) as f32;
                }
            }
        }
    }
}

impl PoolShape {
    /// The taps of output `o` along `axis` (0 rows, 1 columns) that land inside the input:
    /// the first one's input index and how many there are (one every `dilation`).
    fn taps(&self, o: usize, axis: usize) -> (usize, usize) {
        let len = if axis == 0 { self.h } else { self.w };
        let (k, d, pad) = (self.kernel[axis], self.dilation[axis], self.pad[axis]);
        let start = o * self.stride[axis];
        let first = pad.saturating_sub(start).div_ceil(d).min(k);
        let end = if start < pad + len {
            ((pad + len - 1 - start) / d + 1).min(k)
        } else {
            0
        };
        match end > first {
            true => (start + first * d - pad, end - first),
            false => (0, 0),
        }
    }
}

/// `v·scale[c] + shift[c]` over an `[n, c, plane]` tensor (a BatchNorm in inference form, or
/// a training-mode one with its batch statistics): one pass, images in parallel.
pub(crate) fn channel_affine(x: &[f32], c: usize, plane: usize, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let mut out = x.to_vec();
    let affine = Affine {
        scale: Some(scale),
        shift: Some(shift),
    };
    let tail = Epilogue {
        affine,
        residual: None,
        act: Act::Identity,
    };
    if c * plane > 0 {
        let par = out.len() == c * plane && rayon::current_num_threads() > 1;
        out.par_chunks_mut(c * plane)
            .for_each(|image| tail.planes(image, plane, par));
    }
    out
}

/// Per-channel mean and biased variance of an `[n, c, plane]` tensor (two passes: the mean,
/// then the squared deviations from it; f32 lanes summed into f64 per plane).
pub(crate) fn channel_moments(x: &[f32], n: usize, c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (n * plane).max(1) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * plane..][..plane]);
            let mean = planes().map(|p| lane_sum(p, |v| v)).sum::<f64>() / count;
            let m = mean as f32;
            let var = planes().map(|p| lane_sum(p, |v| (v - m) * (v - m))).sum::<f64>() / count;
            (m, var as f32)
        })
        .unzip()
}

/// The gradients of a training-mode BatchNorm `y = (x − μ)·γ/σ + β` with batch statistics
/// (`inv_std = 1/σ`), from `dy`: `(∂L/∂x, ∂L/∂γ, ∂L/∂β)`.
///
/// Per channel, over the `M = n·plane` values: `∂β = Σ dy`, `∂γ = Σ dy·x̂` (`x̂ = (x − μ)/σ`),
/// `∂x = γ/σ·(dy − ∂β/M − x̂·∂γ/M)`.
pub(crate) fn batch_norm_backward(
    x: &[f32],
    dy: &[f32],
    [n, c, plane]: [usize; 3],
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let count = (n * plane).max(1) as f32;
    let (sum_dy, sum_dy_xc): (Vec<f64>, Vec<f64>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut a, mut b) = (0f64, 0f64);
            for i in 0..n {
                let at = (i * c + ch) * plane;
                let (xp, gp) = (&x[at..at + plane], &dy[at..at + plane]);
                a += lane_sum(gp, |v| v);
                b += lane_dot(gp, xp, mean[ch]);
            }
            (a, b)
        })
        .unzip();
    let dbeta: Vec<f32> = sum_dy.iter().map(|v| *v as f32).collect();
    let dgamma: Vec<f32> = (0..c)
        .map(|ch| (sum_dy_xc[ch] * f64::from(inv_std[ch])) as f32)
        .collect();
    let dx = need_dx.then(|| {
        // ∂x = a·dy + b·x + k per channel
        let a: Vec<f32> = (0..c).map(|ch| gamma[ch] * inv_std[ch]).collect();
        let b: Vec<f32> = (0..c)
            .map(|ch| -a[ch] * inv_std[ch] * dgamma[ch] / count)
            .collect();
        let k: Vec<f32> = (0..c)
            .map(|ch| -a[ch] * dbeta[ch] / count - b[ch] * mean[ch])
            .collect();
        let mut dx = vec![0f32; x.len()];
        if c * plane > 0 {
            dx.par_chunks_mut(c * plane)
                .zip(x.par_chunks(c * plane))
                .zip(dy.par_chunks(c * plane))
                .for_each(|((dx, x), dy)| {
                    for ch in 0..c {
                        let r = ch * plane..(ch + 1) * plane;
                        axpby(&mut dx[r.clone()], &dy[r.clone()], &x[r], [a[ch], b[ch], k[ch]]);
                    }
                });
        }
        dx
    });
    (dx, dgamma, dbeta)
}

/// `Σ f(v)` in f32 lanes, returned as f64.
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    simd!(lane_sum_body(v, f))
}

#[inline(always)]
fn lane_sum_body(v: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f64 = chunks.remainder().iter().map(|x| f64::from(f(*x))).sum();
    for chunk in chunks {
        for (l, x) in lanes.iter_mut().zip(chunk) {
            *l += f(*x);
        }
    }
    lanes.iter().map(|l| f64::from(*l)).sum::<f64>() + tail
}

/// `Σ g·(x − m)` in f32 lanes, returned as f64.
fn lane_dot(g: &[f32], x: &[f32], m: f32) -> f64 {
    simd!(lane_dot_body(g, x, m))
}

#[inline(always)]
fn lane_dot_body(g: &[f32], x: &[f32], m: f32) -> f64 {
    let mut lanes = [0f32; 16];
    let (gc, xc) = (g.chunks_exact(16), x.chunks_exact(16));
    let tail: f64 = gc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .map(|(g, x)| f64::from(g * (x - m)))
        .sum();
    for (gs, xs) in gc.zip(xc) {
        for ((l, g), x) in lanes.iter_mut().zip(gs).zip(xs) {
            *l += g * (x - m);
        }
    }
    lanes.iter().map(|l| f64::from(*l)).sum::<f64>() + tail
}

/// `out = a·dy + b·x + k`.
fn axpby(out: &mut [f32], dy: &[f32], x: &[f32], abk: [f32; 3]) {
    simd!(axpby_body(out, dy, x, abk))
}

#[inline(always)]
fn axpby_body(out: &mut [f32], dy: &[f32], x: &[f32], [a, b, k]: [f32; 3]) {
    for ((o, g), x) in out.iter_mut().zip(dy).zip(x) {
        *o = a * g + b * x + k;
    }
}

/// The affine map, then the residual, then the activation: one pass per output plane.
fn epilogue(out: &mut [f32], plane: usize, first: usize, tail: Epilogue<'_>) {
    simd!(epilogue_body(out, plane, first, tail))
}

/// `out = act(out·scale + shift + residual)` over `out`'s planes, the first of which is output
/// channel `first` (the residual is the image's whole output).
#[inline(always)]
fn epilogue_body(out: &mut [f32], plane: usize, first: usize, tail: Epilogue<'_>) {
    let Epilogue {
        affine,
        residual,
        act,
    } = tail;
    for (c, o) in out.chunks_mut(plane).enumerate() {
        let c = first + c;
        let a = affine.scale.map_or(1.0, |s| s[c]);
        let b = affine.shift.map_or(0.0, |b| b[c]);
        let r = residual.map(|r| &r[c * plane..(c + 1) * plane]);
        let slope = match act {
            Act::PRelu(a) if a.len() == 1 => a[0],
            Act::PRelu(a) => a[c],
            _ => 0.0,
        };
        let relu = matches!(act, Act::Relu | Act::PRelu(_));
        match r {
            Some(r) => o.iter_mut().zip(r).for_each(|(v, r)| *v = *v * a + b + r),
            None if a != 1.0 || b != 0.0 => o.iter_mut().for_each(|v| *v = *v * a + b),
            None => {}
        }
        if relu {
            o.iter_mut().for_each(|v| {
                if *v < 0.0 {
                    *v *= slope;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one output at a time.
    fn naive(x: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
        let [ho, wo] = s.output().unwrap();
        let (cg, og) = (s.c / s.groups, s.co / s.groups);
        let mut out = vec![0f32; s.n * s.co * ho * wo];
        for n in 0..s.n {
            for o in 0..s.co {
                let g = o / og;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = 0f64;
                        for ci in 0..cg {
                            for ky in 0..s.kh {
                                for kx in 0..s.kw {
                                    let iy =
                                        (oy * s.stride[0] + ky * s.dilation[0]) as isize - s.pad[0] as isize;
                                    let ix =
                                        (ox * s.stride[1] + kx * s.dilation[1]) as isize - s.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                        continue;
                                    }
                                    let c = g * cg + ci;
                                    let xv = x[((n * s.c + c) * s.h + iy as usize) * s.w + ix as usize];
                                    let wv = w[((o * cg + ci) * s.kh + ky) * s.kw + kx];
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        out[((n * s.co + o) * ho + oy) * wo + ox] = acc as f32;
                    }
                }
            }
        }
        out
    }

    /// The gradients by the definition: every product `x·w` that made an output sends
    /// `dy·w` to its input and `dy·x` to its weight.
    fn naive_backward(x: &[f32], w: &[f32], dy: &[f32], s: &ConvShape) -> (Vec<f32>, Vec<f32>) {
        let [ho, wo] = s.output().unwrap();
        let (cg, og) = (s.c / s.groups, s.co / s.groups);
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; w.len()];
        for n in 0..s.n {
            for o in 0..s.co {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let g = f64::from(dy[((n * s.co + o) * ho + oy) * wo + ox]);
                        for ci in 0..cg {
                            for ky in 0..s.kh {
                                for kx in 0..s.kw {
                                    let iy =
                                        (oy * s.stride[0] + ky * s.dilation[0]) as isize - s.pad[0] as isize;
                                    let ix =
                                        (ox * s.stride[1] + kx * s.dilation[1]) as isize - s.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                        continue;
                                    }
                                    let xi = ((n * s.c + (o / og) * cg + ci) * s.h + iy as usize) * s.w
                                        + ix as usize;
                                    let wi = ((o * cg + ci) * s.kh + ky) * s.kw + kx;
                                    dx[xi] += g * f64::from(w[wi]);
                                    dw[wi] += g * f64::from(x[xi]);
                                }
                            }
                        }
                    }
                }
            }
        }
        let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
        (f(dx), f(dw))
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (i as f32 * 0.618 + seed as f32 * 1.7).sin() * 1.3)
            .collect()
    }

    /// n, c, h, w, co, kh, kw, stride, pad (t, l, b, r), dilation, groups
    type Row = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        [usize; 2],
        [usize; 4],
        [usize; 2],
        usize,
    );

    fn shape((n, c, h, w, co, kh, kw, stride, pad, dilation, groups): Row) -> ConvShape {
        ConvShape {
            n,
            c,
            h,
            w,
            co,
            kh,
            kw,
            stride,
            pad,
            dilation,
            groups,
        }
    }

    /// Shapes for the kernels: stride 2, padding 0/1/asymmetric, dilation 2, groups = channels,
    /// a channel multiplier, thin groups, 1×1, 7×7, non-square, batch 1.
    const SHAPES: [Row; 13] = [
        (2, 3, 9, 7, 5, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
        // stride 1 along the row only, dilation 2 with padding 2, asymmetric padding
        (2, 5, 9, 8, 4, 3, 3, [2, 1], [1, 1, 1, 1], [1, 1], 1),
        (1, 5, 7, 6, 3, 3, 3, [1, 1], [2, 2, 2, 2], [2, 2], 1),
        (1, 5, 6, 7, 3, 3, 3, [1, 1], [0, 2, 2, 0], [1, 1], 1),
        (1, 4, 8, 11, 6, 3, 3, [2, 2], [1, 1, 1, 1], [1, 1], 1),
        (3, 6, 7, 7, 6, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 6),
        (2, 6, 10, 9, 6, 3, 3, [2, 2], [0, 1, 1, 0], [1, 1], 6),
        (1, 4, 5, 6, 8, 1, 1, [1, 1], [0, 0, 0, 0], [1, 1], 1),
        (2, 4, 5, 6, 8, 1, 1, [2, 2], [0, 0, 0, 0], [1, 1], 2),
        (1, 3, 13, 12, 4, 7, 7, [2, 2], [3, 3, 3, 3], [1, 1], 1),
        (2, 2, 9, 9, 4, 3, 2, [1, 2], [2, 0, 1, 1], [2, 1], 1),
        (1, 3, 4, 4, 6, 3, 3, [1, 1], [0, 0, 0, 0], [1, 1], 3),
        (1, 2, 3, 3, 2, 5, 5, [1, 1], [2, 2, 2, 2], [1, 1], 2),
    ];

    /// An input and a weight for case `case` of shape `s`.
    fn inputs(s: &ConvShape, case: usize) -> (Vec<f32>, Vec<f32>) {
        let x = values(s.n * s.c * s.h * s.w, case as u32);
        let w = values(s.co * s.c / s.groups * s.kh * s.kw, 100 + case as u32);
        (x, w)
    }

    #[test]
    fn kernels_match_the_definition_on_odd_shapes() {
        let shapes = SHAPES;
        for (case, &row) in shapes.iter().enumerate() {
            let s = shape(row);
            let (x, wt) = inputs(&s, case);
            let expected = naive(&x, &wt, &s);
            let got = conv2d(&x, &wt, Affine::default(), None, Act::Identity, &s);
            let err = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-4, "case {case} {s:?}: max |Δ| {err}");
        }
    }

    /// The epilogue fused on every path — GEMM and direct, a batch and a single image (whose
    /// epilogue runs channel blocks in parallel) — against the definition: `act(conv·scale +
    /// shift + residual)` with per-channel values. The two large planes split a single image's
    /// channels into several blocks; the two wide ones cut a single image into enough bands
    /// (with a shorter last one) that two threads unfold and multiply them in parallel, one
    /// of them in two groups.
    #[test]
    fn the_fused_epilogue_matches_the_definition_on_every_path() {
        let mut rows = SHAPES.to_vec();
        rows.push((1, 2, 130, 129, 3, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1));
        rows.push((1, 3, 130, 129, 3, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 3));
        let wide = [
            (1, 1, 130, 1500, 3, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
            (1, 10, 200, 600, 4, 3, 3, [2, 2], [1, 1, 1, 1], [1, 1], 2),
        ];
        for row in wide {
            let s = shape(row);
            let out = s.output().unwrap();
            let (band, _) = bands(&s, s.cin_per_group() * 9, out);
            let units = s.groups * out[0].div_ceil(band);
            assert!(
                units >= 5 && !out[0].is_multiple_of(band),
                "{s:?}: {units} bands of {band} rows"
            );
            rows.push(row);
        }
        for (case, &row) in rows.iter().enumerate() {
            let s = shape(row);
            let (x, wt) = inputs(&s, case);
            let conv = naive(&x, &wt, &s);
            check_fused(case, &s, &x, &wt, &conv, |_| 1e-4);
        }
    }

    /// `conv2d` with a per-channel scale, shift and PReLU slope and a residual against
    /// `act(conv·scale + shift + residual)` from the definition's `conv`, each value to within
    /// `bound(scale of its channel)`.
    fn check_fused(
        case: usize,
        s: &ConvShape,
        x: &[f32],
        wt: &[f32],
        conv: &[f32],
        bound: impl Fn(f32) -> f32,
    ) {
        let plane = conv.len() / (s.n * s.co);
        let residual = values(conv.len(), 200 + case as u32);
        let scale: Vec<f32> = (0..s.co).map(|c| 0.5 + 0.25 * c as f32).collect();
        let shift: Vec<f32> = (0..s.co).map(|c| 0.1 * c as f32 - 0.2).collect();
        let slope: Vec<f32> = (0..s.co).map(|c| 0.05 * (c + 1) as f32).collect();
        let affine = Affine {
            scale: Some(&scale),
            shift: Some(&shift),
        };
        let got = conv2d(x, wt, affine, Some(&residual), Act::PRelu(&slope), s);
        assert_eq!(got.len(), conv.len());
        for (i, (g, v)) in got.iter().zip(conv).enumerate() {
            let c = (i / plane) % s.co;
            let pre = v * scale[c] + shift[c] + residual[i];
            let want = if pre < 0.0 { pre * slope[c] } else { pre };
            assert!(
                (g - want).abs() <= bound(scale[c]),
                "case {case} {s:?}, value {i}: {g} vs {want}"
            );
        }
    }

    /// Shapes the Winograd path serves: padding 1, 0 and asymmetric; odd and even sizes; a
    /// batch in one group of GEMMs and one in several; a single image (transforms and GEMMs
    /// parallel); planes cut into bands of tile rows, alone and in a batch.
    const WINOGRAD: [Row; 8] = [
        (2, 32, 7, 7, 32, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
        (5, 33, 4, 5, 35, 3, 3, [1, 1], [0, 0, 0, 0], [1, 1], 1),
        (1, 40, 9, 8, 32, 3, 3, [1, 1], [0, 1, 2, 1], [1, 1], 1),
        (3, 32, 11, 13, 33, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
        (1, 32, 45, 37, 32, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
        (3, 32, 40, 41, 32, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
        (40, 32, 6, 6, 32, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
        (2, 32, 3, 3, 32, 3, 3, [1, 1], [1, 0, 1, 1], [1, 1], 1),
    ];

    /// Winograd F(2×2, 3×3) against the definition, plain and with the whole epilogue. Its
    /// rounding differs from the direct sum's; the bound is relative to the largest output.
    #[test]
    fn winograd_matches_the_definition() {
        // Not served (im2col instead): 16 input channels, stride 2, two groups, dilation 2.
        let refused: [Row; 4] = [
            (1, 16, 8, 8, 32, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 1),
            (1, 32, 8, 8, 32, 3, 3, [2, 2], [1, 1, 1, 1], [1, 1], 1),
            (1, 64, 8, 8, 64, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 2),
            (1, 32, 8, 8, 32, 3, 3, [1, 1], [2, 2, 2, 2], [2, 2], 1),
        ];
        for row in refused {
            let s = shape(row);
            assert!(!winograd::applies(&s, s.output().unwrap()), "{s:?}");
        }
        for (case, &row) in WINOGRAD.iter().enumerate() {
            let s = shape(row);
            assert!(winograd::applies(&s, s.output().unwrap()), "case {case}");
            let (x, wt) = inputs(&s, case);
            let conv = naive(&x, &wt, &s);
            let scale = conv.iter().fold(1f32, |m, v| m.max(v.abs()));
            let got = conv2d(&x, &wt, Affine::default(), None, Act::Identity, &s);
            let err = got
                .iter()
                .zip(&conv)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                err <= 2e-6 * scale,
                "case {case} {s:?}: max |Δ| {err} (scale {scale})"
            );

            check_fused(case, &s, &x, &wt, &conv, |a| 2e-6 * scale * a + 1e-5);
        }
    }

    #[test]
    fn gradients_match_the_definition_on_odd_shapes() {
        // the GEMM shapes of the forward table, a thick grouped one and a batch of 5
        let extra = [
            (2, 10, 6, 5, 4, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1], 2),
            (5, 6, 4, 4, 3, 3, 3, [1, 1], [0, 0, 0, 0], [1, 1], 1),
        ];
        let shapes: Vec<Row> = SHAPES
            .into_iter()
            .filter(|r| !is_direct(&shape(*r)))
            .chain(extra)
            .collect();
        for (case, &row) in shapes.iter().enumerate() {
            let s = shape(row);
            assert!(!is_direct(&s));
            let [ho, wo] = s.output().unwrap();
            let (x, wt) = inputs(&s, case);
            let dy = values(s.n * s.co * ho * wo, 200 + case as u32);
            let (dx_ref, dw_ref) = naive_backward(&x, &wt, &dy, &s);
            let (dx, dw) = conv2d_backward(&x, &wt, &dy, &s, true, true);
            let (dx, dw) = (dx.unwrap(), dw.unwrap());
            for (what, got, want) in [("dx", &dx, &dx_ref), ("dw", &dw, &dw_ref)] {
                let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
                let err = got
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    err <= 1e-5 * scale,
                    "case {case} {what} {s:?}: max |Δ| {err} (scale {scale})"
                );
            }
            // Asking for one gradient computes only that one, with the same values.
            let (only_dx, none) = conv2d_backward(&x, &wt, &dy, &s, true, false);
            assert_eq!((only_dx.as_deref(), none), (Some(&dx[..]), None));
            let (none, only_dw) = conv2d_backward(&x, &wt, &dy, &s, false, true);
            assert_eq!((none, only_dw.as_deref()), (None, Some(&dw[..])));
        }
    }

    #[test]
    fn the_epilogue_adds_bias_then_residual_then_activates() {
        let s = ConvShape {
            n: 1,
            c: 1,
            h: 1,
            w: 2,
            co: 2,
            kh: 1,
            kw: 1,
            stride: [1, 1],
            pad: [0; 4],
            dilation: [1, 1],
            groups: 1,
        };
        let x = [1.0, -2.0];
        let w = [1.0, 2.0];
        let bias = [0.5, -1.0];
        let shift = Affine {
            scale: None,
            shift: Some(&bias),
        };
        let residual = [0.25, 0.0, 1.0, 10.0];
        // conv: [1, -2 | 2, -4]; + bias: [1.5, -1.5 | 1, -5]; + residual: [1.75, -1.5 | 2, 5]
        let out = conv2d(&x, &w, shift, Some(&residual), Act::PRelu(&[0.1, 0.5]), &s);
        assert_eq!(out, vec![1.75, -0.15, 2.0, 5.0]);
        let out = conv2d(&x, &w, shift, None, Act::Relu, &s);
        assert_eq!(out, vec![1.5, 0.0, 1.0, 0.0]);
        // scale first: [2, -4 | -2, 4] + bias → [2.5, -3.5 | -3, 3]
        let both = Affine {
            scale: Some(&[2.0, -1.0]),
            shift: Some(&bias),
        };
        let out = conv2d(&x, &w, both, None, Act::Identity, &s);
        assert_eq!(out, vec![2.5, -3.5, -3.0, 3.0]);
    }

    #[test]
    fn a_kernel_larger_than_the_padded_input_has_no_output() {
        let s = ConvShape {
            n: 1,
            c: 1,
            h: 2,
            w: 2,
            co: 1,
            kh: 3,
            kw: 3,
            stride: [1, 1],
            pad: [0; 4],
            dilation: [1, 1],
            groups: 1,
        };
        assert_eq!(s.output(), None);
    }
}
