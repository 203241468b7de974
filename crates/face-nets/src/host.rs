//! Reading tensors back to the host: the one conversion every crate uses, with one failure
//! policy (an error naming what could not be read, never a panic or an empty vector).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::{NetsError, Result};

/// The values of a float tensor as row-major `f32`s.
///
/// # Errors
/// A backend whose data cannot be converted to `f32` (named in the error).
///
/// # Examples
/// ```
/// use burn::backend::NdArray;
/// let t = burn::tensor::Tensor::<NdArray, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &Default::default());
/// assert_eq!(face_nets::to_f32_vec(t)?, vec![1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), face_nets::NetsError>(())
/// ```
pub fn to_f32_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    let dims = t.dims();
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| NetsError::Readback(format!("a {dims:?} tensor: {e:?}")))
}

/// The single value of a one-element float tensor, as `f64`.
///
/// # Errors
/// As [`to_f32_vec`], or a tensor that does not hold exactly one value.
pub fn to_f64_scalar<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<f64> {
    let dims = t.dims();
    let v = t
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_err(|e| NetsError::Readback(format!("a {dims:?} tensor: {e:?}")))?;
    match v.as_slice() {
        [x] => Ok(*x),
        _ => Err(NetsError::Readback(format!(
            "expected one value, got a {dims:?} tensor"
        ))),
    }
}
