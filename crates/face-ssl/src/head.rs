//! DINO's projection head: an MLP (GELU between layers) to a bottleneck, L2 normalisation, then a
//! weight-normalised linear layer without bias whose weight vectors have their length fixed to 1
//! (`norm_last_layer`), giving `K` logits that are cosine similarities to `K` prototypes.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};

/// Projection head configuration (DINO's defaults: 2048 hidden, 256 bottleneck, 3 layers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DinoHeadConfig {
    /// Prototypes `K` (DINO: 65 536).
    pub out_dim: usize,
    /// Hidden width of the MLP.
    pub hidden_dim: usize,
    /// Width before the last layer.
    pub bottleneck_dim: usize,
    /// MLP layers (1 = a single linear map to the bottleneck).
    pub layers: usize,
}

impl Default for DinoHeadConfig {
    fn default() -> Self {
        Self {
            out_dim: 65_536,
            hidden_dim: 2048,
            bottleneck_dim: 256,
            layers: 3,
        }
    }
}

impl DinoHeadConfig {
    /// Checks the sizes.
    ///
    /// # Errors
    /// A zero size.
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("head.out_dim", self.out_dim),
            ("head.hidden_dim", self.hidden_dim),
            ("head.bottleneck_dim", self.bottleneck_dim),
            ("head.layers", self.layers),
        ] {
            if v == 0 {
                return Err(SslError::config(key, "must be positive"));
            }
        }
        Ok(())
    }

    /// Builds the head on top of `in_dim` features.
    ///
    /// # Errors
    /// As [`DinoHeadConfig::validate`].
    pub fn init<B: Backend>(&self, in_dim: usize, device: &B::Device) -> Result<DinoHead<B>> {
        self.validate()?;
        let widths: Vec<usize> = std::iter::once(in_dim)
            .chain(std::iter::repeat_n(self.hidden_dim, self.layers - 1))
            .chain(std::iter::once(self.bottleneck_dim))
            .collect();
        let mlp = widths
            .windows(2)
            .map(|w| face_nets::backbones::dense(w[0], w[1], device))
            .collect();
        Ok(DinoHead {
            mlp,
            last: Param::from_tensor(Tensor::random(
                [self.bottleneck_dim, self.out_dim],
                Distribution::Normal(0.0, 1.0),
                device,
            )),
        })
    }
}

/// DINO's projection head.
#[derive(Module, Debug)]
pub struct DinoHead<B: Backend> {
    mlp: Vec<Linear<B>>,
    /// The last layer's direction vectors `v`, `[bottleneck, K]`; the weight is `v / ‖v‖` per
    /// prototype (column).
    last: Param<Tensor<B, 2>>,
}

impl<B: Backend> DinoHead<B> {
    /// Builds a head from explicit weights (reference tests, imports): MLP layers as
    /// `(weight [in, out], bias [out])`, and the last layer's `v` as `[bottleneck, K]`.
    pub fn from_weights(mlp: Vec<(Tensor<B, 2>, Tensor<B, 1>)>, last_v: Tensor<B, 2>) -> Self {
        let mlp = mlp
            .into_iter()
            .map(|(w, b)| {
                let [i, o] = w.dims();
                let mut l = LinearConfig::new(i, o).init(&w.device());
                l.weight = Param::from_tensor(w);
                l.bias = Some(Param::from_tensor(b));
                l
            })
            .collect();
        Self {
            mlp,
            last: Param::from_tensor(last_v),
        }
    }

    /// Prototypes `K`.
    pub fn out_dim(&self) -> usize {
        self.last.dims()[1]
    }

    /// The id of the last layer's parameter (frozen during DINO's first epoch).
    pub fn last_layer_id(&self) -> burn::module::ParamId {
        self.last.id
    }

    /// The L2-normalised bottleneck features, `[n, bottleneck]`.
    pub fn bottleneck(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.mlp.len() - 1;
        let x = self.mlp.iter().enumerate().fold(x, |x, (i, l)| {
            let y = face_nets::ops::linear(l, x);
            if i < last {
                face_nets::ops::gelu(y)
            } else {
                y
            }
        });
        face_nets::l2_normalize(x, 1e-12)
    }

    /// The `K` logits, `[n, in]` → `[n, K]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let w = face_nets::ops::l2_normalize(self.last.val(), 0, 1e-12);
        face_nets::ops::matmul(self.bottleneck(x), w)
    }
}
