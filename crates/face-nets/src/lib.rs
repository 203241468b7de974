//! # face-nets
//!
//! Face recognition networks on Burn 0.21, generic over `B: Backend` (NdArray or Candle on the
//! CPU, CUDA for training): backbones whose PyTorch checkpoints load through declared key
//! tables with a strict report, task heads for the multitask student, and margin losses.
//!
//! | backbone | family | input | output |
//! |---|---|---|---|
//! | [`IResNet`] 18/34/50/100 | insightface arcface_torch | 112 | 512-d embedding |
//! | [`MobileFaceNet`] | arcface_torch `mbf` | 112 | 512-d embedding |
//! | [`FaceVit`] t/s/b/l | arcface_torch ViT (patch 9) | 112 | 512-d embedding |
//! | [`InceptionResnetV1`] | facenet-pytorch | 160 | 512-d L2-normalised |
//! | [`ResNet`] 50 | torchvision | 224 | 2048-d pooled + replaceable head |
//! | [`ClipVit`] B/16 | OpenAI CLIP / FaRL `visual.*` | 224 | 512-d projection |
//!
//! Every backbone implements [`Backbone::features`], so the heads in [`heads`] stay separate.
#![warn(missing_docs)]

pub mod backbones;
mod error;
pub mod heads;
mod layers;
pub mod losses;
pub mod weights;

pub use backbones::{
    Backbone, ClipCheckpoint, ClipVit, ClipVitConfig, FaceVit, FaceVitConfig, IResNet, IResNetConfig,
    InceptionResnetV1, InceptionResnetV1Config, MobileFaceNet, MobileFaceNetConfig, ResNet, ResNetConfig,
};
pub use error::{NetsError, Result};
pub use heads::{MultiTaskHead, MultiTaskHeadConfig, MultiTaskOutput};
pub use layers::{l2_normalize, multi_head_attention};
pub use losses::{cross_entropy, CombinedMargin, CombinedMarginConfig, NormLinear};
