//! AdamW as DINO trains with it: per-parameter gradient clipping, decoupled weight decay on
//! matrices only (biases and norm scales stay undecayed) at a rate the caller schedules, and
//! one fused pass per parameter ([`crate::ops::adamw_step`]).
//!
//! Its record is `burn::optim::Adam`'s (the same moments and step count under the same keys),
//! so a checkpoint written by an `OptimizerAdaptor<Adam, _, _>` loads here and back.

use std::marker::PhantomData;

use burn::module::{AutodiffModule, ModuleMapper, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{
    Adam, AdamState, AdaptiveMomentumState, GradientsParams, LearningRate, MultiGradientsParams, Optimizer,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Device, Tensor};

use crate::ops::{adamw_step, AdamWStep};

/// The optimizer state: `burn::optim::Adam`'s record.
pub type AdamWRecord<M, B> = <OptimizerAdaptor<Adam, M, B> as Optimizer<M, B>>::Record;

/// AdamW with per-parameter gradient clipping and a scheduled weight decay (see the module
/// docs). Build it with [`FusedAdamW::new`] and the `with_*` methods; set the decay of each
/// step with [`FusedAdamW::set_weight_decay`] before [`Optimizer::step`].
pub struct FusedAdamW<M: AutodiffModule<B>, B: AutodiffBackend> {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    clip_norm: Option<f32>,
    weight_decay: f64,
    records: AdamWRecord<M, B>,
    module: PhantomData<fn() -> M>,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Clone for FusedAdamW<M, B> {
    fn clone(&self) -> Self {
        Self {
            records: self.records.clone(),
            ..*self
        }
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> std::fmt::Debug for FusedAdamW<M, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedAdamW")
            .field("beta_1", &self.beta_1)
            .field("beta_2", &self.beta_2)
            .field("epsilon", &self.epsilon)
            .field("clip_norm", &self.clip_norm)
            .field("weight_decay", &self.weight_decay)
            .field("parameters_with_state", &self.records.len())
            .finish()
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Default for FusedAdamW<M, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> FusedAdamW<M, B> {
    /// β₁ = 0.9, β₂ = 0.999, ε = 1e-8 (PyTorch's defaults), no clipping, no decay.
    pub fn new() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            clip_norm: None,
            weight_decay: 0.0,
            records: Default::default(),
            module: PhantomData,
        }
    }

    /// The moment decays β₁ and β₂.
    pub fn with_betas(mut self, beta_1: f32, beta_2: f32) -> Self {
        self.beta_1 = beta_1;
        self.beta_2 = beta_2;
        self
    }

    /// The denominator's ε.
    pub fn with_epsilon(mut self, epsilon: f32) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Each parameter's gradient is scaled to at most this L2 norm; `None` (or a value ≤ 0)
    /// for no clipping.
    pub fn with_clip_norm(mut self, clip_norm: Option<f32>) -> Self {
        self.clip_norm = clip_norm.filter(|c| *c > 0.0);
        self
    }

    /// The weight decay `wd` of the next steps: each parameter of two or more dimensions that
    /// has a gradient is scaled by `1 − lr·wd` before its update.
    pub fn set_weight_decay(&mut self, weight_decay: f64) {
        self.weight_decay = weight_decay;
    }

    /// The weight decay in use.
    pub fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn step_with(&mut self, lr: LearningRate, module: M, grads: Grads) -> M {
        let mut mapper = StepMapper::<M, B> {
            optim: self,
            grads,
            lr,
        };
        module.map(&mut mapper)
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for FusedAdamW<M, B> {
    type Record = AdamWRecord<M, B>;

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        self.step_with(lr, module, Grads::Single(grads))
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        self.step_with(lr, module, Grads::Multi(grads))
    }

    fn to_record(&self) -> Self::Record {
        self.records.clone()
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        self.records = record;
        self
    }
}

/// The gradients of one step, from one device or several.
enum Grads {
    Single(GradientsParams),
    Multi(MultiGradientsParams),
}

impl Grads {
    fn remove<B: Backend, const D: usize>(&mut self, id: ParamId) -> Option<(Tensor<B, D>, Device<B>)> {
        match self {
            Grads::Single(g) => g.remove::<B, D>(id).map(|t| {
                let device = t.device();
                (t, device)
            }),
            Grads::Multi(g) => g.remove::<B, D>(id),
        }
    }
}

struct StepMapper<'a, M: AutodiffModule<B>, B: AutodiffBackend> {
    optim: &'a mut FusedAdamW<M, B>,
    grads: Grads,
    lr: LearningRate,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> ModuleMapper<B> for StepMapper<'_, M, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some((grad, device)) = self.grads.remove::<B::InnerBackend, D>(id) else {
            // No gradient (frozen, or unused this step): untouched, as PyTorch skips it.
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let tensor = if tensor.device() == device {
            tensor
        } else {
            tensor.to_device(&device)
        };
        let o = &mut *self.optim;
        let (key, record) = o.records.remove_entry(&id).unzip();
        let state: Option<AdamState<B::InnerBackend, D>> = record.map(AdaptorRecord::into_state);
        let (time, moments) = match state {
            Some(s) => {
                let m = s.momentum;
                (
                    m.time + 1,
                    Some((m.moment_1.to_device(&device), m.moment_2.to_device(&device))),
                )
            }
            None => (1, None),
        };
        let decay = (D >= 2 && o.weight_decay != 0.0).then_some(1.0 - self.lr * o.weight_decay);
        let step = AdamWStep {
            lr: self.lr,
            beta_1: o.beta_1,
            beta_2: o.beta_2,
            epsilon: o.epsilon,
            time,
            decay,
            clip_norm: o.clip_norm,
        };
        let (value, m, v) = adamw_step(tensor.inner(), grad, moments, &step);
        let state = AdamState::new(AdaptiveMomentumState::new(time, m, v));
        o.records
            .insert(key.unwrap_or(id), AdaptorRecord::from_state(state));
        let mut value = Tensor::from_inner(value);
        if require_grad {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}
