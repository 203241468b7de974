//! Task heads on top of any [`crate::Backbone`]'s features: an identity embedding (L2-normalised),
//! age as a distribution over 0…100 years with its expectation (DEX, Rothe et al. 2015), and
//! gender as one logit; [`MultiTaskHead`] runs all three on one feature vector.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::blocks::{bn, l2_normalize};
use crate::error::{NetsError, Result};
use crate::fold::{fold_linear, FoldBatchNorm};

/// Embedding head configuration: Linear (no bias) → optional BatchNorm1d → L2 normalisation.
#[derive(Config, Debug, PartialEq)]
pub struct EmbeddingHeadConfig {
    /// Backbone feature width.
    pub in_dim: usize,
    /// Embedding size.
    #[config(default = 512)]
    pub dim: usize,
    /// BatchNorm1d after the projection (as arcface_torch's `features` layer).
    #[config(default = true)]
    pub batch_norm: bool,
}

impl EmbeddingHeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> EmbeddingHead<B> {
        EmbeddingHead {
            linear: LinearConfig::new(self.in_dim, self.dim)
                .with_bias(!self.batch_norm)
                .init(device),
            bn: self.batch_norm.then(|| bn(self.dim, 1e-5, device)),
        }
    }
}

/// Projects features to a unit-length identity embedding.
#[derive(Module, Debug)]
pub struct EmbeddingHead<B: Backend> {
    linear: Linear<B>,
    bn: Option<BatchNorm<B>>,
}

impl<B: Backend> EmbeddingHead<B> {
    /// Width of the embedding.
    pub fn dim(&self) -> usize {
        self.linear.weight.dims()[1]
    }

    /// The embedding before normalisation, `[N, in_dim]` → `[N, dim]`.
    pub fn raw(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = crate::ops::linear(&self.linear, features);
        match &self.bn {
            Some(bn) => crate::ops::batch_norm(bn, x),
            None => x,
        }
    }

    /// The L2-normalised embedding, `[N, in_dim]` → `[N, dim]`.
    pub fn forward(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        l2_normalize(self.raw(features), 1e-12)
    }
}

/// Age head configuration: a linear layer to one logit per year `0..bins`.
#[derive(Config, Debug, PartialEq)]
pub struct AgeHeadConfig {
    /// Backbone feature width.
    pub in_dim: usize,
    /// Number of age bins, one per year from 0 (101: ages 0…100).
    #[config(default = 101)]
    pub bins: usize,
}

impl AgeHeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> AgeHead<B> {
        AgeHead {
            linear: LinearConfig::new(self.in_dim, self.bins).init(device),
        }
    }
}

/// Age as a distribution over years.
#[derive(Module, Debug)]
pub struct AgeHead<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> AgeHead<B> {
    /// Bin logits, `[N, in_dim]` → `[N, bins]`.
    pub fn forward(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        crate::ops::linear(&self.linear, features)
    }
}

/// The probability of each year, `softmax(logits)`: `[N, bins]`.
pub fn age_distribution<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 2> {
    softmax(logits, 1)
}

/// The expected age `Σ p_i · i` in years: `[N, bins]` logits → `[N]`.
pub fn expected_age<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, bins] = logits.dims();
    let years = Tensor::<B, 1>::from_floats(
        (0..bins).map(|i| i as f32).collect::<Vec<_>>().as_slice(),
        &logits.device(),
    );
    (age_distribution(logits) * years.reshape([1, bins]))
        .sum_dim(1)
        .reshape([n])
}

/// Gender head configuration: one logit (positive: the class coded 1).
#[derive(Config, Debug, PartialEq)]
pub struct GenderHeadConfig {
    /// Backbone feature width.
    pub in_dim: usize,
}

impl GenderHeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> GenderHead<B> {
        GenderHead {
            linear: LinearConfig::new(self.in_dim, 1).init(device),
        }
    }
}

/// Gender as a single logit.
#[derive(Module, Debug)]
pub struct GenderHead<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> GenderHead<B> {
    /// Logits, `[N, in_dim]` → `[N]`.
    pub fn forward(&self, features: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, _] = features.dims();
        crate::ops::linear(&self.linear, features).reshape([n])
    }
}

/// `σ(logit)`: the probability of the class coded 1.
pub fn gender_probability<B: Backend>(logit: Tensor<B, 1>) -> Tensor<B, 1> {
    sigmoid(logit)
}

/// The three heads of the student.
#[derive(Config, Debug, PartialEq)]
pub struct MultiTaskHeadConfig {
    /// Backbone feature width.
    pub in_dim: usize,
    /// Embedding size.
    #[config(default = 512)]
    pub embedding_dim: usize,
    /// Age bins (years 0..bins).
    #[config(default = 101)]
    pub age_bins: usize,
}

impl MultiTaskHeadConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// A zero width or fewer than two age bins.
    pub fn validate(&self) -> Result<()> {
        if self.in_dim == 0 || self.embedding_dim == 0 || self.age_bins < 2 {
            return Err(NetsError::Config {
                name: "in_dim",
                message: format!(
                    "in_dim {}, embedding_dim {} must be positive and age_bins {} ≥ 2",
                    self.in_dim, self.embedding_dim, self.age_bins
                ),
            });
        }
        Ok(())
    }

    /// Builds the heads.
    ///
    /// # Panics
    /// When [`MultiTaskHeadConfig::validate`] fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MultiTaskHead<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        MultiTaskHead {
            embedding: EmbeddingHeadConfig::new(self.in_dim)
                .with_dim(self.embedding_dim)
                .init(device),
            age: AgeHeadConfig::new(self.in_dim)
                .with_bins(self.age_bins)
                .init(device),
            gender: GenderHeadConfig::new(self.in_dim).init(device),
        }
    }
}

/// Embedding, age and gender heads sharing one feature vector.
#[derive(Module, Debug)]
pub struct MultiTaskHead<B: Backend> {
    /// Identity embedding head.
    pub embedding: EmbeddingHead<B>,
    /// Age head.
    pub age: AgeHead<B>,
    /// Gender head.
    pub gender: GenderHead<B>,
}

/// What [`MultiTaskHead::forward`] returns.
#[derive(Debug, Clone)]
pub struct MultiTaskOutput<B: Backend> {
    /// Unit-length embeddings `[N, D]`.
    pub embedding: Tensor<B, 2>,
    /// Age-bin logits `[N, bins]`.
    pub age_logits: Tensor<B, 2>,
    /// Gender logits `[N]`.
    pub gender_logit: Tensor<B, 1>,
}

impl<B: Backend> MultiTaskOutput<B> {
    /// Expected age in years `[N]`.
    pub fn expected_age(&self) -> Tensor<B, 1> {
        expected_age(self.age_logits.clone())
    }
}

impl<B: Backend> MultiTaskHead<B> {
    /// The three heads as ONNX nodes from the features `f`, ending in the named outputs
    /// `embedding` (unit rows), `age_probs` (softmax over the bins), `expected_age` (years)
    /// and `p_male` (sigmoid of the gender logit).
    pub(crate) fn write_onnx(
        &self,
        w: &mut crate::onnx_writer::OnnxWriter,
        f: &str,
        age_bins: &[f32],
    ) -> crate::error::Result<()> {
        use crate::onnx_writer::Attr;
        let e = &self.embedding;
        let raw = w.linear(&e.linear, e.bn.as_ref(), f)?;
        let sq = w.node("Mul", &[&raw, &raw], vec![]);
        let axes = w.constant_i64("axes", vec![1]);
        let sum = w.node("ReduceSum", &[&sq, &axes], vec![("keepdims", Attr::Int(1))]);
        let norm = w.node("Sqrt", &[&sum], vec![]);
        let eps = w.constant("eps", &[], vec![1e-12]);
        let norm = w.node("Clip", &[&norm, &eps], vec![]);
        w.node_named("Div", &[&raw, &norm], vec![], Some("embedding"));
        let logits = w.linear(&self.age.linear, None, f)?;
        let probs = w.node_named(
            "Softmax",
            &[&logits],
            vec![("axis", Attr::Int(1))],
            Some("age_probs"),
        );
        let bins = w.constant("age_bins", &[age_bins.len(), 1], age_bins.to_vec());
        let years = w.node("MatMul", &[&probs, &bins], vec![]);
        let flat = w.constant_i64("shape", vec![-1]);
        w.node_named("Reshape", &[&years, &flat], vec![], Some("expected_age"));
        let logit = w.linear(&self.gender.linear, None, f)?;
        let p = w.node("Sigmoid", &[&logit], vec![]);
        w.node_named("Reshape", &[&p, &flat], vec![], Some("p_male"));
        Ok(())
    }

    /// Runs the three heads on backbone features `[N, in_dim]`.
    pub fn forward(&self, features: Tensor<B, 2>) -> MultiTaskOutput<B> {
        MultiTaskOutput {
            embedding: self.embedding.forward(features.clone()),
            age_logits: self.age.forward(features.clone()),
            gender_logit: self.gender.forward(features),
        }
    }
}

impl<B: Backend> FoldBatchNorm for EmbeddingHead<B> {
    /// The BatchNorm after the projection, where there is one, into the projection.
    fn fold_batch_norm(self) -> Self {
        match self.bn {
            Some(bn) => {
                let (linear, bn) = fold_linear(self.linear, bn);
                Self { linear, bn: Some(bn) }
            }
            None => self,
        }
    }
}

impl<B: Backend> FoldBatchNorm for MultiTaskHead<B> {
    /// The embedding head's BatchNorm (the age and gender heads have none).
    fn fold_batch_norm(self) -> Self {
        Self {
            embedding: self.embedding.fold_batch_norm(),
            ..self
        }
    }
}
