//! # face-ssl
//!
//! Self-supervised pretraining of face ViTs on unlabelled faces, on Burn 0.21 (generic over
//! `B: AutodiffBackend`: NdArray or Candle on the CPU, CUDA for real runs):
//!
//! - **DINO** (Caron et al., 2021): a student and an EMA teacher, each a ViT with DINO's
//!   projection head ([`DinoHead`]: MLP → L2 norm → weight-normalised prototypes); 2 global +
//!   N local views; the teacher's outputs centred (momentum) and sharpened (temperature with
//!   warm-up); cross-entropy over all (teacher view, student view) pairs except a view with
//!   itself; cosine schedules for learning rate, weight decay and teacher momentum.
//! - **LAFS** (Sun et al., CVPR 2024): the tokens are patches centred on facial landmarks — the
//!   five detected points or a dense grid carried from the template through them — with their
//!   position taken from the landmark coordinates ([`TokenVit`], a face-nets backbone), plus the
//!   landmark shuffle and coordinate perturbation augmentations ([`views`]).
//! - Step-exact checkpoints and resume in a run folder ([`Pretrainer::with_run_dir`]), through
//!   the same machinery as the distillation trainer (face-io's checkpoint folders, face-nets'
//!   records).
//! - Collapse monitors every epoch ([`monitor`]): teacher entropy, KL(teacher‖student) and the
//!   spread of normalised embeddings, with a warning verdict.
//! - Few-shot evaluation ([`fewshot`]): the 1-shot protocol and an ArcFace fine-tune on the shots.
//!
//! ```
//! use face_ssl::{Face, PretrainConfig, Pretrainer, Tokenizer};
//! type B = burn::backend::Autodiff<burn::backend::NdArray<f32>>;
//! // Four synthetic "aligned faces" (real runs use MTCNN-aligned crops and their landmarks).
//! let faces: Vec<Face> = (0..4u8)
//!     .map(|i| Face::aligned(image::RgbImage::from_fn(112, 112, |x, y| {
//!         image::Rgb([(x as u8).wrapping_mul(i + 1), y as u8, 40 * i])
//!     })))
//!     .collect::<Result<_, _>>()?;
//! let mut config = PretrainConfig::tiny(Tokenizer::Landmarks);
//! config.optim.epochs = 1;
//! config.optim.batch_size = 4;
//! let run = Pretrainer::<B>::new(config, Default::default())?.fit(&faces, |_| true)?;
//! assert!(run.history[0].monitors.loss.is_finite());
//! # Ok::<(), face_ssl::SslError>(())
//! ```
#![warn(missing_docs)]

pub mod config;
mod error;
pub mod fewshot;
pub mod head;
pub mod loss;
pub mod monitor;
pub mod schedule;
pub mod train;
pub mod views;

pub use config::{CheckpointConfig, DinoConfig, OptimConfig, PretrainConfig};
pub use error::{Result, SslError};
/// The token ViT lives in face-nets (a [`face_nets::Backbone`], so it can seed a student).
pub use face_nets::{TokenBatch, TokenInput, TokenLayout, TokenVit, TokenVitConfig};
pub use fewshot::{
    arcface_finetune, embed, one_shot_eval, view_retrieval, FineTuneConfig, OneShotReport, OneShotSplit,
};
pub use head::{DinoHead, DinoHeadConfig};
pub use monitor::{Collapse, CollapseThresholds, Monitors};
pub use train::{load_backbone, DinoModel, EpochRow, Pretrained, Pretrainer, Session, StepStats};
pub use views::{Face, FaceViews, Tokenizer, ViewBuilder, ViewConfig, ViewTokens};
