//! face-teachers' tests in one binary (Burn's CPU kernels compile once per test binary):
//!
//! - `teachers_parity`: both teachers against onnxruntime, alignment against the reference
//!   crops, bad inputs and weights;
//! - `cache`: the resumable target cache (kills, torn lines, refusals, aligned and RecordIO input).

mod cache;
mod teachers_parity;
