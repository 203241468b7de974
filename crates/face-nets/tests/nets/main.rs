//! face-nets' f32 tests in one binary: Burn's CPU kernels are generic over the element type, so
//! every test binary that runs a network compiles them again; one binary compiles them once.
//! (`tests/losses_heads.rs` stays apart: it runs NdArray in f64, and Burn 0.21 keeps one default
//! float type per device for the whole process.)
//!
//! - `parity_torch`: every backbone against PyTorch fixtures on NdArray, Candle and Flex;
//! - `onnx`: the ONNX executor against onnxruntime, and its load-time refusals;
//! - `export`: the PyTorch-layout export read back, and against PyTorch;
//! - `ops`: the fused convolutions' fast NdArray path against the composed Burn ops;
//! - `step_ops`: `FusedAdamW` against Burn's `Adam`, the EMA, the views' cross-entropy and the
//!   buffer-sharing reshape;
//! - `train_step`: one ArcFace SGD step;
//! - `units`: the shared transformer block, the token ViT's tokens, the face model and its
//!   files, weight records.

mod export;
mod onnx;
mod ops;
mod parity_torch;
mod step_ops;
mod train_step;
mod units;
