//! Backend selection at run time: the CPU backends for tests and small runs, CUDA (feature
//! `cuda`) for training on GPUs. Choosing CUDA where it is not available is an error, never a
//! panic. The trainers and the `facekit` program pick their backend through [`DeviceChoice`].

use std::str::FromStr;
use std::sync::Mutex;

use burn::tensor::backend::{AutodiffBackend, Backend};
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

/// Work generic over a training (autodiff) backend, run by [`DeviceChoice::train`] on the
/// backend and devices the choice names.
pub trait TrainJob {
    /// What the work returns.
    type Output;
    /// Runs the work on `B`, data-parallel over `devices` (one for the CPU backends).
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output;
}

/// Work generic over an inference backend, run by [`DeviceChoice::infer`].
pub trait InferJob {
    /// What the work returns.
    type Output;
    /// Runs the work on `B`'s `device`.
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

impl DeviceChoice {
    /// Runs `job` on the training backend this choice names: [`NdArrayTrain`], [`CandleTrain`],
    /// or `CudaTrain` over every listed GPU once [`check_cuda`] has found them working.
    ///
    /// # Errors
    /// CUDA chosen where it is unavailable (see [`check_cuda`]); the job's own errors are in its
    /// output.
    pub fn train<J: TrainJob>(&self, job: J) -> Result<J::Output> {
        match self {
            Self::NdArray => Ok(job.run::<NdArrayTrain>(vec![Default::default()])),
            Self::Candle => Ok(job.run::<CandleTrain>(vec![Default::default()])),
            Self::Cuda(ids) => {
                check_cuda(ids)?;
                #[cfg(feature = "cuda")]
                {
                    let devices = ids
                        .iter()
                        .map(|&index| burn::backend::cuda::CudaDevice { index })
                        .collect();
                    Ok(job.run::<CudaTrain>(devices))
                }
                #[cfg(not(feature = "cuda"))]
                Err(no_cuda_support())
            }
        }
    }

    /// Runs `job` on the inference backend for this choice: [`NdArrayCpu`] for either CPU
    /// choice (the backend of the teachers' and MTCNN's parity tests), Burn's CUDA backend on
    /// the first listed GPU otherwise.
    ///
    /// # Errors
    /// CUDA chosen where it is unavailable (see [`check_cuda`]).
    pub fn infer<J: InferJob>(&self, job: J) -> Result<J::Output> {
        match self {
            Self::NdArray | Self::Candle => Ok(job.run::<NdArrayCpu>(Default::default())),
            Self::Cuda(ids) => {
                let first = ids.first().copied().unwrap_or(0);
                check_cuda(&[first])?;
                #[cfg(feature = "cuda")]
                {
                    let device = burn::backend::cuda::CudaDevice { index: first };
                    Ok(job.run::<burn::backend::Cuda<f32, i32>>(device))
                }
                #[cfg(not(feature = "cuda"))]
                Err(no_cuda_support())
            }
        }
    }
}

fn no_cuda_support() -> NetsError {
    NetsError::Device(
        "this build has no CUDA support; rebuild with `--features cuda` (needs the CUDA toolkit)".into(),
    )
}

/// The GPUs that passed [`check_cuda`]'s probe in this process.
static CUDA_CHECKED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Checks that CUDA can be used: the build has the `cuda` feature and each GPU in `ids` answers
/// a small computation. A GPU that passed once is not probed again in the same process, so a
/// program may check early (before long CPU work) and the library again where it dispatches.
///
/// # Errors
/// Built without `cuda`, no NVIDIA device node, or the CUDA runtime failing to start.
pub fn check_cuda(ids: &[usize]) -> Result<()> {
    if !cfg!(feature = "cuda") {
        return Err(no_cuda_support());
    }
    let passed = |id: &usize| {
        CUDA_CHECKED
            .lock()
            .map(|checked| checked.contains(id))
            .unwrap_or(false)
    };
    for id in ids.iter().filter(|id| !passed(id)) {
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
        for &id in ids.iter().filter(|id| !passed(id)) {
            // The CUDA runtime panics when it cannot start; turn that into an error.
            let probe = std::panic::catch_unwind(|| {
                let device = burn::backend::cuda::CudaDevice { index: id };
                let t = Tensor::<burn::backend::Cuda<f32, i32>, 1>::from_floats([1.0, 2.0], &device);
                t.sum().into_scalar()
            });
            match probe {
                Ok(v) if (v - 3.0).abs() < 1e-6 => {
                    if let Ok(mut checked) = CUDA_CHECKED.lock() {
                        checked.push(id);
                    }
                }
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
        // The dispatchers refuse it the same way, without running the job.
        struct Never;
        impl TrainJob for Never {
            type Output = ();
            fn run<B: AutodiffBackend>(self, _: Vec<B::Device>) {
                panic!("a job ran without a GPU");
            }
        }
        impl InferJob for Never {
            type Output = ();
            fn run<B: Backend>(self, _: B::Device) {
                panic!("a job ran without a GPU");
            }
        }
        let cuda = DeviceChoice::Cuda(vec![0]);
        assert!(matches!(cuda.train(Never), Err(NetsError::Device(_))));
        assert!(matches!(cuda.infer(Never), Err(NetsError::Device(_))));
    }

    /// Which backend each choice dispatches to, by the backend's name.
    #[test]
    fn choices_dispatch_to_their_backends() {
        struct Name;
        impl TrainJob for Name {
            type Output = (String, usize);
            fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> (String, usize) {
                (B::name(&devices[0]), devices.len())
            }
        }
        impl InferJob for Name {
            type Output = String;
            fn run<B: Backend>(self, device: B::Device) -> String {
                B::name(&device)
            }
        }
        assert_eq!(
            DeviceChoice::NdArray.train(Name).unwrap(),
            ("autodiff<ndarray>".into(), 1)
        );
        assert_eq!(
            DeviceChoice::Candle.train(Name).unwrap(),
            ("autodiff<candle<cpu>>".into(), 1)
        );
        for cpu in [DeviceChoice::NdArray, DeviceChoice::Candle] {
            assert_eq!(cpu.infer(Name).unwrap(), "ndarray");
        }
    }
}
