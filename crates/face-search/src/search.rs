//! Blocked 1:N scoring: queries × gallery rows in register tiles, gallery split
//! into chunks scored in parallel (rayon), each keeping its own exact top-k per
//! query, merged at the end.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Result, SearchError};
use crate::gallery::{check_finite, normalise_rows, Gallery, Rows};
use crate::kernels::{axpy, tile_f32, tile_i8, TG, TQ};
use crate::topk::{Hit, TopK};

/// Gallery rows a parallel task scores (a multiple of the tile's 3 rows).
const CHUNK_ROWS: usize = 3 * 512;
/// Queries scored against each gallery row while it is hot in L1 (their
/// vectors stay in L2: 64 × 512-d f32 = 128 KiB).
const QUERY_BLOCK: usize = 64;
/// Queries per block for sparse galleries (a transposed block of 16 queries ×
/// 4096 dimensions is 256 KiB).
const SPARSE_QUERY_BLOCK: usize = 16;

/// Queries prepared for one storage form.
enum Queries {
    /// Dense f32, padded with zero rows to a multiple of the tile height.
    F32(Vec<f32>),
    /// int8 values widened to i16, padded likewise, and one scale per query.
    Int8(Vec<i16>, Vec<f32>),
    /// Per block of [`SPARSE_QUERY_BLOCK`] queries: the block transposed to
    /// `dim × SPARSE_QUERY_BLOCK` (column = query).
    Transposed(Vec<Vec<f32>>),
}

struct Prepared {
    n: usize,
    padded: usize,
    queries: Queries,
}

impl Prepared {
    /// Queries scored per block, and the end of the query range to walk (dense kernels
    /// walk the zero padding too, in whole tiles; the sparse kernel only real queries).
    fn block_and_span(&self) -> (usize, usize) {
        match self.queries {
            Queries::Transposed(_) => (SPARSE_QUERY_BLOCK, self.n),
            _ => (QUERY_BLOCK, self.padded),
        }
    }
}

impl Gallery {
    fn prepare(&self, queries: &[f32]) -> Result<Prepared> {
        let d = self.dim();
        if queries.is_empty() {
            return Err(SearchError::Empty { what: "queries" });
        }
        if !queries.len().is_multiple_of(d) {
            return Err(SearchError::Dimension {
                what: "queries",
                expected: d,
                found: queries.len() % d,
            });
        }
        check_finite("queries", queries, d)?;
        let n = queries.len() / d;
        let padded = n.div_ceil(TQ) * TQ;
        let mut q = vec![0f32; padded * d];
        q[..n * d].copy_from_slice(queries);
        if self.normalised() {
            normalise_rows(&mut q[..n * d], d);
        }
        let queries = match self.rows_view() {
            Rows::F32(_) | Rows::F16(_) => Queries::F32(q),
            Rows::Int8 { .. } => {
                let mut qi = vec![0i16; padded * d];
                let mut scales = vec![0f32; padded];
                let mut tmp = vec![0i8; d];
                for ((row, out), s) in q.chunks_exact(d).zip(qi.chunks_exact_mut(d)).zip(&mut scales) {
                    *s = crate::gallery::quantise_row(row, &mut tmp);
                    for (o, &t) in out.iter_mut().zip(&tmp) {
                        *o = i16::from(t);
                    }
                }
                Queries::Int8(qi, scales)
            }
            Rows::Sparse { .. } => {
                let blocks = q[..n * d]
                    .chunks(SPARSE_QUERY_BLOCK * d)
                    .map(|block| {
                        let mut t = vec![0f32; d * SPARSE_QUERY_BLOCK];
                        for (j, row) in block.chunks_exact(d).enumerate() {
                            for (c, &v) in row.iter().enumerate() {
                                t[c * SPARSE_QUERY_BLOCK + j] = v;
                            }
                        }
                        t
                    })
                    .collect();
                Queries::Transposed(blocks)
            }
        };
        Ok(Prepared { n, padded, queries })
    }

    /// Scores queries `qs` (a range of whole tiles, or of whole sparse blocks)
    /// against gallery rows `rows`, calling `emit(query, row, score)` for each
    /// real query (padding excluded).
    fn score_range(
        &self,
        p: &Prepared,
        qs: Range<usize>,
        rows: Range<usize>,
        emit: &mut impl FnMut(usize, usize, f32),
    ) {
        let d = self.dim();
        let n = p.n;
        match (self.rows_view(), &p.queries) {
            (Rows::F32(g), Queries::F32(q)) => {
                tiles(qs, rows, &mut |q0, r| {
                    let mut out = [[0f32; TG]; TQ];
                    let qr = [0, 1, 2, 3].map(|i| &q[(q0 + i) * d..(q0 + i + 1) * d]);
                    let gr = r.map(|j| &g[j * d..(j + 1) * d]);
                    tile_f32(qr, gr, &mut out);
                    emit_tile(n, q0, r, &out, emit);
                });
            }
            (Rows::F16(g), Queries::F32(q)) => {
                let mut scratch = vec![0f32; TG * d];
                let mut loaded = [usize::MAX; TG];
                tiles(qs, rows, &mut |q0, r| {
                    if loaded != r {
                        for (t, &j) in r.iter().enumerate() {
                            half::slice::HalfFloatSliceExt::convert_to_f32_slice(
                                &g[j * d..(j + 1) * d],
                                &mut scratch[t * d..(t + 1) * d],
                            );
                        }
                        loaded = r;
                    }
                    let mut out = [[0f32; TG]; TQ];
                    let qr = [0, 1, 2, 3].map(|i| &q[(q0 + i) * d..(q0 + i + 1) * d]);
                    let gr = [0, 1, 2].map(|t| &scratch[t * d..(t + 1) * d]);
                    tile_f32(qr, gr, &mut out);
                    emit_tile(n, q0, r, &out, emit);
                });
            }
            (Rows::Int8 { data, scales }, Queries::Int8(q, qscale)) => {
                tiles(qs, rows, &mut |q0, r| {
                    let mut out = [[0i32; TG]; TQ];
                    let qr = [0, 1, 2, 3].map(|i| &q[(q0 + i) * d..(q0 + i + 1) * d]);
                    let gr = r.map(|j| &data[j * d..(j + 1) * d]);
                    tile_i8(qr, gr, &mut out);
                    let mut f = [[0f32; TG]; TQ];
                    for i in 0..TQ {
                        for t in 0..TG {
                            f[i][t] = out[i][t] as f32 * (qscale[q0 + i] * scales[r[t]]);
                        }
                    }
                    emit_tile(n, q0, r, &f, emit);
                });
            }
            (
                Rows::Sparse {
                    row_ptr,
                    indices,
                    values,
                },
                Queries::Transposed(blocks),
            ) => {
                let w = SPARSE_QUERY_BLOCK;
                let mut acc = [0f32; SPARSE_QUERY_BLOCK];
                let first = qs.start / w;
                for (b, t) in blocks.iter().enumerate().take(qs.end.div_ceil(w)).skip(first) {
                    let live = (n - b * w).min(w);
                    for r in rows.clone() {
                        acc.fill(0.0);
                        for k in row_ptr[r] as usize..row_ptr[r + 1] as usize {
                            let c = indices[k] as usize;
                            axpy(&mut acc, values[k], &t[c * w..(c + 1) * w]);
                        }
                        for (j, &s) in acc[..live].iter().enumerate() {
                            emit(b * w + j, r, s);
                        }
                    }
                }
            }
            _ => unreachable!("queries are prepared for the gallery's own storage"),
        }
    }

    /// The `k` best gallery rows for each query, best first (ties: lower row
    /// first). `queries` holds `dim()` values per query, row-major; they are
    /// L2-normalised first when the gallery's rows were. Exact for f32 and sparse
    /// storage; for f16 and int8 the scores are those of the stored values.
    ///
    /// # Errors
    /// No queries, a length that is not a multiple of `dim()`, or a non-finite value.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>> {
        let p = self.prepare(queries)?;
        let k = k.min(self.len());
        let (step, qspan) = p.block_and_span();
        let chunks = self.len().div_ceil(CHUNK_ROWS);
        let merged = (0..chunks)
            .into_par_iter()
            .fold(
                || vec![TopK::new(k); p.n],
                |mut acc, c| {
                    let rows = c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(self.len());
                    let mut q0 = 0;
                    while q0 < qspan {
                        let q1 = (q0 + step).min(qspan);
                        self.score_range(&p, q0..q1, rows.clone(), &mut |q, r, s| acc[q].offer(r as u32, s));
                        q0 = q1;
                    }
                    acc
                },
            )
            .reduce(
                || vec![TopK::new(k); p.n],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        x.merge(y);
                    }
                    a
                },
            );
        Ok(merged.into_iter().map(TopK::into_sorted).collect())
    }

    /// Every score: `queries × len()` values, query-major (row `i` of the result
    /// holds query `i` against each gallery row). For CMC/TPIR evaluation.
    ///
    /// # Errors
    /// As [`Gallery::search`].
    pub fn scores(&self, queries: &[f32]) -> Result<Vec<f32>> {
        let p = self.prepare(queries)?;
        let rows = self.len();
        let mut out = vec![0f32; p.n * rows];
        let (step, span) = p.block_and_span();
        out.par_chunks_mut(step * rows)
            .enumerate()
            .for_each(|(b, block)| {
                let q0 = b * step;
                let q1 = (q0 + step).min(span);
                self.score_range(&p, q0..q1, 0..rows, &mut |q, r, s| block[(q - q0) * rows + r] = s);
            });
        Ok(out)
    }
}

/// Walks whole tiles: rows in groups of 3 (the last group repeats its final row),
/// and for each group every 4-query tile of `qs` (a multiple of 4 wide).
#[inline]
fn tiles(qs: Range<usize>, rows: Range<usize>, f: &mut impl FnMut(usize, [usize; TG])) {
    let mut r0 = rows.start;
    while r0 < rows.end {
        let last = rows.end - 1;
        let r = [r0, (r0 + 1).min(last), (r0 + 2).min(last)];
        let mut q0 = qs.start;
        while q0 < qs.end {
            f(q0, r);
            q0 += TQ;
        }
        r0 += TG;
    }
}

#[inline]
fn emit_tile(
    n: usize,
    q0: usize,
    r: [usize; TG],
    out: &[[f32; TG]; TQ],
    emit: &mut impl FnMut(usize, usize, f32),
) {
    for (i, row) in out.iter().enumerate() {
        let q = q0 + i;
        if q >= n {
            break;
        }
        for (t, &s) in row.iter().enumerate() {
            if t > 0 && r[t] == r[t - 1] {
                break;
            }
            emit(q, r[t], s);
        }
    }
}
