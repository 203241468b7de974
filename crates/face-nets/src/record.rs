//! Weights on disk: one way to turn a module (or an optimizer's state) into bytes and back, at
//! full precision, with files written atomically and corrupt files named instead of panicking.
//! The trainers of face-distill and face-ssl and the [`crate::FaceModel`] loader use it.

use std::path::Path;

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Record, Recorder};
use burn::tensor::backend::Backend;

use crate::error::{NetsError, Result};

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::default()
}

fn corrupt(path: &Path, message: impl Into<String>) -> NetsError {
    NetsError::Checkpoint {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Serialises a record (a module's weights, an optimizer's state). `path` names the
/// destination in errors.
///
/// # Errors
/// The recorder failing.
pub fn record_bytes<B: Backend, R: Record<B>>(record: R, path: &Path) -> Result<Vec<u8>> {
    Recorder::<B>::record(&recorder(), record, ())
        .map_err(|e| corrupt(path, format!("cannot serialise: {e}")))
}

/// Reads back bytes written by [`record_bytes`]. `path` names the source in errors.
///
/// # Errors
/// Corrupt, truncated or foreign bytes (Burn 0.21's byte recorder panics on truncated input;
/// that panic is caught and reported as an error).
pub fn record_from_bytes<B: Backend, R: Record<B>>(
    bytes: Vec<u8>,
    path: &Path,
    device: &B::Device,
) -> Result<R> {
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Recorder::<B>::load(&recorder(), bytes, device)
    }));
    match loaded {
        Ok(Ok(record)) => Ok(record),
        Ok(Err(e)) => Err(corrupt(path, format!("cannot read: {e}"))),
        Err(_) => Err(corrupt(path, "corrupt or truncated weights")),
    }
}

/// Writes a record to `path` atomically.
///
/// # Errors
/// As [`record_bytes`], or I/O failure.
pub fn write_record<B: Backend, R: Record<B>>(record: R, path: &Path) -> Result<()> {
    let bytes = record_bytes::<B, R>(record, path)?;
    Ok(face_io::write_atomic(path, &bytes)?)
}

/// Reads a record written by [`write_record`].
///
/// # Errors
/// A missing file, or as [`record_from_bytes`].
pub fn read_record<B: Backend, R: Record<B>>(path: &Path, device: &B::Device) -> Result<R> {
    let bytes = std::fs::read(path).map_err(face_io::IoError::io(path))?;
    record_from_bytes(bytes, path, device)
}

/// Forces every lazily initialised parameter of `module` to take its value. Burn initialises
/// parameters lazily and each clone of a lazy parameter draws its own values, so a module is
/// materialised before it is cloned for saving (or for a second copy that must start equal).
pub fn materialize<B: Backend, M: Module<B>>(module: &M) {
    struct Materialize;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Materialize {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Materialize);
}

/// Every float parameter's values, flattened in visiting order (the same order on every run and
/// process): for comparing or hashing whole models.
pub fn float_values<B: Backend, M: Module<B>>(module: &M) -> Vec<f32> {
    struct Values(Vec<f32>);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Values {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
            let data = param.val().into_data().convert::<f32>();
            // f32 after `convert`: the read cannot fail.
            self.0.extend(data.iter::<f32>());
        }
    }
    let mut v = Values(Vec::new());
    module.visit(&mut v);
    v.0
}

/// Sets every vector parameter of a module (BatchNorm γ, β and running statistics, biases,
/// PReLU slopes) to deterministic values in [0.5, 1.5) that differ from vector to vector (seeded
/// by `seed`). A freshly built network has BatchNorm at the identity; tests and fixtures that
/// must show a swapped or dropped statistic (folding, export) spread them first.
pub fn spread_vectors<B: Backend, M: Module<B>>(module: M, seed: usize) -> M {
    struct Spread(usize);
    impl<B: Backend> burn::module::ModuleMapper<B> for Spread {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<burn::tensor::Tensor<B, D>>,
        ) -> burn::module::Param<burn::tensor::Tensor<B, D>> {
            if D != 1 {
                return param;
            }
            self.0 += 1;
            let seed = self.0;
            param.map(|t| {
                let n = t.dims()[0];
                let v: Vec<f32> = (0..n)
                    .map(|i| 0.5 + ((i * 37 + seed * 101) % 97) as f32 / 97.0)
                    .collect();
                burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(v, t.dims()), &t.device())
            })
        }
    }
    module.map(&mut Spread(seed))
}

/// Saves a module's weights to `path` atomically (the weights the module computes with: lazy
/// parameters are materialised first).
///
/// # Errors
/// As [`write_record`].
pub fn save_module<B: Backend, M: Module<B>>(module: &M, path: &Path) -> Result<()> {
    materialize(module);
    write_record::<B, _>(module.clone().into_record(), path)
}

/// Loads weights saved by [`save_module`] into `module` (same architecture).
///
/// # Errors
/// A missing or corrupt file, or weights of another architecture (the shapes are checked
/// against `module`, so a file of another network is an error, not a panic).
pub fn load_module<B: Backend, M: Module<B>>(module: M, path: &Path, device: &B::Device) -> Result<M> {
    let record: M::Record = read_record(path, device)?;
    let before = shapes(&module);
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| module.load_record(record)))
        .map_err(|_| corrupt(path, "the weights do not fit this architecture"))?;
    let after = shapes(&loaded);
    if let Some((i, (a, b))) = before.iter().zip(&after).enumerate().find(|(_, (a, b))| a != b) {
        return Err(corrupt(
            path,
            format!("parameter {i} has shape {b:?} in the file, {a:?} in this architecture"),
        ));
    }
    if before.len() != after.len() {
        return Err(corrupt(
            path,
            format!(
                "{} parameters in the file, {} in this architecture",
                after.len(),
                before.len()
            ),
        ));
    }
    Ok(loaded)
}

/// The shape of every float parameter, in visiting order.
fn shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
            self.0.push(param.lazy_shape().to_vec());
        }
    }
    let mut v = Shapes(Vec::new());
    module.visit(&mut v);
    v.0
}

/// Moves a module's weights to another backend (an inference model to the autodiff backend for
/// fine-tuning, or back) through a full-precision record; `template` gives the architecture.
///
/// # Errors
/// The recorder failing, or a template of another architecture.
pub fn transfer<B1: Backend, B2: Backend, M1: Module<B1>, M2: Module<B2>>(
    module: &M1,
    template: M2,
    device: &B2::Device,
) -> Result<M2> {
    let here = Path::new("<memory>");
    materialize(module);
    let bytes = record_bytes::<B1, _>(module.clone().into_record(), here)?;
    let record: M2::Record = record_from_bytes::<B2, _>(bytes, here, device)?;
    let before = shapes(&template);
    let moved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| template.load_record(record)))
        .map_err(|_| corrupt(here, "the weights do not fit the template's architecture"))?;
    if shapes(&moved) != before {
        return Err(corrupt(
            here,
            "the weights do not fit the template's architecture",
        ));
    }
    Ok(moved)
}
