//! Backbones: each in its own file with its `Config` beside it, generic over `B: Backend`, with
//! the checkpoint-key table of its PyTorch family.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

pub mod clip_vit;
pub mod face_vit;
pub mod inception_resnet_v1;
pub mod iresnet;
pub mod mobilefacenet;
pub mod resnet;
pub mod token_vit;

pub use clip_vit::{ClipCheckpoint, ClipVit, ClipVitConfig};
pub use face_vit::{FaceVit, FaceVitConfig};
pub use inception_resnet_v1::{InceptionResnetV1, InceptionResnetV1Config};
pub use iresnet::{IResNet, IResNetConfig};
pub use mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};
pub use resnet::{ResNet, ResNetConfig};
pub use token_vit::{dense, TokenBatch, TokenInput, TokenLayout, TokenVit, TokenVitConfig};

/// What heads need from a backbone: a global feature vector per image, with no task head.
pub trait Backbone<B: Backend>: Module<B> {
    /// Length of the vector [`Backbone::features`] returns.
    fn feature_dim(&self) -> usize;
    /// Expected input side in pixels (square input).
    fn input_size(&self) -> usize;
    /// Global features, `[N, 3, S, S]` → `[N, feature_dim]`.
    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2>;
}
