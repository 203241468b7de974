//! Multitask distillation of a face student: one [`face_nets::FaceModel`] (any face-nets backbone
//! followed by the multitask head) learns an identity embedding from an identity teacher and age
//! and gender from an age/gender teacher, on unlabelled faces whose teacher targets were cached
//! by `face-teachers`.
//!
//! - [`config`]: the typed run configuration (JSON file + `key=value` overrides).
//! - [`losses`]: identity `1 − cos`, relational KD, age KL / L1, gender BCE.
//! - [`data`]: faces (aligned crops) with their targets, augmentation, batches.
//! - [`trainer`]: a step-wise [`Session`] — AdamW + warm-up/cosine, accumulation, multi-device
//!   steps, step-exact checkpoints and resume, early stopping on validation irAUC, metrics files
//!   and curves.
//! - [`peers`]: data-parallel training across processes (burn-collective all-reduce).
//! - [`eval`]: irAUC, exact AUC, TAR@FAR, agreement with the teachers.
//! - [`report`]: the final teacher-vs-student report (`report.json`, `roc.svg`).
//! - [`pipeline`]: the end-to-end job on concrete backends (MTCNN → crops → teachers → cache
//!   → student → report), for programs.
//!
//! The trained model is written as a face-nets model folder (`model.json` + `student.bin`), so
//! programs load it with [`face_nets::load_model`] without this crate. Backends are chosen with
//! [`face_nets::DeviceChoice`].
#![warn(missing_docs)]

pub mod config;
pub mod data;
mod error;
pub mod eval;
pub mod losses;
pub mod peers;
pub mod pipeline;
pub mod report;
pub mod trainer;

pub use config::{AgeLoss, DistillConfig, StudentConfig, TaskMode, TeachersConfig};
pub use data::{Attributes, FaceSet, HostBatch, StreamedFaces, Targets, TrainFaces};
pub use error::{DistillError, Result};
pub use eval::{evaluate, EvalRow, Predictions};
pub use peers::{Peers, PeersConfig};
pub use report::{write_report, FinalReport, ModelLine};
pub use trainer::{FitOutcome, Session, TrainRow, TrainState, Trainer};
