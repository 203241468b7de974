//! Input invariants, checked in one place. Each check names the input and the bad value.

use crate::error::{MetricsError, Result};

/// Same length or [`MetricsError::LengthMismatch`].
pub(crate) fn same_len(what: &'static str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch {
            what,
            expected,
            found,
        })
    }
}

/// Every value finite, or [`MetricsError::NonFinite`] naming the first bad one.
pub(crate) fn all_finite(what: &'static str, values: &[f64]) -> Result<()> {
    use rayon::prelude::*;
    // A parallel, branch-free scan of blocks (inputs reach 10^7 scores); the
    // first bad index is looked up only when there is one.
    let all_ok = values
        .par_chunks(1 << 15)
        .all(|c| c.iter().fold(true, |ok, v| ok & v.is_finite()));
    if all_ok {
        Ok(())
    } else {
        Err(non_finite_error(what, values))
    }
}

/// The error for the first non-finite value of `values`, for callers that
/// already know there is one (e.g. from a fused counting pass).
pub(crate) fn non_finite_error(what: &'static str, values: &[f64]) -> MetricsError {
    let index = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
    MetricsError::NonFinite {
        what,
        index,
        value: values.get(index).copied().unwrap_or(f64::NAN),
    }
}

/// Every value finite (f32 input).
pub(crate) fn all_finite_f32(what: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(MetricsError::NonFinite {
            what,
            index,
            value: f64::from(values[index]),
        }),
    }
}

/// Non-empty or [`MetricsError::Empty`].
pub(crate) fn non_empty(what: &'static str, len: usize) -> Result<()> {
    if len == 0 {
        Err(MetricsError::Empty { what })
    } else {
        Ok(())
    }
}

/// A rate target in (0, 1] or [`MetricsError::InvalidRate`].
pub(crate) fn rate(what: &'static str, value: f64) -> Result<()> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(MetricsError::InvalidRate { what, value })
    }
}

/// Both classes present.
pub(crate) fn both_classes(what: &'static str, genuine: usize, impostor: usize) -> Result<()> {
    if genuine == 0 {
        return Err(MetricsError::NoGenuine { what });
    }
    if impostor == 0 {
        return Err(MetricsError::NoImpostor { what });
    }
    Ok(())
}

/// Folds `-0.0` into `+0.0` so that ties compare as numpy's `diff` sees them.
#[inline]
pub(crate) fn canonical(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x
    }
}
