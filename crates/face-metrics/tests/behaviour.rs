//! Hand-checked values and bad-input cases for the public API.

use face_metrics::*;

fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.expect_err("must be an error").to_string()
}

#[test]
fn bad_scores_are_typed_errors_naming_the_value() {
    let nan = VerificationScores::from_pairs(vec![0.1, f64::NAN], vec![true, false]);
    assert!(matches!(nan, Err(MetricsError::NonFinite { index: 1, .. })));
    // A bad genuine score is reported at its row of the input, not of the genuine subset.
    let nan_genuine = VerificationScores::from_pairs(vec![0.1, 0.2, f64::NAN], vec![false, false, true]);
    assert!(matches!(
        nan_genuine,
        Err(MetricsError::NonFinite { index: 2, .. })
    ));
    let inf = VerificationScores::from_split(&[0.2], vec![f64::INFINITY]);
    assert!(err_text(inf).contains("index 0 is not finite (inf)"));
    let len = roc_curve(&[0.1, 0.2], &[true], RocOptions::default());
    assert!(matches!(
        len,
        Err(MetricsError::LengthMismatch {
            expected: 2,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        VerificationScores::from_pairs(vec![0.1, 0.2], vec![false, false]),
        Err(MetricsError::NoGenuine { .. })
    ));
    assert!(matches!(
        mann_whitney_auc(&[0.1], &[true]),
        Err(MetricsError::NoImpostor { .. })
    ));
    assert!(matches!(
        roc_curve(&[], &[], RocOptions::default()),
        Err(MetricsError::Empty { .. })
    ));
}

#[test]
fn far_targets_outside_unit_interval_are_rejected() {
    let v = VerificationScores::from_split(&[0.9], vec![0.1]).unwrap();
    for bad in [0.0, -1e-3, 1.5, f64::NAN] {
        for conv in FarConvention::ALL {
            assert!(matches!(
                v.tar_at_far(&[1e-3, bad], conv),
                Err(MetricsError::InvalidRate { .. })
            ));
        }
    }
    assert!(v.tar_at_far(&[1.0], FarConvention::Nearest).is_ok());
}

#[test]
fn hand_checked_tar_at_far() {
    // genuine 0.9 0.8 0.6 0.4 | impostor 0.85 0.5 0.3 0.2 0.1 0.0 0.0 0.0 0.0 0.0
    let gen = [0.9, 0.8, 0.6, 0.4];
    let imp = [0.85, 0.5, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0];
    let v = VerificationScores::from_split(&gen, &imp[..]).unwrap();
    // FAR ≤ 0.1 allows one impostor: threshold 0.6 accepts 0.9 0.8 0.6 and 0.85.
    let at_most = v.tar_at_far(&[0.1], FarConvention::AtMost).unwrap()[0];
    assert_eq!((at_most.tar, at_most.far, at_most.threshold), (0.75, 0.1, 0.6));
    // k = round(10 * 0.1) = 1: threshold = 0.85 accepts only 0.9.
    let kth = v.tar_at_far(&[0.1], FarConvention::KthNegative).unwrap()[0];
    assert_eq!((kth.tar, kth.far, kth.threshold), (0.25, 0.1, 0.85));
    // Nearest to 0.1: FPR 0.1 is reached at 0.85 and stays until 0.6 (top of
    // the vertical segment): TPR 0.75.
    let near = v.tar_at_far(&[0.1], FarConvention::Nearest).unwrap()[0];
    assert_eq!((near.tar, near.far, near.threshold), (0.75, 0.1, 0.6));
    // k = 0 at tiny FAR: just above the top impostor.
    let k0 = v.tar_at_far(&[1e-6], FarConvention::KthNegative).unwrap()[0];
    assert_eq!((k0.tar, k0.far, k0.threshold), (0.25, 0.0, 0.85f64.next_up()));
    // AUC: impostor 0.85 loses to 1 genuine, 0.5 to 3, the rest to 4 → (3+1+32)/40
    assert_eq!(v.auc(), 36.0 / 40.0);
    assert_eq!(v.fnmr_at_fmr(&[0.1], FarConvention::AtMost).unwrap(), vec![0.25]);
}

#[test]
fn eer_interval_brackets_the_crossing() {
    // Symmetric: genuine 1..=4, impostor 0..=3 (as 0.1 steps).
    let gen = [0.1, 0.2, 0.3, 0.4];
    let imp = [0.0, 0.1, 0.2, 0.3];
    let e = VerificationScores::from_split(&gen, &imp[..]).unwrap().eer();
    // Full curve: (FAR, FRR) = (0.25, 0.5) at 0.3, then (0.5, 0.25) at 0.2: the
    // straight line between them crosses FAR = FRR at 0.375.
    assert!((e.eer - 0.375).abs() < 1e-12, "{e:?}");
    assert_eq!((e.lower, e.upper, e.threshold), (0.25, 0.5, 0.2));
    assert!(e.lower <= e.eer && e.eer <= e.upper);
}

#[test]
fn det_points_are_probits_of_the_rates() {
    let gen: Vec<f64> = (0..100).map(|i| 0.3 + i as f64 / 150.0).collect();
    let imp: Vec<f64> = (0..1000).map(|i| i as f64 / 1500.0).collect();
    let v = VerificationScores::from_split(&gen, imp).unwrap();
    let det = v.det_points();
    assert!(!det.is_empty());
    for p in det {
        assert!((p.x - probit(p.far)).abs() < 1e-15 && (p.y - probit(p.frr)).abs() < 1e-15);
        assert!(p.far > 0.0 && p.far < 1.0 && p.frr > 0.0 && p.frr < 1.0);
    }
}

#[test]
fn identification_cmc_and_tpir() {
    // 4 probes × 3 gallery (ids 1 2 3). Probe id 9 is non-mated.
    #[rustfmt::skip]
    let sim = [
        0.9, 0.1, 0.2, // id 1: rank 1
        0.5, 0.4, 0.1, // id 2: beaten by id 1 → rank 2
        0.1, 0.2, 0.3, // id 3: rank 1
        0.6, 0.2, 0.1, // id 9: non-mated, top 0.6
    ];
    let probes = [1, 2, 3, 9];
    let gallery = [1, 2, 3];
    assert_eq!(
        cmc(&sim, &probes, &gallery, 3).unwrap(),
        vec![2.0 / 3.0, 1.0, 1.0]
    );
    assert_eq!(top_n_accuracy(&sim, &probes, &gallery, 1).unwrap(), 2.0 / 3.0);
    // FPIR ≤ 0.5 with one non-mated probe: k = 0, threshold just above 0.6:
    // only probe 1 (0.9, rank 1) is a hit.
    let r = tpir_at_fpir(&sim, &probes, &gallery, &[0.5, 1.0], 1).unwrap();
    assert_eq!((r[0].tpir, r[0].fpir), (1.0 / 3.0, 0.0));
    assert_eq!(r[0].threshold, f64::from(0.6f32).next_up());
    // FPIR ≤ 1 accepts everything: rank-1 hits 2 of 3.
    assert_eq!((r[1].tpir, r[1].fpir), (2.0 / 3.0, 1.0));
    // Tie with a wrong identity counts against the probe.
    let tie = [0.5, 0.5];
    assert_eq!(cmc(&tie, &[2], &[1, 2], 2).unwrap(), vec![0.0, 1.0]);
    assert!(matches!(
        cmc(&sim[..11], &probes, &gallery, 1),
        Err(MetricsError::LengthMismatch { .. })
    ));
    assert!(matches!(
        cmc(&sim, &probes, &gallery, 0),
        Err(MetricsError::InvalidParameter { .. })
    ));
    assert!(matches!(
        cmc(&sim[..3], &[9], &gallery, 1),
        Err(MetricsError::Empty { .. })
    ));
    assert!(matches!(
        tpir_at_fpir(&sim[..9], &probes[..3], &gallery, &[0.1], 1),
        Err(MetricsError::NoImpostor { .. })
    ));
}

#[test]
fn attributes_hand_checked() {
    assert_eq!(age_mae(&[20.0, 30.0, 50.0], &[25.0, 30.0, 40.0]).unwrap(), 5.0);
    assert_eq!(
        cumulative_score(&[20.0, 30.0, 50.0], &[25.0, 30.0, 40.0], 5.0).unwrap(),
        2.0 / 3.0
    );
    assert!(matches!(
        age_mae(&[1.0], &[1.0, 2.0]),
        Err(MetricsError::LengthMismatch { .. })
    ));
    assert!(matches!(
        age_mae(&[f64::NAN], &[1.0]),
        Err(MetricsError::NonFinite { .. })
    ));
    assert!(cumulative_score(&[1.0], &[1.0], -1.0).is_err());
    assert!(gender_accuracy(&[1.2], &[true]).is_err());
    assert!(gender_accuracy(&[f64::NAN], &[true]).is_err());
    let cm = ConfusionMatrix::new(&[0, 2, 1, 1], &[0, 1, 1, 2], 3).unwrap();
    assert_eq!(cm.counts, vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 1, 0]]);
    assert_eq!(cm.recall()[1], 0.5);
    assert!(matches!(
        ConfusionMatrix::new(&[0, 3], &[0, 1], 3),
        Err(MetricsError::ClassOutOfRange {
            index: 1,
            label: 3,
            ..
        })
    ));
}

#[test]
fn irauc_skips_single_class_batches_and_smooths() {
    let mut m = IrAucMonitor::new(Smoothing::Ema { alpha: 0.5 }).unwrap();
    // Perfect batch (AUC 1), then a batch with the two identities swapped in
    // direction so the genuine pairs score lowest (AUC 0).
    let good = [1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9];
    let s1 = m.update(&good, 2, &[0, 0, 1, 1]).unwrap();
    assert_eq!(s1.running_auc, Some(1.0));
    // Relabelled: genuine pairs (a,c) = 0 and (b,d) ≈ 0.22 against impostors
    // ≈ 0.99, 0.11, 0.11, 0.99: 2 wins of 8.
    let s2 = m.update(&good, 2, &[0, 1, 0, 1]).unwrap();
    assert_eq!(s2.batch.unwrap().auc, 0.25);
    assert_eq!(s2.running_auc, Some(0.625));
    assert_eq!(m.ir_auc(), Some(0.375));
    let s3 = m.update(&good, 2, &[3, 3, 3, 3]).unwrap();
    assert!(s3.batch.is_none());
    assert_eq!(
        s3.running_auc,
        Some(0.625),
        "a skipped batch leaves the running AUC alone"
    );
    assert_eq!(m.skipped(), 1);
    assert_eq!(m.history().len(), 3);
    // The pooled AUC of both scored batches, against the exact Mann–Whitney.
    let mut scorer = PairwiseBatchAuc::new();
    let (mut all, mut labels) = (Vec::new(), Vec::new());
    for l in [[0, 0, 1, 1], [0, 1, 0, 1]] {
        let (g, i) = scorer.pair_scores(&good, 2, &l).unwrap();
        labels.extend(g.iter().map(|_| true).chain(i.iter().map(|_| false)));
        all.extend(g.into_iter().chain(i));
    }
    let exact = mann_whitney_auc(&all, &labels).unwrap();
    let (global, bound) = m.global_auc().unwrap();
    assert!(
        (global - exact).abs() <= bound + 1e-12,
        "{global} vs {exact} ± {bound}"
    );
    assert!(exact > 0.0 && exact < 1.0);

    let mut w = RunningAuc::new(Smoothing::Window { n: 2 }).unwrap();
    assert_eq!(w.value(), None);
    w.update(1.0);
    w.update(0.5);
    assert_eq!(w.update(0.0), 0.25);
    assert!(RunningAuc::new(Smoothing::Window { n: 0 }).is_err());
    assert!(RunningAuc::new(Smoothing::Ema { alpha: 0.0 }).is_err());
    assert!(RunningAuc::new(Smoothing::Ema { alpha: f64::NAN }).is_err());
}

#[test]
fn batch_auc_rejects_bad_embeddings() {
    let mut p = PairwiseBatchAuc::new();
    assert!(matches!(
        p.compute(&[1.0, 0.0, 0.0, 0.0], 2, &[0, 1]),
        Err(MetricsError::DegenerateEmbedding { row: 1, .. })
    ));
    assert!(matches!(
        p.compute(&[1.0, 0.0, 1.0], 2, &[0, 1]),
        Err(MetricsError::LengthMismatch { .. })
    ));
    assert!(matches!(
        p.compute(&[1.0, f32::NAN], 1, &[0, 1]),
        Err(MetricsError::NonFinite { index: 1, .. })
    ));
    assert!(p.compute(&[1.0, 2.0], 0, &[0, 1]).is_err());
    assert!(p.compute(&[1.0, 2.0], 2, &[0]).is_err());
}

#[test]
fn per_group_reports_gap_and_propagates_errors() {
    let scores = [0.9, 0.1, 0.8, 0.2, 0.7, 0.75];
    let genuine = [true, false, true, false, true, false];
    let groups = ["f", "f", "m", "m", "x", "x"];
    let auc_of = |idx: &[usize]| {
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        let g: Vec<bool> = idx.iter().map(|&i| genuine[i]).collect();
        mann_whitney_auc(&s, &g)
    };
    let b = per_group(&groups, auc_of).unwrap();
    assert_eq!(b.max, ("f".to_string(), 1.0));
    assert_eq!(b.min, ("x".to_string(), 0.0));
    assert_eq!((b.gap, b.ratio), (1.0, f64::INFINITY));
    assert_eq!(b.sizes["m"], 2);
    let missing = per_group(&["a", "b"], |idx| mann_whitney_auc(&[0.5], &[idx[0] == 0]));
    assert!(matches!(missing, Err(MetricsError::NoImpostor { .. })));
    assert!(per_group::<&str, _>(&[], |_| Ok(0.0)).is_err());
}

#[test]
fn report_round_trips_and_plots_are_svg() {
    let gen: Vec<f64> = (0..200).map(|i| 0.2 + (i as f64 * 0.37) % 0.8).collect();
    let imp: Vec<f64> = (0..5000).map(|i| -0.3 + (i as f64 * 0.013) % 0.7).collect();
    let v = VerificationScores::from_split(&gen, imp).unwrap();
    let report = VerificationReport::new("synthetic", &v, &DEFAULT_FAR_TARGETS).unwrap();
    assert_eq!(report.tar_at_far.len(), 18);
    assert!(report.summary().contains("Nearest"));
    let dir = std::env::temp_dir().join(format!("face-metrics-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    report.write_json(&json).unwrap();
    assert_eq!(VerificationReport::read_json(&json).unwrap(), report);
    let roc = dir.join("roc.svg");
    write_roc_svg(&roc, "ROC", &[("synthetic", &report.roc)], 1e-4).unwrap();
    let det = dir.join("det.svg");
    write_det_svg(&det, "DET", &[("synthetic", &report.det)]).unwrap();
    for p in [&roc, &det] {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("polyline"),
            "{}",
            p.display()
        );
    }
    assert!(matches!(
        write_roc_svg(dir.join("bad.svg"), "x", &[], 0.0),
        Err(MetricsError::InvalidRate { .. })
    ));
    let unwritable = write_roc_svg(dir.join("no/such/dir/roc.svg"), "x", &[], 1e-3);
    assert!(matches!(unwritable, Err(MetricsError::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn threshold_accuracy_counts_both_sides() {
    let s = [0.9, 0.7, 0.65, 0.2, 0.61];
    let g = [true, true, false, false, true];
    // t = 0.6: all genuine above, impostor 0.65 wrongly above → 4/5.
    assert_eq!(threshold_accuracy(&s, &g, 0.6).unwrap(), 0.8);
    // t = 0.7 strict: genuine 0.7 and 0.61 fail → 3/5.
    assert_eq!(threshold_accuracy(&s, &g, 0.7).unwrap(), 0.6);
    assert!(threshold_accuracy(&s, &g, f64::NAN).is_err());
}

#[test]
fn curve_plot_uses_a_log_axis_and_refuses_nothing_to_draw() {
    let dir = std::env::temp_dir().join(format!("face-metrics-curve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ir = [(1.0, 0.3), (2.0, 0.05), (3.0, 0.0), (4.0, 0.004)];
    let path = dir.join("irauc.svg");
    write_curve_svg(&path, "irAUC", ("epoch", "irAUC"), &[("val", &ir)], true).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("<svg") && text.contains("polyline"));
    // Decade labels of the log axis appear (the zero point is dropped, not drawn at -inf).
    assert!(text.contains("e-2") || text.contains("e-3"), "no log labels");
    // Only a zero: nothing can go on a log axis.
    let only_zero = [(1.0, 0.0)];
    assert!(matches!(
        write_curve_svg(dir.join("z.svg"), "x", ("a", "b"), &[("z", &only_zero)], true),
        Err(MetricsError::Plot { .. })
    ));
    // The same point is fine on a linear axis.
    write_curve_svg(dir.join("lin.svg"), "x", ("a", "b"), &[("z", &only_zero)], false).unwrap();
}
