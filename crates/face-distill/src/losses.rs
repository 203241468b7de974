//! Distillation losses. Each returns a one-element tensor (the batch mean) so the terms can be
//! weighted and summed before one backward pass.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use face_nets::l2_normalize;

/// Small constant guarding norms and logarithms.
const EPS: f64 = 1e-12;

/// Identity distillation `mean_i (1 − cos(s_i, t_i))`, in `[0, 2]`; both `[N, D]` inputs are
/// normalised here, so raw embeddings are fine.
pub fn identity_cosine<B: Backend>(student: Tensor<B, 2>, teacher: Tensor<B, 2>) -> Tensor<B, 1> {
    let cos = (l2_normalize(student, EPS) * l2_normalize(teacher, EPS)).sum_dim(1);
    (cos.neg() + 1.0).mean()
}

/// Relational KD: the mean squared difference between the student's and the teacher's
/// pairwise cosine-similarity matrices, over the `N(N−1)` off-diagonal entries. Zero for `N < 2`.
pub fn relational<B: Backend>(student: Tensor<B, 2>, teacher: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, _] = student.dims();
    let device = student.device();
    if n < 2 {
        return Tensor::zeros([1], &device);
    }
    let s = l2_normalize(student, EPS);
    let t = l2_normalize(teacher, EPS);
    let gs = s.clone().matmul(s.transpose());
    let gt = t.clone().matmul(t.transpose());
    // The diagonals are 1 in both, so they add nothing to the sum.
    let sq = (gs - gt).powi_scalar(2).sum();
    sq / (n * (n - 1)) as f64
}

/// Age distillation `mean_i KL(p_i ‖ softmax(z_i))` over the bins, with `0·ln 0 = 0`
/// (`logits` and `teacher_probs` are `[N, bins]`).
pub fn age_kl<B: Backend>(logits: Tensor<B, 2>, teacher_probs: Tensor<B, 2>) -> Tensor<B, 1> {
    let [n, _] = logits.dims();
    let log_q = log_softmax(logits, 1);
    let p_log_p = teacher_probs.clone() * teacher_probs.clone().clamp_min(1e-30).log();
    let kl = (p_log_p - teacher_probs * log_q).sum();
    kl / n as f64
}

/// The expected age `Σ_j softmax(z)_j · bins_j`: `[N, bins]` logits → `[N]` years.
pub fn expected_age<B: Backend>(logits: Tensor<B, 2>, bins: Tensor<B, 1>) -> Tensor<B, 1> {
    let [n, k] = logits.dims();
    (burn::tensor::activation::softmax(logits, 1) * bins.reshape([1, k]))
        .sum_dim(1)
        .reshape([n])
}

/// Age distillation on the expected age, `mean_i |E_student − E_teacher|` in years.
pub fn age_l1<B: Backend>(
    logits: Tensor<B, 2>,
    teacher_age: Tensor<B, 1>,
    bins: Tensor<B, 1>,
) -> Tensor<B, 1> {
    (expected_age(logits, bins) - teacher_age).abs().mean()
}

/// Gender distillation: binary cross-entropy of the student logit `z` against the teacher's
/// probability `p`, `mean_i softplus(z_i) − p_i·z_i` (the numerically stable form of
/// `−p ln σ(z) − (1−p) ln(1−σ(z))`).
pub fn gender_bce<B: Backend>(logit: Tensor<B, 1>, teacher_p: Tensor<B, 1>) -> Tensor<B, 1> {
    let softplus = logit.clone().clamp_min(0.0) + logit.clone().abs().neg().exp().log1p();
    (softplus - teacher_p * logit).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    fn t2(rows: &[&[f32]]) -> Tensor<B, 2> {
        let n = rows.len();
        let d = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(burn::tensor::TensorData::new(flat, [n, d]), &Default::default())
    }

    fn t1(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_floats(v, &Default::default())
    }

    fn scalar(t: &Tensor<B, 1>) -> f64 {
        f64::from(t.clone().into_scalar())
    }

    #[test]
    fn identity_cosine_by_hand() {
        // Row 0: (3,4) vs (4,3) → cos 24/25; row 1: (1,0) vs (−2,0) → cos −1.
        // mean(1 − 0.96, 1 + 1) = 1.02.
        let l = identity_cosine(t2(&[&[3.0, 4.0], &[1.0, 0.0]]), t2(&[&[4.0, 3.0], &[-2.0, 0.0]]));
        assert!((scalar(&l) - 1.02).abs() < 1e-6);
        let same = identity_cosine(t2(&[&[0.6, 0.8]]), t2(&[&[6.0, 8.0]]));
        assert!(scalar(&same).abs() < 1e-6);
    }

    #[test]
    fn relational_by_hand() {
        // Student rows e1, e2 (cos 0); teacher rows e1, (e1+e2)/√2 (cos 1/√2).
        // Off-diagonal entries differ by 1/√2 twice: (0.5 + 0.5) / (2·1) = 0.5.
        let s = t2(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let t = t2(&[&[1.0, 0.0], &[1.0, 1.0]]);
        assert!((scalar(&relational(s.clone(), t)) - 0.5).abs() < 1e-6);
        // Invariant to a rotation of the student: only relations count.
        let rotated = t2(&[&[0.0, 1.0], &[-1.0, 0.0]]);
        assert!(scalar(&relational(s, rotated)).abs() < 1e-6);
        assert_eq!(scalar(&relational(t2(&[&[1.0, 0.0]]), t2(&[&[0.0, 1.0]]))), 0.0);
    }

    #[test]
    fn age_kl_by_hand() {
        // p = (0.5, 0.5, 0), student logits (0, ln 3, 0) → q = (0.2, 0.6, 0.2).
        // KL = 0.5 ln(0.5/0.2) + 0.5 ln(0.5/0.6) + 0 = 0.5·0.916291 − 0.5·0.182322 = 0.366985.
        let l = age_kl(t2(&[&[0.0, 3f32.ln(), 0.0]]), t2(&[&[0.5, 0.5, 0.0]]));
        assert!((scalar(&l) - 0.366_985).abs() < 1e-5, "{}", scalar(&l));
        // Matching distributions give 0.
        let z = [0.3f32, -1.0, 2.0];
        let m = z.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        let p: Vec<f32> = e.iter().map(|v| v / s).collect();
        assert!(scalar(&age_kl(t2(&[&z]), t2(&[&p]))).abs() < 1e-6);
    }

    #[test]
    fn age_l1_by_hand() {
        // Uniform over bins (10, 20, 60) → 30 years; teacher 25 → |30 − 25| = 5.
        // Second row: all mass on 60 (large logit) vs teacher 70 → 10. Mean 7.5.
        let logits = t2(&[&[0.0, 0.0, 0.0], &[-50.0, -50.0, 50.0]]);
        let l = age_l1(logits.clone(), t1(&[25.0, 70.0]), t1(&[10.0, 20.0, 60.0]));
        assert!((scalar(&l) - 7.5).abs() < 1e-4, "{}", scalar(&l));
        let e = expected_age(logits, t1(&[10.0, 20.0, 60.0]))
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!((e[0] - 30.0).abs() < 1e-4 && (e[1] - 60.0).abs() < 1e-4);
    }

    #[test]
    fn gender_bce_by_hand() {
        // z = 0, p = 0.3 → ln 2 = 0.693147; z = 2, p = 1 → ln(1 + e^−2) = 0.126928;
        // z = −30, p = 0 → ln(1 + e^−30) ≈ 9.4e-14 (no overflow). Mean 0.273358.
        let l = gender_bce(t1(&[0.0, 2.0, -30.0]), t1(&[0.3, 1.0, 0.0]));
        assert!((scalar(&l) - 0.273_358).abs() < 1e-5, "{}", scalar(&l));
        let big = gender_bce(t1(&[80.0]), t1(&[0.0]));
        assert!((scalar(&big) - 80.0).abs() < 1e-3, "{}", scalar(&big));
    }
}
