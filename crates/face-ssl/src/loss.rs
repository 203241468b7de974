//! DINO's objective: the teacher's outputs are centred and sharpened into targets, and the
//! student's tempered log-probabilities are scored against them by cross-entropy over every
//! (teacher view, student view) pair except a view with itself.
//!
//! Layout: outputs are stacked view-major, `[V·n, K]` — all `n` images of view 0, then view 1, …
//! — with the `G` global views first (the teacher sees only those).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The teacher's targets: `softmax((logits − centre) / temperature)` over the prototypes.
pub fn teacher_targets<B: Backend>(
    logits: Tensor<B, 2>,
    centre: Tensor<B, 2>,
    temperature: f64,
) -> Tensor<B, 2> {
    softmax((logits - centre).div_scalar(temperature), 1)
}

/// The student's tempered log-probabilities, `log_softmax(logits / temperature)`.
pub fn student_log_probs<B: Backend>(logits: Tensor<B, 2>, temperature: f64) -> Tensor<B, 2> {
    log_softmax(logits.div_scalar(temperature), 1)
}

/// Cross-entropy of every pair (teacher view `i`, student view `v`) as a `[G, V]` matrix, each
/// entry the mean over the `n` images of `−Σ_k q_i log p_v`.
///
/// # Panics
/// When the row counts are not multiples of `n` (programming error in the caller).
pub fn pair_cross_entropy<B: Backend>(
    targets: Tensor<B, 2>,
    log_probs: Tensor<B, 2>,
    n: usize,
) -> Tensor<B, 2> {
    let [gn, k] = targets.dims();
    let [vn, k2] = log_probs.dims();
    assert!(
        n > 0 && gn % n == 0 && vn % n == 0 && k == k2,
        "view layout mismatch"
    );
    let q = targets.reshape([gn / n, n * k]);
    let lp = log_probs.reshape([vn / n, n * k]);
    q.matmul(lp.transpose()).neg().div_scalar(n as f64)
}

/// DINO's loss: the mean of [`pair_cross_entropy`] over all pairs with `i ≠ v`
/// (`G·V − G` terms; the student's global view `i` is skipped for teacher view `i`).
///
/// `targets`: `[G·n, K]` from [`teacher_targets`]; `student_logits`: `[V·n, K]` raw logits.
/// Computed as one [`face_nets::ops::view_cross_entropy`] with weight `1/(n·terms)` on each
/// kept pair (one pass over the logits each way on NdArray, no `[V, n·K]` reshapes).
///
/// # Panics
/// When the row counts are not multiples of `n` (programming error in the caller).
pub fn dino_loss<B: Backend>(
    targets: Tensor<B, 2>,
    student_logits: Tensor<B, 2>,
    n: usize,
    student_temperature: f64,
) -> Tensor<B, 1> {
    let [gn, _] = targets.dims();
    let [vn, _] = student_logits.dims();
    assert!(n > 0 && gn % n == 0 && vn % n == 0, "view layout mismatch");
    let (g, v) = (gn / n, vn / n);
    // Row-major [student view, teacher view]: every pair but a view with itself.
    let kept: Vec<bool> = (0..v).flat_map(|s| (0..g).map(move |t| s != t)).collect();
    let terms = kept.iter().filter(|k| **k).count().max(1);
    let weight = 1.0 / (n * terms) as f32;
    let weights: Vec<f32> = kept.iter().map(|k| if *k { weight } else { 0.0 }).collect();
    face_nets::ops::view_cross_entropy(student_logits, targets, n, &weights, student_temperature)
}

/// The running centre of the teacher's outputs: `c ← m·c + (1 − m)·mean(teacher logits)`.
#[derive(Debug, Clone)]
pub struct Centre<B: Backend> {
    value: Tensor<B, 2>,
    momentum: f64,
}

impl<B: Backend> Centre<B> {
    /// A zero centre over `k` prototypes.
    pub fn zeros(k: usize, momentum: f64, device: &B::Device) -> Self {
        Self {
            value: Tensor::zeros([1, k], device),
            momentum,
        }
    }

    /// The centre, `[1, K]`.
    pub fn value(&self) -> Tensor<B, 2> {
        self.value.clone()
    }

    /// Moves the centre toward the batch mean of the teacher's raw logits `[m, K]`.
    pub fn update(&mut self, teacher_logits: Tensor<B, 2>) {
        let batch = teacher_logits.mean_dim(0);
        self.value = self.value.clone().mul_scalar(self.momentum) + batch.mul_scalar(1.0 - self.momentum);
    }

    /// Replaces the centre (resuming), `[1, K]`.
    pub fn set(&mut self, value: Tensor<B, 2>) {
        self.value = value;
    }
}
