//! The student: any face-nets backbone followed by the multitask head.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use face_nets::{
    Backbone, FaceVit, IResNet, InceptionResnetV1, MobileFaceNet, MultiTaskHead, MultiTaskHeadConfig,
    MultiTaskOutput, ResNet,
};

use crate::config::BackboneConfig;
use crate::error::{DistillError, Result};

/// The backbone of a student (one variant per face-nets family).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum StudentBackbone<B: Backend> {
    /// iResNet.
    IResNet(IResNet<B>),
    /// MobileFaceNet.
    MobileFaceNet(MobileFaceNet<B>),
    /// ResNet.
    ResNet(ResNet<B>),
    /// Inception-ResNet-V1.
    InceptionResnetV1(InceptionResnetV1<B>),
    /// ViT.
    Vit(FaceVit<B>),
}

/// Runs one [`Backbone`] method on whichever network the enum holds.
macro_rules! each_backbone {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            StudentBackbone::IResNet($m) => $body,
            StudentBackbone::MobileFaceNet($m) => $body,
            StudentBackbone::ResNet($m) => $body,
            StudentBackbone::InceptionResnetV1($m) => $body,
            StudentBackbone::Vit($m) => $body,
        }
    };
}

impl<B: Backend> StudentBackbone<B> {
    /// Builds the backbone a config describes.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(config: &BackboneConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        Ok(match config {
            BackboneConfig::IResNet(c) => Self::IResNet(c.init(device)),
            BackboneConfig::MobileFaceNet(c) => Self::MobileFaceNet(c.init(device)),
            BackboneConfig::ResNet(c) => Self::ResNet(c.init(device)),
            BackboneConfig::InceptionResnetV1(c) => Self::InceptionResnetV1(c.init(device)),
            BackboneConfig::Vit(c) => Self::Vit(c.init(device)),
        })
    }
}

impl<B: Backend> Backbone<B> for StudentBackbone<B> {
    fn feature_dim(&self) -> usize {
        each_backbone!(self, m => m.feature_dim())
    }

    fn input_size(&self) -> usize {
        each_backbone!(self, m => m.input_size())
    }

    fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        each_backbone!(self, m => m.features(x))
    }
}

/// Forces every lazily initialised parameter to take its value.
struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// Backbone + [`MultiTaskHead`]: identity embedding, age-bin logits and a gender logit.
#[derive(Module, Debug)]
pub struct Student<B: Backend> {
    /// Feature extractor.
    pub backbone: StudentBackbone<B>,
    /// The three heads.
    pub head: MultiTaskHead<B>,
}

impl<B: Backend> Student<B> {
    /// A freshly initialised student whose embedding and age bins match the teachers'
    /// (`embedding_dim`, `age_bins`).
    ///
    /// # Errors
    /// An invalid backbone configuration or head size.
    pub fn new(
        config: &BackboneConfig,
        embedding_dim: usize,
        age_bins: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let backbone = StudentBackbone::new(config, device)?;
        let head_config = MultiTaskHeadConfig::new(backbone.feature_dim())
            .with_embedding_dim(embedding_dim)
            .with_age_bins(age_bins);
        head_config
            .validate()
            .map_err(|e| DistillError::config("student", e.to_string()))?;
        let head = head_config.init(device);
        let student = Self { backbone, head };
        // Burn initialises parameters lazily, and each clone of a lazy parameter draws its own
        // values: materialise them now so clones (and the two halves of an ablation or a
        // resume check) start from the same weights.
        student.visit(&mut Materialize);
        Ok(student)
    }

    /// Square input side in pixels.
    pub fn input_size(&self) -> usize {
        self.backbone.input_size()
    }

    /// `[N, 3, S, S]` normalised faces → embedding (unit rows), age logits, gender logit.
    pub fn forward(&self, x: Tensor<B, 4>) -> MultiTaskOutput<B> {
        self.head.forward(self.backbone.features(x))
    }
}
