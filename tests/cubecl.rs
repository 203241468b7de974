//! The generic code on a CubeCL backend: Burn's wgpu backend (JIT-compiled kernels, fusion on)
//! against NdArray, on the bundled real faces:
//! - one student training step (forward, backward, AdamW) through face-distill's trainer;
//! - one LAFS pretraining step (face-ssl);
//! - the bundled teachers' forward (the ONNX executor);
//! - MTCNN's three nets.
//!
//! The tests live in `tests/jit/parity.rs`, shared with the CUDA target (`tests/cuda.rs`).
//!
//! Run with `cargo test --features wgpu --test cubecl`. It needs a Vulkan driver: Mesa's
//! software one, lavapipe (Debian `mesa-vulkan-drivers`), runs it on the CPU, and `.ci/run`
//! installs it when missing. The default `cargo test --workspace` does not build this target.

use burn::backend::wgpu::WgpuDevice;

type W = burn::backend::Wgpu;
const JIT: &str = "wgpu";

fn jit_device() -> WgpuDevice {
    WgpuDevice::default()
}

include!("jit/parity.rs");
