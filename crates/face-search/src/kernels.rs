//! Dot-product kernels: a 4 × 3 register tile (4 queries against 3 gallery rows)
//! for f32 and for int8 gallery rows against i16-widened int8 queries, plus
//! single dot products. AVX2+FMA versions are chosen at run time; the portable
//! versions give the same results up to summation order (f32) or exactly (int8).

/// Queries per tile.
pub(crate) const TQ: usize = 4;
/// Gallery rows per tile.
pub(crate) const TG: usize = 3;

/// Whether the AVX2+FMA kernels can run on this CPU (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn simd_available() -> bool {
    use std::sync::OnceLock;
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        std::env::var_os("FACEKIT_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    })
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn simd_available() -> bool {
    false
}

/// `out[i][j] = q[i] · g[j]` for a 4 × 3 tile of f32 rows of equal length.
#[inline]
pub(crate) fn tile_f32(q: [&[f32]; TQ], g: [&[f32]; TG], out: &mut [[f32; TG]; TQ]) {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: AVX2 and FMA were detected at run time.
        unsafe { x86::tile_f32(q, g, out) };
        return;
    }
    for (i, qi) in q.iter().enumerate() {
        for (j, gj) in g.iter().enumerate() {
            out[i][j] = dot_f32_portable(qi, gj);
        }
    }
}

/// `q · g` for two f32 rows of equal length.
#[inline]
pub(crate) fn dot_f32(q: &[f32], g: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { x86::dot_f32(q, g) };
    }
    dot_f32_portable(q, g)
}

/// Portable f32 dot product with 8 partial sums (the same lane layout as the
/// AVX2 kernel, so both agree closely).
pub(crate) fn dot_f32_portable(q: &[f32], g: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n8 = q.len() / 8 * 8;
    for (qc, gc) in q[..n8].chunks_exact(8).zip(g[..n8].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] = qc[l].mul_add(gc[l], acc[l]);
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (a, b) in q[n8..].iter().zip(&g[n8..]) {
        s += a * b;
    }
    s
}

/// `out[i][j] = q[i] · g[j]` for int8 gallery rows and i16 queries holding int8
/// values (|q| ≤ 127). Exact integer arithmetic.
#[inline]
pub(crate) fn tile_i8(q: [&[i16]; TQ], g: [&[i8]; TG], out: &mut [[i32; TG]; TQ]) {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: AVX2 was detected at run time.
        unsafe { x86::tile_i8(q, g, out) };
        return;
    }
    for (i, qi) in q.iter().enumerate() {
        for (j, gj) in g.iter().enumerate() {
            out[i][j] = dot_i8_portable(qi, gj);
        }
    }
}

pub(crate) fn dot_i8_portable(q: &[i16], g: &[i8]) -> i32 {
    q.iter().zip(g).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum()
}

/// `acc[c] += v · row[c]` (the sparse kernel's inner loop, over a block of queries).
#[inline]
pub(crate) fn axpy(acc: &mut [f32], v: f32, row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: AVX2 and FMA were detected at run time.
        unsafe { x86::axpy(acc, v, row) };
        return;
    }
    for (a, r) in acc.iter_mut().zip(row) {
        *a = v.mul_add(*r, *a);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{TG, TQ};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum_ps(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum_epi32(v: __m256i) -> i32 {
        let lo = _mm256_castsi256_si128(v);
        let hi = _mm256_extracti128_si256(v, 1);
        let s = _mm_add_epi32(lo, hi);
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// # Safety
    /// AVX2 and FMA must be available; all rows must have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_f32(q: [&[f32]; TQ], g: [&[f32]; TG], out: &mut [[f32; TG]; TQ]) {
        let n = g[0].len();
        debug_assert!(q.iter().all(|r| r.len() == n) && g.iter().all(|r| r.len() == n));
        let n8 = n / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); TG]; TQ];
        let (g0, g1, g2) = (g[0].as_ptr(), g[1].as_ptr(), g[2].as_ptr());
        let mut k = 0;
        while k < n8 {
            let a = _mm256_loadu_ps(g0.add(k));
            let b = _mm256_loadu_ps(g1.add(k));
            let c = _mm256_loadu_ps(g2.add(k));
            for i in 0..TQ {
                let x = _mm256_loadu_ps(q[i].as_ptr().add(k));
                acc[i][0] = _mm256_fmadd_ps(x, a, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(x, b, acc[i][1]);
                acc[i][2] = _mm256_fmadd_ps(x, c, acc[i][2]);
            }
            k += 8;
        }
        for i in 0..TQ {
            for j in 0..TG {
                let mut s = hsum_ps(acc[i][j]);
                for t in n8..n {
                    s += q[i][t] * g[j][t];
                }
                out[i][j] = s;
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA must be available; `q` and `g` must have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_f32(q: &[f32], g: &[f32]) -> f32 {
        let n = q.len().min(g.len());
        // Four independent accumulators hide the FMA latency (one chain would
        // wait 4 cycles per step).
        let n32 = n / 32 * 32;
        let n8 = n / 8 * 8;
        let (qp, gp) = (q.as_ptr(), g.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut k = 0;
        while k < n32 {
            for (j, a) in acc.iter_mut().enumerate() {
                let o = k + 8 * j;
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(o)), _mm256_loadu_ps(gp.add(o)), *a);
            }
            k += 32;
        }
        while k < n8 {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(k)), _mm256_loadu_ps(gp.add(k)), acc[0]);
            k += 8;
        }
        let mut s = hsum_ps(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        for t in n8..n {
            s += q[t] * g[t];
        }
        s
    }

    /// # Safety
    /// AVX2 must be available; all rows must have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_i8(q: [&[i16]; TQ], g: [&[i8]; TG], out: &mut [[i32; TG]; TQ]) {
        let n = g[0].len();
        debug_assert!(q.iter().all(|r| r.len() == n) && g.iter().all(|r| r.len() == n));
        let n16 = n / 16 * 16;
        let mut acc = [[_mm256_setzero_si256(); TG]; TQ];
        let (g0, g1, g2) = (g[0].as_ptr(), g[1].as_ptr(), g[2].as_ptr());
        let mut k = 0;
        while k < n16 {
            let a = _mm256_cvtepi8_epi16(_mm_loadu_si128(g0.add(k).cast()));
            let b = _mm256_cvtepi8_epi16(_mm_loadu_si128(g1.add(k).cast()));
            let c = _mm256_cvtepi8_epi16(_mm_loadu_si128(g2.add(k).cast()));
            for i in 0..TQ {
                let x = _mm256_loadu_si256(q[i].as_ptr().add(k).cast());
                acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(x, a));
                acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(x, b));
                acc[i][2] = _mm256_add_epi32(acc[i][2], _mm256_madd_epi16(x, c));
            }
            k += 16;
        }
        for i in 0..TQ {
            for j in 0..TG {
                let mut s = hsum_epi32(acc[i][j]);
                for t in n16..n {
                    s += i32::from(q[i][t]) * i32::from(g[j][t]);
                }
                out[i][j] = s;
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA must be available; `acc` and `row` must have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy(acc: &mut [f32], v: f32, row: &[f32]) {
        let n = acc.len().min(row.len());
        let n8 = n / 8 * 8;
        let vv = _mm256_set1_ps(v);
        let mut k = 0;
        while k < n8 {
            let p = acc.as_mut_ptr().add(k);
            _mm256_storeu_ps(
                p,
                _mm256_fmadd_ps(vv, _mm256_loadu_ps(row.as_ptr().add(k)), _mm256_loadu_ps(p)),
            );
            k += 8;
        }
        for t in n8..n {
            acc[t] = v.mul_add(row[t], acc[t]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn simd_and_portable_kernels_agree() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [1usize, 7, 8, 15, 16, 17, 64, 131, 512] {
            let qf: Vec<Vec<f32>> = (0..TQ)
                .map(|_| (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect())
                .collect();
            let gf: Vec<Vec<f32>> = (0..TG)
                .map(|_| (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect())
                .collect();
            let mut out = [[0f32; TG]; TQ];
            tile_f32(
                [&qf[0], &qf[1], &qf[2], &qf[3]],
                [&gf[0], &gf[1], &gf[2]],
                &mut out,
            );
            for i in 0..TQ {
                for j in 0..TG {
                    let exact: f64 = qf[i]
                        .iter()
                        .zip(&gf[j])
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum();
                    assert!((f64::from(out[i][j]) - exact).abs() < 1e-5 * n as f64, "n={n}");
                    assert!((f64::from(dot_f32(&qf[i], &gf[j])) - exact).abs() < 1e-5 * n as f64);
                }
            }
            let qi: Vec<Vec<i16>> = (0..TQ)
                .map(|_| (0..n).map(|_| rng.gen_range(-127..=127)).collect())
                .collect();
            let gi: Vec<Vec<i8>> = (0..TG)
                .map(|_| (0..n).map(|_| rng.gen_range(-127..=127)).collect())
                .collect();
            let mut out = [[0i32; TG]; TQ];
            tile_i8(
                [&qi[0], &qi[1], &qi[2], &qi[3]],
                [&gi[0], &gi[1], &gi[2]],
                &mut out,
            );
            for i in 0..TQ {
                for j in 0..TG {
                    assert_eq!(out[i][j], dot_i8_portable(&qi[i], &gi[j]), "n={n}");
                }
            }
            let mut acc: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let mut want = acc.clone();
            axpy(&mut acc, 0.5, &gf[0]);
            for (w, r) in want.iter_mut().zip(&gf[0]) {
                *w += 0.5 * r;
            }
            for (a, w) in acc.iter().zip(&want) {
                assert!((a - w).abs() < 1e-5);
            }
        }
    }
}
