//! Property tests: invariants of the metrics, and the fast slot-indexed path
//! against brute-force implementations written from the definitions on top of
//! the exact ROC.

use face_metrics::{
    mann_whitney_auc, roc_curve, FarConvention, RocOptions, StreamingAuc, VerificationScores,
    DEFAULT_FAR_TARGETS,
};
use proptest::prelude::*;

/// Scores on a coarse grid (many ties, including genuine–impostor ties) with at
/// least one genuine and one impostor.
fn tied_pairs() -> impl Strategy<Value = (Vec<f64>, Vec<bool>)> {
    (1usize..40, 1usize..200, 2u32..60).prop_flat_map(|(n_gen, n_imp, levels)| {
        let score = (0..levels).prop_map(move |k| k as f64 / levels as f64 - 0.25);
        (
            prop::collection::vec(score.clone(), n_gen),
            prop::collection::vec(score, n_imp),
        )
            .prop_map(|(g, i)| {
                let labels = g.iter().map(|_| true).chain(i.iter().map(|_| false)).collect();
                (g.into_iter().chain(i).collect(), labels)
            })
    })
}

/// Continuous scores (ties improbable).
fn continuous_pairs() -> impl Strategy<Value = (Vec<f64>, Vec<bool>)> {
    (
        prop::collection::vec(-1.0f64..1.0, 1..50),
        prop::collection::vec(-1.0f64..1.0, 1..300),
    )
        .prop_map(|(g, i)| {
            let labels = g.iter().map(|_| true).chain(i.iter().map(|_| false)).collect();
            (g.into_iter().chain(i).collect(), labels)
        })
}

/// insightface's rule on the exact scikit-learn curve: nearest FPR, ties to the
/// larger index (larger TPR).
fn brute_nearest(scores: &[f64], genuine: &[bool], far: f64) -> (f64, f64, f64) {
    let roc = roc_curve(scores, genuine, RocOptions::default()).unwrap();
    let mut best = 0;
    for i in 0..roc.len() {
        if (roc.fpr[i] - far).abs() <= (roc.fpr[best] - far).abs() {
            best = i;
        }
    }
    (roc.tpr[best], roc.fpr[best], roc.thresholds[best])
}

fn brute_at_most(scores: &[f64], genuine: &[bool], far: f64) -> f64 {
    let roc = roc_curve(
        scores,
        genuine,
        RocOptions {
            drop_intermediate: false,
        },
    )
    .unwrap();
    (0..roc.len())
        .filter(|&i| roc.fpr[i] <= far)
        .map(|i| roc.tpr[i])
        .fold(0.0, f64::max)
}

fn brute_kth(scores: &[f64], genuine: &[bool], far: f64) -> (f64, f64) {
    let mut imp: Vec<f64> = scores
        .iter()
        .zip(genuine)
        .filter(|(_, &g)| !g)
        .map(|(&s, _)| s)
        .collect();
    imp.sort_by(|a, b| b.total_cmp(a));
    let k = ((far * imp.len() as f64).round() as usize).min(imp.len());
    let t = if k == 0 { imp[0].next_up() } else { imp[k - 1] };
    let n_gen = genuine.iter().filter(|&&g| g).count();
    let acc = scores.iter().zip(genuine).filter(|(&s, &g)| g && s >= t).count();
    (acc as f64 / n_gen as f64, t)
}

const TARGETS: [f64; 10] = [1e-6, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.33, 0.5, 0.75, 1.0];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn fast_path_equals_brute_force_with_ties((scores, genuine) in tied_pairs()) {
        let v = VerificationScores::from_pairs(&scores[..], &genuine[..]).unwrap();
        let roc_auc = roc_curve(&scores, &genuine, RocOptions::default()).unwrap().auc().unwrap();
        prop_assert!((v.auc() - roc_auc).abs() < 1e-12);
        for (r, &far) in v.tar_at_far(&TARGETS, FarConvention::Nearest).unwrap().iter().zip(&TARGETS) {
            let (tar, f, t) = brute_nearest(&scores, &genuine, far);
            prop_assert_eq!((r.tar, r.far, r.threshold), (tar, f, t), "nearest @ {}", far);
        }
        for (r, &far) in v.tar_at_far(&TARGETS, FarConvention::AtMost).unwrap().iter().zip(&TARGETS) {
            prop_assert_eq!(r.tar, brute_at_most(&scores, &genuine, far), "at_most @ {}", far);
            prop_assert!(r.far <= far);
        }
        for (r, &far) in v.tar_at_far(&TARGETS, FarConvention::KthNegative).unwrap().iter().zip(&TARGETS) {
            prop_assert_eq!((r.tar, r.threshold), brute_kth(&scores, &genuine, far), "kth @ {}", far);
        }
        let e = v.eer();
        prop_assert!(e.lower <= e.eer + 1e-12 && e.eer <= e.upper + 1e-12, "{:?}", e);
    }

    #[test]
    fn auc_in_unit_interval_and_antisymmetric((scores, genuine) in continuous_pairs()) {
        let auc = mann_whitney_auc(&scores, &genuine).unwrap();
        prop_assert!((0.0..=1.0).contains(&auc));
        let negated: Vec<f64> = scores.iter().map(|s| -s).collect();
        let flipped = mann_whitney_auc(&negated, &genuine).unwrap();
        prop_assert!((auc + flipped - 1.0).abs() < 1e-12);
    }

    #[test]
    fn tar_is_monotone_in_far((scores, genuine) in tied_pairs()) {
        let v = VerificationScores::from_pairs(&scores[..], &genuine[..]).unwrap();
        for conv in [FarConvention::AtMost, FarConvention::KthNegative] {
            let r = v.tar_at_far(&TARGETS, conv).unwrap();
            for w in r.windows(2) {
                prop_assert!(w[0].tar <= w[1].tar, "{:?}: {:?}", conv, w);
            }
        }
    }

    #[test]
    fn streaming_auc_equals_batch_auc_on_the_union(
        batches in prop::collection::vec(((1usize..20, 1usize..40), any::<u64>()), 1..8)
    ) {
        // Scores on the accumulator's bin grid: the streamed AUC is then exact.
        let bins = 512usize;
        let mut acc = StreamingAuc::new(-1.0, 1.0, bins).unwrap();
        let (mut all, mut labels) = (Vec::new(), Vec::new());
        for ((g, i), seed) in batches {
            let grid = |k: u64| -1.0 + ((k % bins as u64) as f64 + 0.5) * 2.0 / bins as f64;
            let gen: Vec<f64> = (0..g as u64).map(|j| grid(seed.wrapping_mul(j + 7) >> 7)).collect();
            let imp: Vec<f64> = (0..i as u64).map(|j| grid(seed.wrapping_mul(j + 3) >> 9)).collect();
            acc.add(&gen, &imp);
            labels.extend(gen.iter().map(|_| true).chain(imp.iter().map(|_| false)));
            all.extend(gen.into_iter().chain(imp));
        }
        let (auc, bound) = acc.auc().unwrap();
        let exact = mann_whitney_auc(&all, &labels).unwrap();
        prop_assert!((auc - exact).abs() < 1e-12, "{} vs {}", auc, exact);
        prop_assert!(bound >= 0.0);
    }

    #[test]
    fn streaming_auc_error_is_within_its_bound((scores, genuine) in continuous_pairs()) {
        let mut acc = StreamingAuc::new(-1.0, 1.0, 64).unwrap();
        let gen: Vec<f64> = scores.iter().zip(&genuine).filter(|(_, &g)| g).map(|(&s, _)| s).collect();
        let imp: Vec<f64> = scores.iter().zip(&genuine).filter(|(_, &g)| !g).map(|(&s, _)| s).collect();
        acc.add(&gen, &imp);
        let (auc, bound) = acc.auc().unwrap();
        let exact = mann_whitney_auc(&scores, &genuine).unwrap();
        prop_assert!((auc - exact).abs() <= bound + 1e-12, "{} vs {} (bound {})", auc, exact, bound);
    }
}

#[test]
fn default_targets_are_the_ijb_table() {
    assert_eq!(DEFAULT_FAR_TARGETS, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]);
}
