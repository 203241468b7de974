//! Backend selection at run time: the CPU backends for tests and small runs, CUDA (feature
//! `cuda`) for training on GPUs. Choosing CUDA where it is not available is an error, never a
//! panic. The trainers and the `facekit` program pick their backend through [`DeviceChoice`].

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{NetsError, Result};

/// NdArray on the CPU (f32), for inference.
pub type NdArrayCpu = burn::backend::NdArray<f32>;

/// Autodiff over Burn's NdArray CPU backend (f32): the CPU training backend. Its convolutions and
/// BatchNorms run face-nets' own kernels, forward and backward (see [`crate::ops`]).
pub type NdArrayTrain = burn::backend::Autodiff<burn::backend::NdArray<f32>>;
// burn-candle is marked deprecated in Burn 0.21; kept as a second CPU backend (`candle`).
/// Autodiff over Burn's Candle CPU backend (f32; Burn's im2col convolutions).
#[allow(deprecated)]
pub type CandleTrain = burn::backend::Autodiff<burn::backend::Candle<f32, i64>>;
/// Autodiff over Burn's CUDA backend (f32).
#[cfg(feature = "cuda")]
pub type CudaTrain = burn::backend::Autodiff<burn::backend::Cuda<f32, i32>>;

/// Where a run trains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceChoice {
    /// NdArray on the CPU (`cpu`, `ndarray`).
    NdArray,
    /// Candle on the CPU (`candle`).
    Candle,
    /// These CUDA GPUs, data-parallel when more than one (`cuda`, `cuda:0`, `cuda:0,1`).
    Cuda(Vec<usize>),
}

impl FromStr for DeviceChoice {
    type Err = NetsError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "cpu" | "ndarray" => Ok(Self::NdArray),
            "candle" => Ok(Self::Candle),
            "cuda" => Ok(Self::Cuda(vec![0])),
            other => {
                let ids = other.strip_prefix("cuda:").ok_or_else(|| {
                    NetsError::Device(format!(
                        "unknown device `{other}` (expected cpu, ndarray, candle, cuda or cuda:0,1,…)"
                    ))
                })?;
                let ids: std::result::Result<Vec<usize>, _> =
                    ids.split(',').map(|i| i.trim().parse()).collect();
                match ids {
                    Ok(v) if !v.is_empty() => Ok(Self::Cuda(v)),
                    _ => Err(NetsError::Device(format!("bad GPU list in `{other}`"))),
                }
            }
        }
    }
}

/// The name [`DeviceChoice`] parses back: `cpu`, `candle`, `cuda:0,1`.
impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NdArray => f.write_str("cpu"),
            Self::Candle => f.write_str("candle"),
            Self::Cuda(ids) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                write!(f, "cuda:{}", ids.join(","))
            }
        }
    }
}

/// Checks that CUDA can be used: the build has the `cuda` feature and a GPU answers.
///
/// # Errors
/// Built without `cuda`, no NVIDIA device node, or the CUDA runtime failing to start.
pub fn check_cuda(ids: &[usize]) -> Result<()> {
    if !cfg!(feature = "cuda") {
        return Err(NetsError::Device(
            "this build has no CUDA support; rebuild with `--features cuda` (needs the CUDA toolkit)".into(),
        ));
    }
    for id in ids {
        let node = format!("/dev/nvidia{id}");
        if !std::path::Path::new(&node).exists() {
            return Err(NetsError::Device(format!(
                "GPU {id} requested but {node} does not exist (no NVIDIA GPU or driver on this machine)"
            )));
        }
    }
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::Tensor;
        for &id in ids {
            // The CUDA runtime panics when it cannot start; turn that into an error.
            let probe = std::panic::catch_unwind(|| {
                let device = burn::backend::cuda::CudaDevice { index: id };
                let t = Tensor::<burn::backend::Cuda<f32, i32>, 1>::from_floats([1.0, 2.0], &device);
                t.sum().into_scalar()
            });
            match probe {
                Ok(v) if (v - 3.0).abs() < 1e-6 => {}
                Ok(v) => return Err(NetsError::Device(format!("GPU {id} computed 1 + 2 = {v}"))),
                Err(_) => {
                    return Err(NetsError::Device(format!(
                        "the CUDA runtime failed to start on GPU {id}"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Makes the C allocator keep freed memory for reuse instead of handing it back to the OS.
///
/// CPU inference allocates a fresh tensor of tens of MB per layer (a batch of 32 at 56² × 64
/// channels is 26 MB). glibc serves such blocks with `mmap` and returns them with `munmap` on
/// every free, so each layer pays page faults on first touch and a TLB shootdown across the
/// worker threads; measured on MobileFaceNet at batch 32 (docs/BENCHMARKS.md) that is about
/// half the time. After this call large blocks come from the heap and stay there, so the
/// process's memory stays at its high-water mark. Programs call it once at start (the `facekit`
/// program, the quickstart and the benches do); a library never calls it for you. It does nothing
/// outside glibc, and returns whether the allocator accepted the settings.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes two of glibc's tuning parameters; it is safe to call at
        // any time (glibc takes its own lock).
        let (no_mmap, no_trim) = unsafe {
            (
                libc::mallopt(libc::M_MMAP_MAX, 0),
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX),
            )
        };
        no_mmap == 1 && no_trim == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::NdArray);
        assert_eq!("candle".parse::<DeviceChoice>().unwrap(), DeviceChoice::Candle);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(vec![0])
        );
        assert_eq!(
            "cuda:0,1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(vec![0, 1])
        );
        assert!("cuda:".parse::<DeviceChoice>().is_err());
        assert!("tpu".parse::<DeviceChoice>().is_err());
        for name in ["cpu", "candle", "cuda:0", "cuda:0,1"] {
            let device: DeviceChoice = name.parse().unwrap();
            assert_eq!(device.to_string(), name);
            assert_eq!(device.to_string().parse::<DeviceChoice>().unwrap(), device);
        }
        assert_eq!(DeviceChoice::Cuda(vec![2]).to_string(), "cuda:2");
    }

    #[test]
    fn cuda_without_support_is_an_error() {
        if cfg!(feature = "cuda") && std::path::Path::new("/dev/nvidia0").exists() {
            return; // a real GPU: nothing to refuse
        }
        let err = check_cuda(&[0]).unwrap_err();
        assert!(matches!(err, NetsError::Device(_)), "{err}");
    }
}
