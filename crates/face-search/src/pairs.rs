//! Scoring a long list of pairs of rows (1:1 protocols such as IJB-C's 15.7 M
//! template pairs): dot products of the two rows of each pair, in parallel.

use rayon::prelude::*;

use crate::error::{Result, SearchError};
use crate::kernels::dot_f32;

/// Pairs per parallel task.
const PAIR_CHUNK: usize = 1 << 14;
/// Bytes of first rows kept hot per block (half of a 512 KiB L2).
const BLOCK_BYTES: usize = 256 << 10;

/// A raw pointer into the output that threads write disjoint entries of.
struct Sink(*mut f32);

// SAFETY: used only to write distinct indices from different threads (see its use).
unsafe impl Sync for Sink {}
unsafe impl Send for Sink {}

impl Sink {
    /// # Safety
    /// `i` is in bounds and no other thread writes entry `i`.
    unsafe fn write(&self, i: usize, v: f32) {
        unsafe { *self.0.add(i) = v };
    }
}

/// `score[i] = features[a_i] · features[b_i]` for rows of `dim` values.
///
/// `features` is row-major (`rows × dim`); the rows are used as given (L2-normalise
/// them first for cosine scores).
///
/// # Errors
/// A zero dimension, `features.len()` not a multiple of `dim`, or a pair
/// index out of range (the first such pair is named).
pub fn score_pairs(features: &[f32], dim: usize, pairs: &[(u32, u32)]) -> Result<Vec<f32>> {
    if dim == 0 {
        return Err(SearchError::Empty {
            what: "embedding dimension",
        });
    }
    if !features.len().is_multiple_of(dim) {
        return Err(SearchError::Dimension {
            what: "pair features",
            expected: dim,
            found: features.len() % dim,
        });
    }
    let rows = features.len() / dim;
    if let Some((i, &(a, b))) = pairs
        .iter()
        .enumerate()
        .find(|(_, &(a, b))| a as usize >= rows || b as usize >= rows)
    {
        return Err(SearchError::Invalid(format!(
            "pair {i} refers to rows ({a}, {b}) but there are only {rows} feature rows"
        )));
    }
    let row = |i: u32| &features[i as usize * dim..(i as usize + 1) * dim];
    let mut out = vec![0f32; pairs.len()];
    let block_rows = (BLOCK_BYTES / (dim * 4)).max(1);
    if rows <= block_rows || pairs.len() < 4 * rows {
        // The rows fit in cache, or too few pairs to pay for reordering.
        out.par_chunks_mut(PAIR_CHUNK)
            .zip(pairs.par_chunks(PAIR_CHUNK))
            .for_each(|(o, p)| {
                for (s, &(a, b)) in o.iter_mut().zip(p) {
                    *s = dot_f32(row(a), row(b));
                }
            });
        return Ok(out);
    }
    // Cache blocking. Random pairs over more rows than fit in cache are memory-bound:
    // each pair would fetch two rows (4 KiB at 512-d) from RAM. Instead, pairs are
    // bucketed by the block of their first row (a block fits in a core's L2), and
    // within a block ordered by second row, so each second row is fetched once per
    // block and reused by all of that block's pairs that name it.
    let blocks = rows.div_ceil(block_rows);
    let mut start = vec![0usize; blocks + 1];
    for &(a, _) in pairs {
        start[a as usize / block_rows + 1] += 1;
    }
    for i in 1..=blocks {
        start[i] += start[i - 1];
    }
    // (first row, second row, pair number), bucketed by block, so the passes below
    // read memory in order instead of gathering from `pairs`.
    let mut by_block = vec![(0u32, 0u32, 0u32); pairs.len()];
    let mut next = start.clone();
    for (i, &(a, b)) in pairs.iter().enumerate() {
        let k = a as usize / block_rows;
        by_block[next[k]] = (a, b, i as u32);
        next[k] += 1;
    }
    let mut segments = Vec::with_capacity(blocks);
    let mut rest: &mut [(u32, u32, u32)] = &mut by_block;
    for k in 0..blocks {
        let (head, tail) = rest.split_at_mut(start[k + 1] - start[k]);
        segments.push(head);
        rest = tail;
    }
    let sink = Sink(out.as_mut_ptr());
    segments.into_par_iter().for_each(|seg| {
        // Counting sort of the block's pairs by second row.
        let mut count = vec![0u32; rows + 1];
        for p in seg.iter() {
            count[p.1 as usize + 1] += 1;
        }
        for r in 1..=rows {
            count[r] += count[r - 1];
        }
        let mut sorted = vec![(0u32, 0u32, 0u32); seg.len()];
        for p in seg.iter() {
            let c = &mut count[p.1 as usize];
            sorted[*c as usize] = *p;
            *c += 1;
        }
        for &(a, b, i) in &sorted {
            let score = dot_f32(row(a), row(b));
            // SAFETY: `i` ranges over the pair numbers, each exactly once across all
            // blocks, and is < out.len(); `out` outlives this parallel loop.
            unsafe { sink.write(i as usize, score) };
        }
    });
    Ok(out)
}
