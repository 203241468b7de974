//! Collapse monitors of self-distillation (DINO §5.3): the entropy of the teacher's targets,
//! KL(teacher ‖ student), and the spread of the L2-normalised representations.
//!
//! - Collapse to a **uniform** output: entropy → ln K and KL → 0 (sharpening too weak).
//! - Collapse to **one prototype**: every image's target is the same peaked distribution, so
//!   the entropy of the batch-mean target (the *marginal* entropy) → 0 (centring too weak). A
//!   low per-image entropy alone is the healthy state: each image sure of its own prototypes.
//! - A **constant** representation: the per-dimension standard deviation of the normalised
//!   embeddings falls to 0; a healthy spread is about `1/√d`, so `std·√d` is reported.

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

/// Mean entropy (nats) of the rows of a probability matrix `[m, K]`.
pub fn mean_entropy<B: Backend>(probs: Tensor<B, 2>) -> f64 {
    let m = probs.dims()[0].max(1);
    let plogp = probs.clone() * probs.clamp_min(1e-30).log();
    -plogp.sum().into_scalar_f64() / m as f64
}

/// Entropy (nats) of the mean row of a probability matrix `[m, K]` — how many prototypes the
/// batch uses as a whole.
pub fn marginal_entropy<B: Backend>(probs: Tensor<B, 2>) -> f64 {
    mean_entropy(probs.mean_dim(0))
}

/// Mean over dimensions of the (unbiased) standard deviation across rows of the L2-normalised
/// rows of `x` `[m, d]`; 0 for fewer than two rows.
pub fn normalised_std<B: Backend>(x: Tensor<B, 2>) -> f64 {
    let [m, d] = x.dims();
    if m < 2 || d == 0 {
        return 0.0;
    }
    let z = face_nets::l2_normalize(x, 1e-12);
    let centred = z.clone() - z.mean_dim(0);
    let var = centred.powi_scalar(2).sum_dim(0).div_scalar((m - 1) as f64);
    var.sqrt().mean().into_scalar_f64()
}

/// A one-element tensor as `f64`.
pub(crate) trait ScalarF64 {
    fn into_scalar_f64(self) -> f64;
}

impl<B: Backend> ScalarF64 for Tensor<B, 1> {
    fn into_scalar_f64(self) -> f64 {
        self.into_scalar().elem::<f64>()
    }
}

/// One epoch's monitors (means over its steps).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Monitors {
    /// DINO loss.
    pub loss: f64,
    /// Entropy of the teacher targets, nats (mean over images).
    pub teacher_entropy: f64,
    /// Entropy of the batch-mean teacher target, nats.
    pub marginal_entropy: f64,
    /// KL(teacher ‖ student) over the loss's view pairs, nats (= loss − teacher entropy).
    pub kl: f64,
    /// `std · √d` of the student's normalised global-view representations (≈ 1 healthy, 0
    /// collapsed).
    pub std_ratio: f64,
    /// `ln K`, the entropy of a uniform output.
    pub max_entropy: f64,
}

/// How a run collapsed, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collapse {
    /// The teacher's output is (nearly) uniform: its targets carry no information.
    Uniform,
    /// Every image's target puts its mass on the same few prototypes.
    OnePrototype,
    /// Every image gets (nearly) the same representation.
    Constant,
}

impl std::fmt::Display for Collapse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Uniform => "uniform teacher output (entropy ≈ ln K)",
            Self::OnePrototype => "one prototype for every image (marginal entropy ≈ 0)",
            Self::Constant => "constant representation (std·√d ≈ 0)",
        })
    }
}

/// Thresholds of [`Monitors::collapse`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollapseThresholds {
    /// Per-image entropy above this fraction of ln K counts as uniform.
    pub uniform_fraction: f64,
    /// Marginal entropy below this fraction of ln K counts as one prototype.
    pub peaked_fraction: f64,
    /// `std·√d` below this counts as a constant representation.
    pub std_ratio_floor: f64,
}

impl Default for CollapseThresholds {
    fn default() -> Self {
        Self {
            uniform_fraction: 0.99,
            peaked_fraction: 0.05,
            std_ratio_floor: 0.05,
        }
    }
}

impl Monitors {
    /// The collapse these monitors show, if any.
    pub fn collapse(&self, t: &CollapseThresholds) -> Option<Collapse> {
        let max = self.max_entropy.max(f64::MIN_POSITIVE);
        if self.std_ratio < t.std_ratio_floor {
            Some(Collapse::Constant)
        } else if self.teacher_entropy / max > t.uniform_fraction {
            Some(Collapse::Uniform)
        } else if self.marginal_entropy / max < t.peaked_fraction {
            Some(Collapse::OnePrototype)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(entropy: f64, marginal: f64, std_ratio: f64) -> Monitors {
        Monitors {
            loss: entropy + 0.1,
            teacher_entropy: entropy,
            marginal_entropy: marginal,
            kl: 0.1,
            std_ratio,
            max_entropy: 10.0,
        }
    }

    #[test]
    fn verdicts() {
        let t = CollapseThresholds::default();
        assert_eq!(m(5.0, 8.0, 0.8).collapse(&t), None);
        assert_eq!(m(9.95, 9.99, 0.8).collapse(&t), Some(Collapse::Uniform));
        assert_eq!(m(0.01, 0.02, 0.8).collapse(&t), Some(Collapse::OnePrototype));
        assert_eq!(m(5.0, 8.0, 0.01).collapse(&t), Some(Collapse::Constant));
        // Each image sure of its own prototype, the batch using many: healthy.
        assert_eq!(m(0.01, 6.0, 0.8).collapse(&t), None);
    }
}
