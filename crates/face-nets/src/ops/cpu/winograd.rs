//! Winograd's minimal filtering F(2×2, 3×3) for 3×3, stride-1 convolutions (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! Each 2×2 block of outputs (a *tile*) is computed from the 4×4 input window under it as
//! `Y = Aᵀ[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]A`: 16 multiplications per input channel instead of 36. Summed
//! over input channels, the element-wise products become 16 independent GEMMs, one per
//! position ξ of the 4×4 transformed tile:
//!
//! `M[ξ] (Co × T) = U[ξ] (Co × C) · V[ξ] (C × T)`, `U = G·g·Gᵀ` (the weights, transformed once
//! per call), `V = Bᵀ·d·B` (the input tiles), `T` the number of tiles.
//!
//! So the GEMMs do 16/36 = 1/2.25 of the multiply-adds of im2col + GEMM, with `K = C` instead
//! of `9·C`. The transforms only add and subtract (and halve, in `G`). They read the input and
//! write `V` (4× the input) once, where im2col writes 9× the input; the output transform reads
//! `M` (4× the output) once and runs the fused epilogue on each plane while it is in cache.
//!
//! With these matrices (entries 0, ±1, ±½) the result differs from the direct sum only by
//! rounding, of the same order as a different summation order (the kernel tests bound it
//! against the definition).
//!
//! Layouts keep every parallel unit's data contiguous: `U` is `[Co][16][C]`, `V` is
//! `[C][16][T]` and `M` is `[Co][16][T]`, so the ξ-th GEMM reads and writes strided views
//! (row strides 16·C and 16·T), which the `gemm` crate packs like any other.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{assume_init, epilogue, parallelism, sgemm, ConvShape, Epilogue};

/// Fewest input and output channels for which the transforms pay for themselves: below it the
/// GEMMs are too thin for the saved multiplications to outweigh the transforms' passes
/// (MTCNN's P-Net, 16 → 32 channels on large planes, ran 4 % slower at 16; at 32 it runs as
/// before).
const MIN_CHANNELS: usize = 32;

/// Tiles per group of GEMMs: images are grouped, or large images cut into bands of tile rows,
/// so each ξ-GEMM has about this many columns. More columns share one packing of `U[ξ]`;
/// fewer keep `V` and `M` nearer the cache.
const TILES_PER_CALL: usize = 256;

/// Whether [`conv2d`] serves this shape: an ungrouped 3×3 convolution with stride 1 and
/// dilation 1 (any padding), at least [`MIN_CHANNELS`] channels in and out, and an output of
/// at least 2 × 2.
pub(super) fn applies(s: &ConvShape, [ho, wo]: [usize; 2]) -> bool {
    s.groups == 1
        && s.kh == 3
        && s.kw == 3
        && s.stride == [1, 1]
        && s.dilation == [1, 1]
        && s.c >= MIN_CHANNELS
        && s.co >= MIN_CHANNELS
        && ho >= 2
        && wo >= 2
}

/// Tile rows and columns of an `ho × wo` output.
fn tiles([ho, wo]: [usize; 2]) -> [usize; 2] {
    [ho.div_ceil(2), wo.div_ceil(2)]
}

/// The whole convolution with its epilogue into `out` (`n·co·ho·wo`, uninitialised), which it
/// writes completely: each band's tile rows cover its output rows, and the bands all rows. Images run in parallel, several per group of GEMMs when their planes
/// are small; a single image runs its transforms over channels and its GEMMs in parallel.
pub(super) fn conv2d<'e>(
    x: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
    s: &ConvShape,
    [ho, wo]: [usize; 2],
    tail: impl Fn(usize) -> Epilogue<'e> + Sync,
) {
    let [th, tw] = tiles([ho, wo]);
    let per_tile_image = th * tw;
    let per_image_out = s.co * ho * wo;
    let per_image_in = s.c * s.h * s.w;
    let threads = rayon::current_num_threads().max(1);
    let u = transform_weights(weight, s.co, s.c);
    // Images per group: enough for TILES_PER_CALL, but at least one group per thread.
    let per_group = TILES_PER_CALL
        .div_ceil(per_tile_image)
        .clamp(1, s.n.div_ceil(threads).max(1));
    // Tile rows per band when one image alone has more than TILES_PER_CALL tiles.
    let band = (TILES_PER_CALL.div_ceil(tw)).clamp(1, th);
    let par = s.n == 1 && threads > 1;
    let geo = Geometry {
        s: *s,
        out: [ho, wo],
        tiles: [th, tw],
    };
    out.par_chunks_mut(per_group * per_image_out)
        .zip(x.par_chunks(per_group * per_image_in))
        .enumerate()
        .for_each(|(g, (out, x))| {
            let first = g * per_group;
            if per_group > 1 || band >= th {
                // Whole images, one group of GEMMs.
                let images = x.len() / per_image_in;
                geo.run(x, &u, out, 0..th, images, par, |i| tail(first + i));
            } else {
                // One image in bands of tile rows.
                for y0 in (0..th).step_by(band) {
                    geo.run(x, &u, out, y0..(y0 + band).min(th), 1, par, |_| tail(first));
                }
            }
        });
}

/// The shapes every pass of one call shares.
#[derive(Clone, Copy)]
struct Geometry {
    s: ConvShape,
    out: [usize; 2],
    tiles: [usize; 2],
}

thread_local! {
    /// The transformed input `V` and the GEMMs' output `M`, kept per thread between calls.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl Geometry {
    /// Tile rows `rows` of `images` consecutive images (`x` and `out` start at the first), then
    /// the epilogue: for whole images (`rows` = all of them) per plane as it is written, for a
    /// band on the image's last band, over the whole image.
    #[allow(clippy::too_many_arguments)]
    fn run<'o>(
        &self,
        x: &[f32],
        u: &[f32],
        out: &mut [MaybeUninit<f32>],
        rows: std::ops::Range<usize>,
        images: usize,
        par: bool,
        tail: impl Fn(usize) -> Epilogue<'o>,
    ) {
        let s = &self.s;
        let [ho, wo] = self.out;
        let [th, tw] = self.tiles;
        let plane_in = s.h * s.w;
        let plane_out = ho * wo;
        let per_image = (rows.end - rows.start) * tw;
        let t = images * per_image;
        // Taken and put back, so a nested call on the same thread allocates its own.
        let (mut v_buf, mut m_buf) = SCRATCH.with(|c| c.take());
        for (buf, channels) in [(&mut v_buf, s.c), (&mut m_buf, s.co)] {
            if buf.len() < 16 * t * channels {
                buf.resize(16 * t * channels, 0.0);
            }
        }
        let v = &mut v_buf[..16 * t * s.c];
        let mm = &mut m_buf[..16 * t * s.co];
        // V = Bᵀ·d·B for every input channel and tile.
        let input = |(ci, v): (usize, &mut [f32])| {
            for i in 0..images {
                let src = &x[(i * s.c + ci) * plane_in..][..plane_in];
                input_tiles(src, v, t, i * per_image, s, tw, rows.clone());
            }
        };
        if par {
            v.par_chunks_mut(16 * t).enumerate().for_each(input);
        } else {
            v.chunks_mut(16 * t).enumerate().for_each(input);
        }
        // M[ξ] = U[ξ]·V[ξ].
        for xi in 0..16 {
            // SAFETY: `mm[xi·t..]` is the `co × t` matrix with row stride 16·t whose last element,
            // (co−1)·16t + xi·t + t − 1 < 16·t·co, lies inside `mm`; `u[xi·c..]` is `co × c` with
            // row stride 16·c inside the `co·16·c` weights; `v[xi·t..]` is `c × t` with row
            // stride 16·t inside `v`; `mm` overlaps neither. Without `accumulate` the destination
            // is only written.
            unsafe {
                sgemm(
                    [s.co, t, s.c],
                    (mm[xi * t..].as_mut_ptr(), 1, 16 * t as isize),
                    false,
                    (u[xi * s.c..].as_ptr(), 1, 16 * s.c as isize),
                    (v[xi * t..].as_ptr(), 1, 16 * t as isize),
                    parallelism(par),
                );
            }
        }
        // Y = Aᵀ·M·A, then the epilogue.
        let whole = rows.start == 0 && rows.end == th;
        let last = rows.end == th;
        for i in 0..images {
            let out_i = &mut out[i * s.co * plane_out..][..s.co * plane_out];
            let tail_i = tail(i);
            let output = |(co, (dst, m)): (usize, (&mut [MaybeUninit<f32>], &[f32]))| {
                output_tiles(m, dst, t, i * per_image, [ho, wo], tw, rows.clone());
                if whole {
                    // SAFETY: the whole plane was written just above.
                    epilogue(unsafe { assume_init(dst) }, plane_out, co, tail_i);
                }
            };
            if par {
                out_i
                    .par_chunks_mut(plane_out)
                    .zip(mm.par_chunks(16 * t))
                    .enumerate()
                    .for_each(output);
            } else {
                out_i
                    .chunks_mut(plane_out)
                    .zip(mm.chunks(16 * t))
                    .enumerate()
                    .for_each(output);
            }
            if !whole && last {
                // SAFETY: this band is the image's last; the earlier bands wrote the rows above.
                tail_i.planes(unsafe { assume_init(out_i) }, plane_out, par);
            }
        }
        SCRATCH.with(|c| c.replace((v_buf, m_buf)));
    }
}

/// `U = G·g·Gᵀ` for every output and input channel, laid out `[Co][16][C]`, output channels
/// in parallel. `G` = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
fn transform_weights(weight: &[f32], co: usize, c: usize) -> Vec<f32> {
    let mut u = vec![0f32; co * 16 * c];
    u.par_chunks_mut(16 * c).enumerate().for_each(|(o, u)| {
        for ci in 0..c {
            let g = &weight[(o * c + ci) * 9..][..9];
            // G·g: four rows of three.
            let mut q = [[0f32; 3]; 4];
            for b in 0..3 {
                let (g0, g1, g2) = (g[b], g[3 + b], g[6 + b]);
                q[0][b] = g0;
                q[1][b] = 0.5 * (g0 + g1 + g2);
                q[2][b] = 0.5 * (g0 - g1 + g2);
                q[3][b] = g2;
            }
            // (G·g)·Gᵀ.
            for (i, [q0, q1, q2]) in q.into_iter().enumerate() {
                let row = [q0, 0.5 * (q0 + q1 + q2), 0.5 * (q0 - q1 + q2), q2];
                for (j, value) in row.into_iter().enumerate() {
                    u[(4 * i + j) * c + ci] = value;
                }
            }
        }
    });
    u
}

/// `V = Bᵀ·d·B` for one input plane's tiles in tile rows `rows`, written to `v[ξ·t + col]`
/// with `col = col0 + (ty − rows.start)·tw + tx`. `Bᵀ` = [[1, 0, −1, 0], [0, 1, 1, 0],
/// [0, −1, 1, 0], [0, 1, 0, −1]]; positions in the padding read as zero.
fn input_tiles(
    src: &[f32],
    v: &mut [f32],
    t: usize,
    col0: usize,
    s: &ConvShape,
    tw: usize,
    rows: std::ops::Range<usize>,
) {
    simd!(input_tiles_body(src, v, t, col0, s, tw, rows))
}

#[inline(always)]
fn input_tiles_body(
    src: &[f32],
    v: &mut [f32],
    t: usize,
    col0: usize,
    s: &ConvShape,
    tw: usize,
    rows: std::ops::Range<usize>,
) {
    let (pt, pl) = (s.pad[0], s.pad[1]);
    // A tile row reads `width` = 2·tw + 2 padded columns of four input rows. The rows are
    // combined first (Bᵀ), then each combined row is split into its even and odd columns, so
    // tile tx reads columns tx and tx + 1 of both halves: every loop is unit-stride.
    let half = tw + 1;
    let width = 2 * half;
    let mut buf = vec![0f32; 4 * width + 2 * half];
    let (padded, split) = buf.split_at_mut(4 * width);
    let (even, odd) = split.split_at_mut(half);
    // The input columns a padded row holds, and where.
    let lo = pl.min(width);
    let hi = (pl + s.w).min(width);
    for ty in rows.clone() {
        let mut r_rows = padded.chunks_exact_mut(width);
        for r in 0..4 {
            let row = r_rows.next().expect("four rows");
            let iy = (2 * ty + r) as isize - pt as isize;
            if iy < 0 || iy >= s.h as isize || lo >= hi {
                row.fill(0.0);
                continue;
            }
            row[..lo].fill(0.0);
            row[lo..hi].copy_from_slice(&src[iy as usize * s.w..][..hi - lo]);
            row[hi..].fill(0.0);
        }
        // Bᵀ over the rows, in place: t0 = r0 − r2, t1 = r1 + r2, t2 = r2 − r1, t3 = r1 − r3.
        {
            let (r0, rest) = padded.split_at_mut(width);
            let (r1, rest) = rest.split_at_mut(width);
            let (r2, r3) = rest.split_at_mut(width);
            for (((a, b), c), d) in r0
                .iter_mut()
                .zip(r1.iter_mut())
                .zip(r2.iter_mut())
                .zip(r3.iter_mut())
            {
                let (x0, x1, x2, x3) = (*a, *b, *c, *d);
                *a = x0 - x2;
                *b = x1 + x2;
                *c = x2 - x1;
                *d = x1 - x3;
            }
        }
        // B over the columns of each combined row i: with a, b, c, d its columns 2tx … 2tx + 3,
        // V[4i + 0..4] = a − c, b + c, c − b, b − d.
        let col = col0 + (ty - rows.start) * tw;
        for i in 0..4 {
            let row = &padded[i * width..][..width];
            for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
                *e = pair[0];
                *o = pair[1];
            }
            let (v0, rest) = v[(4 * i) * t..].split_at_mut(t);
            let (v1, rest) = rest.split_at_mut(t);
            let (v2, rest) = rest.split_at_mut(t);
            let v3 = &mut rest[..t];
            let outs = v0[col..col + tw]
                .iter_mut()
                .zip(&mut v1[col..col + tw])
                .zip(&mut v2[col..col + tw])
                .zip(&mut v3[col..col + tw]);
            let ins = even.iter().zip(&odd[..]).zip(&even[1..]).zip(&odd[1..]);
            for ((((v0, v1), v2), v3), (((a, b), c), d)) in outs.zip(ins) {
                *v0 = a - c;
                *v1 = b + c;
                *v2 = c - b;
                *v3 = b - d;
            }
        }
    }
}

/// `Y = Aᵀ·M·A` for one output plane's tiles in tile rows `rows` (read from `m[ξ·t + col]`
/// as [`input_tiles`] wrote them), written to the plane's rows `2·rows.start..` (a last odd
/// row or column is dropped). `Aᵀ` = [[1, 1, 1, 0], [0, 1, −1, −1]].
fn output_tiles(
    m: &[f32],
    dst: &mut [MaybeUninit<f32>],
    t: usize,
    col0: usize,
    out: [usize; 2],
    tw: usize,
    rows: std::ops::Range<usize>,
) {
    simd!(output_tiles_body(m, dst, t, col0, out, tw, rows))
}

#[inline(always)]
fn output_tiles_body(
    m: &[f32],
    dst: &mut [MaybeUninit<f32>],
    t: usize,
    col0: usize,
    [ho, wo]: [usize; 2],
    tw: usize,
    rows: std::ops::Range<usize>,
) {
    // Aᵀ over the rows gives s_j = m0j + m1j + m2j and d_j = m1j − m2j − m3j (eight rows of
    // tw); A over the columns then gives the tile's even and odd columns of its two output
    // rows. Every loop is unit-stride.
    let mut buf = vec![0f32; 12 * tw];
    let (sd, y) = buf.split_at_mut(8 * tw);
    for ty in rows.clone() {
        let col = col0 + (ty - rows.start) * tw;
        let at = |xi: usize| &m[xi * t + col..][..tw];
        {
            let (sums, diffs) = sd.split_at_mut(4 * tw);
            for j in 0..4 {
                let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
                let ins = m0.iter().zip(m1).zip(m2).zip(m3);
                let outs = sums[j * tw..][..tw].iter_mut().zip(&mut diffs[j * tw..][..tw]);
                for ((s, d), (((a, b), c), e)) in outs.zip(ins) {
                    *s = a + b + c;
                    *d = b - c - e;
                }
            }
        }
        for (r, half) in sd.chunks_exact(4 * tw).enumerate() {
            let oy = 2 * ty + r;
            if oy >= ho {
                break;
            }
            let (q0, rest) = half.split_at(tw);
            let (q1, rest) = rest.split_at(tw);
            let (q2, q3) = rest.split_at(tw);
            let (even, odd) = y.split_at_mut(tw);
            let ins = q0.iter().zip(q1).zip(q2).zip(q3);
            for ((e, o), (((a, b), c), d)) in even.iter_mut().zip(&mut odd[..tw]).zip(ins) {
                *e = a + b + c;
                *o = b - c - d;
            }
            let line = &mut dst[oy * wo..][..wo];
            let mut pairs = line.chunks_exact_mut(2);
            for ((pair, e), o) in (&mut pairs).zip(&*even).zip(&odd[..tw]) {
                pair[0] = MaybeUninit::new(*e);
                pair[1] = MaybeUninit::new(*o);
            }
            if let [last] = pairs.into_remainder() {
                *last = MaybeUninit::new(even[wo / 2]);
            }
        }
    }
}
