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
//! | [`TokenVit`] | LAFS / DINO token ViT (face-ssl) | 112 | class token |
//!
//! Every backbone implements [`Backbone::features`], so the heads in [`heads`] stay separate.
//! [`FaceModel`] is a backbone plus the multitask head — the student, the network the `facekit`
//! program embeds with, the thing an export writes — and [`FaceModelConfig`] records every size
//! needed to rebuild it. [`blocks`] holds what the backbones share (one
//! [`TransformerBlock`] for every ViT), [`record`] the one way weights go to disk and back.
#![warn(missing_docs)]

pub mod backbones;
pub mod blocks;
mod error;
pub mod export;
pub mod fold;
pub mod heads;
mod host;
pub mod losses;
pub mod model;
pub mod onnx;
pub(crate) mod onnx_writer;
pub mod ops;
pub mod optim;
pub mod record;
pub mod runtime;
pub mod weights;

pub use backbones::{
    Backbone, ClipCheckpoint, ClipVit, ClipVitConfig, FaceVit, FaceVitConfig, IResNet, IResNetConfig,
    InceptionResnetV1, InceptionResnetV1Config, MobileFaceNet, MobileFaceNetConfig, ResNet, ResNetConfig,
    TokenBatch, TokenInput, TokenLayout, TokenVit, TokenVitConfig,
};
pub use blocks::{l2_normalize, multi_head_attention, TransformerBlock, TransformerBlockConfig};
pub use error::{NetsError, Result};
pub use fold::FoldBatchNorm;
pub use heads::{MultiTaskHead, MultiTaskHeadConfig, MultiTaskOutput};
pub use host::{to_f32_vec, to_f64_scalar};
pub use losses::{cross_entropy, CombinedMargin, CombinedMarginConfig, NormLinear};
pub use model::{
    load_backbone, load_model, save_backbone, BackboneConfig, FaceBackbone, FaceModel, FaceModelConfig,
};
pub use optim::FusedAdamW;
pub use runtime::{
    check_cuda, keep_freed_memory, CandleTrain, DeviceChoice, InferJob, NdArrayCpu, NdArrayTrain, TrainJob,
};
