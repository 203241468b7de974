//! Scoring a long list of pairs of rows (1:1 protocols such as IJB-C's 15.7 M
//! template pairs): dot products of the two rows of each pair, in parallel.

use rayon::prelude::*;

use crate::error::{Result, SearchError};
use crate::kernels::dot_f32;

/// Pairs per parallel task.
const PAIR_CHUNK: usize = 1 << 14;

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
    out.par_chunks_mut(PAIR_CHUNK)
        .zip(pairs.par_chunks(PAIR_CHUNK))
        .for_each(|(o, p)| {
            for (s, &(a, b)) in o.iter_mut().zip(p) {
                *s = dot_f32(row(a), row(b));
            }
        });
    Ok(out)
}
