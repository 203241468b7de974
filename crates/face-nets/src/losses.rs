//! Margin-based softmax losses for face recognition, as insightface's arcface_torch applies them
//! to the cosine logits `cos θ_ij = ⟨x̂_i, ŵ_j⟩`: the target logit becomes
//! `cos(m1·θ + m2) − m3`, all logits are scaled by `s`, then softmax cross-entropy.
//! ArcFace is (1, 0.5, 0), CosFace (1, 0, 0.4), SphereFace-like margins use `m1`.
//!
//! For ArcFace (`m1 = 1, m3 = 0`) the target uses arcface_torch's `ArcFace` rule: where
//! `θ + m2 > π` (i.e. `cos θ ≤ cos(π − m2)`) `cos(θ + m2)` would stop decreasing, so the
//! target becomes `cos θ − m2·sin(m2)` there; with `easy_margin` the margin applies only where
//! `cos θ > 0`. Gradients are the exact derivatives of these formulas (arcface_torch's newer
//! `CombinedMarginLoss` computes the ArcFace target under `no_grad`, which passes the gradient
//! of the scaled cosine straight through; that variant is not reproduced).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};

use crate::blocks::l2_normalize;
use crate::error::{NetsError, Result};

/// Combined margin configuration.
#[derive(Config, Debug, PartialEq)]
pub struct CombinedMarginConfig {
    /// Scale `s` applied to every logit.
    #[config(default = 64.0)]
    pub scale: f64,
    /// Multiplicative angular margin `m1` (1: none).
    #[config(default = 1.0)]
    pub m1: f64,
    /// Additive angular margin `m2` (ArcFace).
    #[config(default = 0.5)]
    pub m2: f64,
    /// Additive cosine margin `m3` (CosFace).
    #[config(default = 0.0)]
    pub m3: f64,
    /// ArcFace only: apply the margin only where `cos θ > 0`, and no threshold rule.
    #[config(default = false)]
    pub easy_margin: bool,
}

impl CombinedMarginConfig {
    /// ArcFace with arcface_torch's defaults (`s = 64`, `m = 0.5`).
    pub fn arcface() -> Self {
        Self::new()
    }

    /// CosFace with arcface_torch's defaults (`s = 64`, `m = 0.4`).
    pub fn cosface() -> Self {
        Self::new().with_m2(0.0).with_m3(0.4)
    }

    /// Plain scaled-cosine softmax (no margin).
    pub fn normalized_softmax(scale: f64) -> Self {
        Self::new().with_scale(scale).with_m2(0.0)
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// A non-positive or non-finite scale, `m1 ≤ 0`, or a negative margin.
    pub fn validate(&self) -> Result<()> {
        let finite = [self.scale, self.m1, self.m2, self.m3]
            .iter()
            .all(|v| v.is_finite());
        if !finite || self.scale <= 0.0 || self.m1 <= 0.0 || self.m2 < 0.0 || self.m3 < 0.0 {
            return Err(NetsError::Config {
                name: "scale",
                message: format!(
                    "s = {}, m1 = {}, m2 = {}, m3 = {}: need s > 0, m1 > 0, m2 ≥ 0, m3 ≥ 0",
                    self.scale, self.m1, self.m2, self.m3
                ),
            });
        }
        Ok(())
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// When [`CombinedMarginConfig::validate`] fails.
    pub fn init(&self) -> CombinedMargin {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        CombinedMargin { config: self.clone() }
    }
}

/// The combined margin applied to cosine logits.
#[derive(Debug, Clone)]
pub struct CombinedMargin {
    config: CombinedMarginConfig,
}

impl CombinedMargin {
    /// The margin-adjusted, scaled logits: `cos` is `[N, C]` in [−1, 1], `labels` `[N]`.
    pub fn logits<B: Backend>(&self, cos: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let c = &self.config;
        let [n, classes] = cos.dims();
        let one_hot: Tensor<B, 2> = labels.one_hot::<2>(classes).float();
        let target = (cos.clone() * one_hot.clone()).sum_dim(1).reshape([n]);
        let adjusted = if c.m1 == 1.0 && c.m2 == 0.0 {
            target.clone().sub_scalar(c.m3)
        } else if c.m1 == 1.0 {
            // cos(θ + m2) = cos θ·cos m2 − sin θ·sin m2 (clamped so sin θ has a finite gradient).
            let sin = target
                .clone()
                .powi_scalar(2)
                .neg()
                .add_scalar(1.0)
                .clamp_min(1e-12)
                .sqrt();
            let cos_tm = target.clone().mul_scalar(c.m2.cos()) - sin.mul_scalar(c.m2.sin());
            let rule = if c.easy_margin {
                target
                    .clone()
                    .mask_where(target.clone().greater_elem(0.0), cos_tm)
            } else {
                let threshold = (std::f64::consts::PI - c.m2).cos();
                let fallback = target
                    .clone()
                    .sub_scalar((std::f64::consts::PI - c.m2).sin() * c.m2);
                fallback.mask_where(target.clone().greater_elem(threshold), cos_tm)
            };
            rule.sub_scalar(c.m3)
        } else {
            let theta = target.clone().clamp(-1.0 + 1e-7, 1.0 - 1e-7).acos();
            theta.mul_scalar(c.m1).add_scalar(c.m2).cos().sub_scalar(c.m3)
        };
        let delta = (adjusted - target).reshape([n, 1]);
        (cos + one_hot * delta).mul_scalar(c.scale)
    }

    /// Mean softmax cross-entropy of the margin logits.
    pub fn forward<B: Backend>(&self, cos: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        cross_entropy(self.logits(cos, labels.clone()), labels)
    }
}

/// Mean softmax cross-entropy of `logits` `[N, C]` against class indices `[N]`.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [_, classes] = logits.dims();
    let one_hot: Tensor<B, 2> = labels.one_hot::<2>(classes).float();
    (log_softmax(logits, 1) * one_hot).sum_dim(1).mean().neg()
}

/// Class centres for a margin loss: `cos = x̂·Ŵᵀ`, clamped to [−1, 1] (arcface_torch's
/// `PartialFC` on one device with every class sampled).
#[derive(Module, Debug)]
pub struct NormLinear<B: Backend> {
    /// `[classes, dim]`, one centre per row.
    pub weight: Param<Tensor<B, 2>>,
}

impl<B: Backend> NormLinear<B> {
    /// Centres drawn from N(0, 0.01²), as arcface_torch initialises them.
    pub fn new(dim: usize, classes: usize, device: &B::Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::random(
                [classes, dim],
                Distribution::Normal(0.0, 0.01),
                device,
            )),
        }
    }

    /// Cosine logits, `[N, dim]` → `[N, classes]`.
    pub fn forward(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = l2_normalize(embeddings, 1e-12);
        let w = l2_normalize(self.weight.val(), 1e-12);
        x.matmul(w.transpose()).clamp(-1.0, 1.0)
    }
}
