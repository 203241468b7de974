//! The face model: any backbone of this crate followed by the [`MultiTaskHead`] (identity
//! embedding, age bins, gender). It is the student face-distill trains, the network `facekit
//! embed/verify/search/eval --model` run, and what an export writes. Its configuration records
//! every size needed to rebuild it — the backbone, the embedding width and the ages of the age
//! bins — and answers its input size without building a network.
//!
//! On disk a model is a folder with [`files::CONFIG`] (the [`FaceModelConfig`] as JSON) and
//! [`files::WEIGHTS`] (the weights, [`crate::record`]); a distillation run folder is one.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::backbones::{
    Backbone, ClipVit, ClipVitConfig, FaceVit, FaceVitConfig, IResNet, IResNetConfig, InceptionResnetV1,
    InceptionResnetV1Config, MobileFaceNet, MobileFaceNetConfig, ResNet, ResNetConfig, TokenVit,
    TokenVitConfig,
};
use crate::error::{NetsError, Result};
use crate::fold::FoldBatchNorm;
use crate::heads::{MultiTaskHead, MultiTaskHeadConfig, MultiTaskOutput};

/// File names of a model folder and of a backbone folder.
pub mod files {
    /// The [`super::FaceModelConfig`].
    pub const CONFIG: &str = "model.json";
    /// The model's weights.
    pub const WEIGHTS: &str = "student.bin";
    /// A backbone's [`super::BackboneConfig`] (e.g. in a `facekit pretrain` folder).
    pub const BACKBONE_CONFIG: &str = "backbone.json";
    /// The backbone's weights (the network's own record, whatever its family).
    pub const BACKBONE_WEIGHTS: &str = "backbone.bin";
}

/// Which backbone a model uses (`"arch"` names it in JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum BackboneConfig {
    /// insightface's iResNet (r18…r100, any width).
    #[serde(rename = "iresnet")]
    IResNet(IResNetConfig),
    /// MobileFaceNet.
    #[serde(rename = "mobilefacenet")]
    MobileFaceNet(MobileFaceNetConfig),
    /// torchvision's ResNet-50 layout.
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    /// facenet-pytorch's Inception-ResNet-V1 (160 px input).
    InceptionResnetV1(InceptionResnetV1Config),
    /// arcface_torch's ViT.
    #[serde(rename = "vit")]
    Vit(FaceVitConfig),
    /// CLIP / FaRL's visual tower (224 px input).
    #[serde(rename = "clip_vit")]
    ClipVit(ClipVitConfig),
    /// The token ViT of LAFS / DINO pretraining (face-ssl).
    #[serde(rename = "token_vit")]
    TokenVit(TokenVitConfig),
}

impl BackboneConfig {
    /// Checks the backbone's own configuration.
    ///
    /// # Errors
    /// The backbone's validation error.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::IResNet(b) => b.validate(),
            Self::MobileFaceNet(b) => b.validate(),
            Self::ResNet(b) => b.validate(),
            Self::InceptionResnetV1(b) => b.validate(),
            Self::Vit(b) => b.validate(),
            Self::ClipVit(b) => b.validate(),
            Self::TokenVit(b) => b.validate(),
        }
    }

    /// The `arch` name used in JSON.
    pub fn arch(&self) -> &'static str {
        match self {
            Self::IResNet(_) => "iresnet",
            Self::MobileFaceNet(_) => "mobilefacenet",
            Self::ResNet(_) => "resnet",
            Self::InceptionResnetV1(_) => "inception_resnet_v1",
            Self::Vit(_) => "vit",
            Self::ClipVit(_) => "clip_vit",
            Self::TokenVit(_) => "token_vit",
        }
    }

    /// The square input side (pixels) of the network this config builds, from the config alone.
    pub fn input_size(&self) -> usize {
        match self {
            Self::IResNet(c) => c.input_size,
            Self::MobileFaceNet(_) => 112,
            Self::ResNet(_) => 224,
            Self::InceptionResnetV1(_) => 160,
            Self::Vit(c) => c.image_size,
            Self::ClipVit(c) => c.image_size,
            Self::TokenVit(c) => c.backbone_input().image_size,
        }
    }

    /// Width of the backbone's feature vector, from the config alone.
    pub fn feature_dim(&self) -> usize {
        match self {
            Self::IResNet(c) => c.num_features,
            Self::MobileFaceNet(c) => c.num_features,
            Self::ResNet(c) => c.feature_dim(),
            Self::InceptionResnetV1(c) => c.embedding_dim(),
            Self::Vit(c) => c.num_features,
            Self::ClipVit(c) => c.output_dim,
            Self::TokenVit(c) => c.embed_dim,
        }
    }

    /// Builds the backbone with random weights.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<FaceBackbone<B>> {
        self.validate()?;
        Ok(match self {
            Self::IResNet(c) => FaceBackbone::IResNet(c.init(device)),
            Self::MobileFaceNet(c) => FaceBackbone::MobileFaceNet(c.init(device)),
            Self::ResNet(c) => FaceBackbone::ResNet(c.init(device)),
            Self::InceptionResnetV1(c) => FaceBackbone::InceptionResnetV1(c.init(device)),
            Self::Vit(c) => FaceBackbone::Vit(c.init(device)),
            Self::ClipVit(c) => FaceBackbone::ClipVit(c.init(device)),
            Self::TokenVit(c) => FaceBackbone::TokenVit(c.init(device)),
        })
    }
}

impl BackboneConfig {
    /// Builds the backbone and loads a PyTorch state dict of its reference implementation
    /// (arcface_torch `iresnet` / `mbf` / `vit`, torchvision ResNet, facenet-pytorch
    /// InceptionResnetV1, a whole-CLIP state dict for `clip_vit`), strictly: every weight must
    /// be found and every tensor used.
    ///
    /// # Errors
    /// As [`crate::weights::load_pytorch`]; the token ViT, which has no PyTorch layout.
    pub fn load_torch<B: Backend>(
        &self,
        path: &Path,
        device: &B::Device,
    ) -> Result<(FaceBackbone<B>, crate::weights::LoadReport)> {
        Ok(match self {
            Self::IResNet(c) => {
                let (m, r) = c.load_torch(path, device)?;
                (FaceBackbone::IResNet(m), r)
            }
            Self::MobileFaceNet(c) => {
                let (m, r) = c.load_torch(path, device)?;
                (FaceBackbone::MobileFaceNet(m), r)
            }
            Self::ResNet(c) => {
                let (m, r) = c.load_torch(path, device)?;
                (FaceBackbone::ResNet(m), r)
            }
            Self::InceptionResnetV1(c) => {
                let (m, r) = c.load_torch(path, device)?;
                (FaceBackbone::InceptionResnetV1(m), r)
            }
            Self::Vit(c) => {
                let (m, r) = c.load_torch(path, device)?;
                (FaceBackbone::Vit(m), r)
            }
            Self::ClipVit(c) => {
                let layout = crate::backbones::ClipCheckpoint::clip_state_dict();
                let (m, r) = c.load_torch(path, &layout, device)?;
                (FaceBackbone::ClipVit(m), r)
            }
            Self::TokenVit(c) => {
                let (m, r) = c.load_torch(path, device)?;
                (FaceBackbone::TokenVit(m), r)
            }
        })
    }
}

/// A backbone of any family (one variant per [`BackboneConfig`] variant).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum FaceBackbone<B: Backend> {
    /// iResNet.
    IResNet(IResNet<B>),
    /// MobileFaceNet.
    MobileFaceNet(MobileFaceNet<B>),
    /// ResNet.
    ResNet(ResNet<B>),
    /// Inception-ResNet-V1.
    InceptionResnetV1(InceptionResnetV1<B>),
    /// arcface_torch ViT.
    Vit(FaceVit<B>),
    /// CLIP ViT.
    ClipVit(ClipVit<B>),
    /// Token ViT.
    TokenVit(TokenVit<B>),
}

impl<B: Backend> FaceBackbone<B> {
    /// The backbone as ONNX nodes from `x` to its features.
    pub(crate) fn write_onnx(&self, w: &mut crate::onnx_writer::OnnxWriter, x: &str) -> Result<String> {
        match self {
            Self::IResNet(m) => m.write_onnx(w, x),
            Self::MobileFaceNet(m) => m.write_onnx(w, x),
            Self::ResNet(m) => m.write_onnx(w, x),
            Self::InceptionResnetV1(m) => m.write_onnx(w, x),
            Self::Vit(m) => m.write_onnx(w, x),
            Self::ClipVit(m) => m.write_onnx(w, x),
            Self::TokenVit(m) => m.write_onnx(w, x),
        }
    }
}

/// Runs one [`Backbone`] method on whichever network the enum holds.
macro_rules! each_backbone {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            FaceBackbone::IResNet($m) => $body,
            FaceBackbone::MobileFaceNet($m) => $body,
            FaceBackbone::ResNet($m) => $body,
            FaceBackbone::InceptionResnetV1($m) => $body,
            FaceBackbone::Vit($m) => $body,
            FaceBackbone::ClipVit($m) => $body,
            FaceBackbone::TokenVit($m) => $body,
        }
    };
}

impl<B: Backend> FaceBackbone<B> {
    /// Writes the network's weights (its own record, so a file written from a bare network of
    /// the same family loads too).
    ///
    /// # Errors
    /// I/O failure.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        each_backbone!(self, m => crate::record::save_module(m, path))
    }

    /// Loads weights written by [`FaceBackbone::save_weights`] (or by `save_module` of a bare
    /// network of this family and shape).
    ///
    /// # Errors
    /// A missing or corrupt file, or weights of another shape.
    pub fn load_weights(self, path: &Path, device: &B::Device) -> Result<Self> {
        use crate::record::load_module;
        Ok(match self {
            Self::IResNet(m) => Self::IResNet(load_module(m, path, device)?),
            Self::MobileFaceNet(m) => Self::MobileFaceNet(load_module(m, path, device)?),
            Self::ResNet(m) => Self::ResNet(load_module(m, path, device)?),
            Self::InceptionResnetV1(m) => Self::InceptionResnetV1(load_module(m, path, device)?),
            Self::Vit(m) => Self::Vit(load_module(m, path, device)?),
            Self::ClipVit(m) => Self::ClipVit(load_module(m, path, device)?),
            Self::TokenVit(m) => Self::TokenVit(load_module(m, path, device)?),
        })
    }
}

impl<B: Backend> FoldBatchNorm for FaceBackbone<B> {
    /// Folds the network the enum holds (the CLIP and token ViTs have no BatchNorm).
    fn fold_batch_norm(self) -> Self {
        match self {
            Self::IResNet(m) => Self::IResNet(m.fold_batch_norm()),
            Self::MobileFaceNet(m) => Self::MobileFaceNet(m.fold_batch_norm()),
            Self::ResNet(m) => Self::ResNet(m.fold_batch_norm()),
            Self::InceptionResnetV1(m) => Self::InceptionResnetV1(m.fold_batch_norm()),
            Self::Vit(m) => Self::Vit(m.fold_batch_norm()),
            m @ (Self::ClipVit(_) | Self::TokenVit(_)) => m,
        }
    }
}

impl<B: Backend> FoldBatchNorm for FaceModel<B> {
    /// The backbone's BatchNorms and the embedding head's: the student in inference form.
    /// [`FaceModel::save`] records that it is folded, so [`load_model`] builds it folded.
    fn fold_batch_norm(self) -> Self {
        Self {
            backbone: self.backbone.fold_batch_norm(),
            head: self.head.fold_batch_norm(),
            folded: true,
            ..self
        }
    }
}

impl<B: Backend> Backbone<B> for FaceBackbone<B> {
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

/// Everything that defines a face model's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceModelConfig {
    /// The backbone.
    pub backbone: BackboneConfig,
    /// Width of the identity embedding.
    pub embedding_dim: usize,
    /// The age (years) each age bin stands for; the age head has one logit per bin.
    pub age_bins: Vec<f32>,
    /// Whether the weights are in folded inference form ([`FoldBatchNorm`]): the model is then
    /// built folded, so the biases its convolutions gained have a place to load into. Written
    /// only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
}

impl FaceModelConfig {
    /// A model of `backbone` with a `embedding_dim`-wide embedding and these age bins.
    pub fn new(backbone: BackboneConfig, embedding_dim: usize, age_bins: Vec<f32>) -> Self {
        Self {
            backbone,
            embedding_dim,
            age_bins,
            folded: false,
        }
    }

    /// Checks the backbone, the head sizes and the bins.
    ///
    /// # Errors
    /// An invalid backbone, a zero embedding width, fewer than two age bins or a non-finite one.
    pub fn validate(&self) -> Result<()> {
        self.backbone.validate()?;
        self.head().validate()?;
        if let Some(a) = self.age_bins.iter().find(|a| !a.is_finite()) {
            return Err(NetsError::Config {
                name: "age_bins",
                message: format!("bin age {a} is not finite"),
            });
        }
        Ok(())
    }

    fn head(&self) -> MultiTaskHeadConfig {
        MultiTaskHeadConfig::new(self.backbone.feature_dim())
            .with_embedding_dim(self.embedding_dim)
            .with_age_bins(self.age_bins.len())
    }

    /// The square input side in pixels.
    pub fn input_size(&self) -> usize {
        self.backbone.input_size()
    }

    /// Builds the model with random weights (every parameter materialised, so clones of the
    /// model share their initial values).
    ///
    /// # Errors
    /// As [`FaceModelConfig::validate`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<FaceModel<B>> {
        self.validate()?;
        let model = FaceModel {
            backbone: self.backbone.init(device)?,
            head: self.head().init(device),
            age_bins: self.age_bins.clone(),
            folded: false,
        };
        let model = if self.folded {
            model.fold_batch_norm()
        } else {
            model
        };
        // Burn initialises parameters lazily, and each clone of a lazy parameter draws its own
        // values: materialise them now.
        crate::record::materialize(&model);
        Ok(model)
    }

    /// Reads a model configuration (unknown keys are errors at every depth).
    ///
    /// # Errors
    /// An unreadable or malformed file, an unknown key, or an invalid configuration.
    pub fn read(path: &Path) -> Result<Self> {
        let c: Self = face_io::read_config(path)?;
        c.validate()?;
        Ok(c)
    }

    /// Writes the configuration as JSON, atomically.
    ///
    /// # Errors
    /// I/O failure.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(face_io::write_config(path, self)?)
    }
}

/// Backbone + [`MultiTaskHead`]: identity embedding, age-bin logits and a gender logit.
#[derive(Module, Debug)]
pub struct FaceModel<B: Backend> {
    /// Feature extractor.
    pub backbone: FaceBackbone<B>,
    /// The three heads.
    pub head: MultiTaskHead<B>,
    #[module(skip)]
    age_bins: Vec<f32>,
    #[module(skip)]
    folded: bool,
}

impl<B: Backend> FaceModel<B> {
    /// Square input side in pixels.
    pub fn input_size(&self) -> usize {
        self.backbone.input_size()
    }

    /// Width of the identity embedding.
    pub fn embedding_dim(&self) -> usize {
        self.head.embedding.dim()
    }

    /// Whether the model is in folded inference form ([`FoldBatchNorm`]).
    pub fn is_folded(&self) -> bool {
        self.folded
    }

    /// The ages (years) of the age bins.
    pub fn age_bins(&self) -> &[f32] {
        &self.age_bins
    }

    /// All three outputs.
    ///
    /// # Shapes
    /// `[N, 3, S, S]` normalised faces → embedding `[N, D]` (unit rows), age logits
    /// `[N, bins]`, gender logit `[N]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> MultiTaskOutput<B> {
        self.head.forward(self.backbone.features(x))
    }

    /// The unit-length identity embedding only.
    ///
    /// # Shapes
    /// `[N, 3, S, S]` → `[N, D]`.
    pub fn embed(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.head.embedding.forward(self.backbone.features(x))
    }

    /// The expected age in years, `Σ softmax(logits)_i · age_bins_i`.
    ///
    /// # Shapes
    /// `[N, bins]` → `[N]`.
    pub fn expected_age(&self, age_logits: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, k] = age_logits.dims();
        let bins = Tensor::<B, 2>::from_data(
            TensorData::new(self.age_bins.clone(), [1, k]),
            &age_logits.device(),
        );
        (burn::tensor::activation::softmax(age_logits, 1) * bins)
            .sum_dim(1)
            .reshape([n])
    }

    /// Saves the model into `dir` ([`files::CONFIG`] written last, so a folder with a config
    /// is whole).
    ///
    /// # Errors
    /// I/O failure.
    pub fn save(&self, config: &FaceModelConfig, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(face_io::IoError::io(dir))?;
        crate::record::save_module(self, &dir.join(files::WEIGHTS))?;
        let config = FaceModelConfig {
            folded: self.folded,
            ..config.clone()
        };
        config.write(&dir.join(files::CONFIG))
    }
}

/// Reads the [`files::BACKBONE_CONFIG`] of a backbone folder.
///
/// # Errors
/// A missing, malformed or invalid file (unknown keys refused).
pub fn read_backbone_config(dir: &Path) -> Result<BackboneConfig> {
    let path = dir.join(files::BACKBONE_CONFIG);
    if !path.is_file() {
        return Err(NetsError::Checkpoint {
            path,
            message: "no backbone configuration (a `facekit pretrain` folder has one)".into(),
        });
    }
    let c: BackboneConfig = face_io::read_config(&path)?;
    c.validate()?;
    Ok(c)
}

/// Writes a backbone folder: [`files::BACKBONE_WEIGHTS`], then [`files::BACKBONE_CONFIG`].
///
/// # Errors
/// I/O failure.
pub fn save_backbone<B: Backend>(
    dir: &Path,
    config: &BackboneConfig,
    backbone: &FaceBackbone<B>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(face_io::IoError::io(dir))?;
    backbone.save_weights(&dir.join(files::BACKBONE_WEIGHTS))?;
    Ok(face_io::write_config(&dir.join(files::BACKBONE_CONFIG), config)?)
}

/// Loads a backbone folder written by [`save_backbone`] (or by `facekit pretrain`).
///
/// # Errors
/// As [`read_backbone_config`], or missing / mismatched weights.
pub fn load_backbone<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(BackboneConfig, FaceBackbone<B>)> {
    let config = read_backbone_config(dir)?;
    let backbone = config
        .init::<B>(device)?
        .load_weights(&dir.join(files::BACKBONE_WEIGHTS), device)?;
    Ok((config, backbone))
}

/// Loads a model folder written by [`FaceModel::save`] (a distillation run folder is one).
///
/// # Errors
/// A missing or malformed config, a missing or corrupt weights file, or weights of another
/// architecture.
pub fn load_model<B: Backend>(dir: &Path, device: &B::Device) -> Result<(FaceModelConfig, FaceModel<B>)> {
    let config_path = dir.join(files::CONFIG);
    if !config_path.is_file() {
        return Err(NetsError::Checkpoint {
            path: config_path,
            message:
                "no model configuration (a folder written by `facekit distill` or FaceModel::save has one)"
                    .into(),
        });
    }
    let config = FaceModelConfig::read(&config_path)?;
    let model = config.init::<B>(device)?;
    let model = crate::record::load_module(model, &dir.join(files::WEIGHTS), device)?;
    Ok((config, model))
}
