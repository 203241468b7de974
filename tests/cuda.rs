//! The CubeCL parity tests of `tests/cubecl.rs` on Burn's CUDA backend, against NdArray, on the
//! bundled real faces: one student training step (forward, backward, AdamW), one LAFS step, the
//! teachers' forward and MTCNN's nets, each to the same bounds as on wgpu.
//!
//! It needs an NVIDIA GPU: `cargo test --features cuda --test cuda` (`tools/gpu_check.sh` builds
//! it here and runs it on a GPU machine, with `FACEKIT_ROOT` naming the repository there). The
//! default `cargo test --workspace` does not build it; CI's clippy pass with `--features cuda`
//! compiles it.

use burn::backend::cuda::CudaDevice;

type W = burn::backend::Cuda<f32, i32>;
const JIT: &str = "cuda";

fn jit_device() -> CudaDevice {
    CudaDevice::default()
}

include!("jit/parity.rs");
