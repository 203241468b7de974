//! Options shared by several commands, typed: clap checks them before a command runs.

use clap::{Args, ValueEnum};

/// Where a face embedding comes from.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// `teacher` (the bundled identity teacher, 512-d), a teacher spec (a `.json` file with an
    /// `identity` network: any ONNX graph, PyTorch checkpoint or facekit run), or a model
    /// folder: a distillation run (`model.json` + `student.bin`, as `facekit distill` writes it).
    #[arg(long, default_value = "teacher", value_name = "teacher|SPEC|MODEL_DIR")]
    pub model: String,
    /// Images are already aligned crops of the model's input size (skip detection).
    #[arg(long)]
    pub aligned: bool,
}

/// The teachers that make distillation targets (teacher spec files; see `face_teachers::spec`).
#[derive(Debug, Clone, Args)]
pub struct TeacherArgs {
    /// A teacher spec with an `identity` network (default: the bundled
    /// models/fr_feature.teacher.json). Config key `teachers.identity`.
    #[arg(long, value_name = "SPEC")]
    pub identity_teacher: Option<std::path::PathBuf>,
    /// A teacher spec with `age` and `gender` networks (default: the bundled
    /// models/dlib_age_gender.teacher.json). Config key `teachers.age_gender`.
    #[arg(long, value_name = "SPEC")]
    pub age_gender_teacher: Option<std::path::PathBuf>,
}

impl TeacherArgs {
    /// `base` with the flags given here replacing its entries.
    pub fn apply(&self, base: &face_distill::TeachersConfig) -> face_distill::TeachersConfig {
        face_distill::TeachersConfig {
            identity: self.identity_teacher.clone().or_else(|| base.identity.clone()),
            age_gender: self
                .age_gender_teacher
                .clone()
                .or_else(|| base.age_gender.clone()),
        }
    }
}

/// Gallery storage (face-search).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageArg {
    /// 32-bit floats.
    F32,
    /// 16-bit floats.
    F16,
    /// 8-bit integers (per-row scale).
    Int8,
    /// Sparse rows (for ReLU-like embeddings).
    Sparse,
}

impl From<StorageArg> for face_search::Storage {
    fn from(s: StorageArg) -> Self {
        match s {
            StorageArg::F32 => Self::F32,
            StorageArg::F16 => Self::F16,
            StorageArg::Int8 => Self::Int8,
            StorageArg::Sparse => Self::Sparse,
        }
    }
}

/// Self-supervised method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// LAFS: patches on facial landmarks.
    Lafs,
    /// DINO: a regular patch grid.
    Dino,
}

impl From<MethodArg> for face_ssl::Tokenizer {
    fn from(m: MethodArg) -> Self {
        match m {
            MethodArg::Lafs => Self::Landmarks,
            MethodArg::Dino => Self::Grid,
        }
    }
}

/// Pretraining preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// ViT-Tiny with 65 536 prototypes: the paper recipe.
    VitTiny,
    /// A small network for a CPU demo.
    Tiny,
}

/// Parses `--device` (cpu, ndarray, candle, cuda, cuda:0,1). A typed value rather than a
/// `ValueEnum`: it carries the GPU indices.
pub fn device(s: &str) -> Result<face_nets::DeviceChoice, String> {
    s.parse().map_err(|e: face_nets::NetsError| e.to_string())
}

/// What an evaluation does with pairs whose image failed to enrol (no face, unreadable, no
/// embedding in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MissingArg {
    /// A non-match at every threshold (ISO/IEC 19795-1): counts against TAR, never as a match.
    Reject,
    /// Leave those pairs out, and say how many.
    Skip,
    /// Stop with an error naming the failures.
    Fail,
}

impl From<MissingArg> for face_eval::enrol::MissingPolicy {
    fn from(m: MissingArg) -> Self {
        match m {
            MissingArg::Reject => Self::Reject,
            MissingArg::Skip => Self::Skip,
            MissingArg::Fail => Self::Fail,
        }
    }
}
