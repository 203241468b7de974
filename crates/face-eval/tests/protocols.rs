//! Protocols against the numpy/scikit-learn reference (tools/reference_eval.py)
//! and hand-checked cases.

use std::path::Path;

use face_data::formats::celeba::CelebaAttributes;
use face_data::formats::ijb::{IjbFace, TemplatePair};
use face_data::formats::lfw::LfwPairs;
use face_data::pairs::{Pair, PairList};
use face_eval::attributes::{attribute_table, NamedPair};
use face_eval::identify::identify;
use face_eval::ijb::{evaluate, template_features, ImageFeatures, TemplateOptions};
use face_eval::lfw::lfw_10fold;
use face_eval::pairs::pairs_report;
use face_eval::{read_npy_f32, write_npy_f32, Embeddings};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn ijb_template_aggregation_matches_insightface_in_all_eight_settings() {
    let fx = fixture("ijb.json");
    let dim = fx["dim"].as_u64().unwrap() as usize;
    let faces: Vec<IjbFace> = fx["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| IjbFace {
            image: f["image"].as_str().unwrap().into(),
            template: f["template"].as_u64().unwrap() as u32,
            media: f["media"].as_u64().unwrap() as u32,
        })
        .collect();
    let faceness = f32s(&fx["faceness"]);
    let feats = f32s(&fx["features"]);
    let pairs: Vec<TemplatePair> = fx["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| TemplatePair {
            a: p[0].as_u64().unwrap() as u32,
            b: p[1].as_u64().unwrap() as u32,
            genuine: p[2].as_u64().unwrap() == 1,
        })
        .collect();
    let features = ImageFeatures {
        data: &feats,
        width: 2 * dim,
        flipped_halves: true,
    };
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let options = TemplateOptions {
            norm: case["norm"].as_bool().unwrap(),
            detector_score: case["detector_score"].as_bool().unwrap(),
            flip: case["flip"].as_bool().unwrap(),
        };
        let t = template_features(&faces, &faceness, features, options).unwrap();
        let want_t: Vec<u32> = case["templates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(t.templates, want_t);
        for (a, b) in t.data.iter().zip(f32s(&case["features"])) {
            assert!((a - b).abs() < 1e-6, "{}: feature {a} vs {b}", options.label());
        }
        let s = t.score(&pairs).unwrap();
        for (a, b) in s.iter().zip(f32s(&case["scores"])) {
            assert!((a - b).abs() < 1e-5, "{}: score {a} vs {b}", options.label());
        }
    }
    // The default is insightface's reported setting, and evaluate() reports on the same scores.
    assert_eq!(TemplateOptions::default().label(), "N1D1F1");
    let (report, scores) = evaluate(
        "IJB-C",
        &faces,
        &faceness,
        features,
        &pairs,
        TemplateOptions::default(),
        &[1e-2, 1e-1],
    )
    .unwrap();
    assert_eq!(report.name, "IJB-C N1D1F1");
    assert_eq!(report.n_genuine + report.n_impostor, pairs.len() as u64);
    assert_eq!(
        scores,
        template_features(&faces, &faceness, features, TemplateOptions::default())
            .unwrap()
            .score(&pairs)
            .unwrap()
    );
    // Bad input.
    let no_flip = ImageFeatures {
        data: &feats,
        width: 2 * dim,
        flipped_halves: false,
    };
    let e = template_features(&faces, &faceness, no_flip, TemplateOptions::default()).unwrap_err();
    assert!(e.to_string().contains("flip"), "{e}");
    assert!(template_features(&faces, &faceness[1..], features, TemplateOptions::default()).is_err());
    let bad_pair = [TemplatePair {
        a: 1,
        b: 999,
        genuine: true,
    }];
    let e = template_features(&faces, &faceness, features, TemplateOptions::default())
        .unwrap()
        .score(&bad_pair)
        .unwrap_err();
    assert!(e.to_string().contains("pair 1 (1, 999)"), "{e}");
}

#[test]
fn lfw_ten_fold_matches_the_reference_rule() {
    let fx = fixture("lfw.json");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let pairs = LfwPairs::read(&dir.join("lfw_pairs.txt")).unwrap();
    let scores: Vec<f64> = fx["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let far = fx["far_target"].as_f64().unwrap();
    let r = lfw_10fold(&pairs, &scores, far).unwrap();
    for (got, want) in r.folds.iter().zip(fx["folds"].as_array().unwrap()) {
        for (g, key) in [
            (got.threshold, "threshold"),
            (got.accuracy, "accuracy"),
            (got.val_threshold, "val_threshold"),
            (got.val, "val"),
            (got.far, "far"),
        ] {
            assert!(
                (g - want[key].as_f64().unwrap()).abs() < 1e-12,
                "{key}: {g} vs {}",
                want[key]
            );
        }
    }
    assert!((r.accuracy - fx["accuracy"].as_f64().unwrap()).abs() < 1e-12);
    assert!((r.accuracy_std - fx["accuracy_std"].as_f64().unwrap()).abs() < 1e-12);
    assert!((r.val - fx["val"].as_f64().unwrap()).abs() < 1e-12);
    assert!(r.accuracy > 0.8 && r.accuracy < 1.0, "{}", r.summary());
    assert!(lfw_10fold(&pairs, &scores[1..], far).is_err());
    let mut nan = scores.clone();
    nan[3] = f64::NAN;
    assert!(lfw_10fold(&pairs, &nan, far)
        .unwrap_err()
        .to_string()
        .contains("pair 4"));
}

#[test]
fn grouped_pairs_report_per_group_and_gap() {
    // Group "a" separates perfectly; group "b" does not.
    let mk = |group: &str, genuine: bool, i: usize| Pair {
        group: group.into(),
        genuine,
        a: format!("{group}{i}a"),
        b: format!("{group}{i}b"),
    };
    let mut list = PairList::default();
    let mut scores = Vec::new();
    for i in 0..4 {
        list.pairs.push(mk("a", true, i));
        scores.push(0.8 + 0.01 * i as f64);
        list.pairs.push(mk("a", false, i));
        scores.push(0.1 + 0.01 * i as f64);
        list.pairs.push(mk("b", true, i));
        scores.push([0.9, 0.4, 0.7, 0.2][i]);
        list.pairs.push(mk("b", false, i));
        scores.push([0.3, 0.6, 0.1, 0.5][i]);
    }
    let r = pairs_report("balanced", &list, &scores, &[0.25], 0.25).unwrap();
    assert_eq!(r.groups.len(), 2);
    let (a, b) = (&r.groups[0], &r.groups[1]);
    assert_eq!((a.group.as_str(), a.n_genuine, a.n_impostor), ("a", 4, 4));
    assert_eq!(a.auc, Some(1.0));
    // Group b: genuine {0.9,0.4,0.7,0.2} vs impostor {0.3,0.6,0.1,0.5}: 11 of 16 pairs ordered right.
    assert!((b.auc.unwrap() - 11.0 / 16.0).abs() < 1e-12);
    let gap = &r.spread["auc"];
    assert_eq!(gap.max.0, "a");
    assert!((gap.gap - (1.0 - 11.0 / 16.0)).abs() < 1e-12);
    assert!(r.summary().contains("largest gap in auc"));
    // Accuracy at the common threshold, by hand (a pair matches at or above it).
    let t = r.threshold;
    let acc_b = (0..4).filter(|&i| [0.9, 0.4, 0.7, 0.2][i] >= t).count()
        + (0..4).filter(|&i| [0.3, 0.6, 0.1, 0.5][i] < t).count();
    assert!((b.accuracy - acc_b as f64 / 8.0).abs() < 1e-12);

    // Groups of one class get the rates that exist for them, at the same global thresholds.
    for (i, s) in [0.5, 0.95, 0.6].into_iter().enumerate() {
        list.pairs.push(mk("c", true, i)); // c: genuine pairs only
        scores.push(s);
    }
    for (i, s) in [0.65, 0.05, 0.61].into_iter().enumerate() {
        list.pairs.push(mk("x", false, i)); // x: cross-group impostors only
        scores.push(s);
    }
    let r = pairs_report("with one-class groups", &list, &scores, &[0.25], 0.3).unwrap();
    let by = |name: &str| r.groups.iter().find(|g| g.group == name).unwrap().clone();
    let (c, x) = (by("c"), by("x"));
    assert_eq!(
        (c.n_genuine, c.n_impostor, x.n_genuine, x.n_impostor),
        (3, 0, 0, 3)
    );
    assert_eq!(
        (c.auc, c.eer, c.fmr, x.auc, x.fnmr),
        (None, None, None, None, None)
    );
    assert!(c.tar_at_far.is_empty() && x.tar_at_far.is_empty());
    // The FAR threshold is the overall AtMost threshold: of the 11 impostors, 3 reach 0.6
    // (0.65, 0.61, 0.6: FAR 0.27 ≤ 0.3), 4 reach the next genuine score down, 0.5 (0.36).
    let genuine: Vec<bool> = list.pairs.iter().map(|p| p.genuine).collect();
    let all = face_metrics::VerificationScores::from_pairs(&scores[..], &genuine[..]).unwrap();
    let at_most = all
        .tar_at_far(&[0.3], face_metrics::FarConvention::AtMost)
        .unwrap();
    assert_eq!((r.far_threshold, at_most[0].threshold), (0.6, 0.6));
    // At 0.6: x's 0.65 and 0.61 match → FMR 2/3; c's 0.5 does not → FNMR 1/3; b's impostor 0.6
    // matches → FMR 1/4, its genuine 0.4 and 0.2 do not → FNMR 1/2; a makes no error.
    assert_eq!(x.fmr_at_far, Some(2.0 / 3.0));
    assert_eq!(c.fnmr_at_far, Some(1.0 / 3.0));
    assert_eq!((by("b").fmr_at_far, by("b").fnmr_at_far), (Some(0.25), Some(0.5)));
    assert_eq!((by("a").fmr_at_far, by("a").fnmr_at_far), (Some(0.0), Some(0.0)));
    let d = &r.differentials;
    let fmr = d.fmr_at_far.as_ref().unwrap();
    assert_eq!(
        (fmr.max.0.as_str(), fmr.min.0.as_str(), fmr.groups),
        ("x", "a", 3)
    );
    assert_eq!(
        fmr.ratio, None,
        "group a has FMR 0: the max/min ratio is unbounded"
    );
    let fnmr = d.fnmr_at_far.as_ref().unwrap();
    assert_eq!((fnmr.max.0.as_str(), fnmr.max.1, fnmr.groups), ("b", 0.5, 3));
    assert!(r.summary().contains("FMR at the FAR threshold"));
    // Without group a, the FNMR spread has a bounded ratio: b 1/2 over c 1/3.
    let keep: Vec<usize> = (0..list.pairs.len())
        .filter(|&i| list.pairs[i].group != "a")
        .collect();
    let sub = PairList {
        pairs: keep.iter().map(|&i| list.pairs[i].clone()).collect(),
    };
    let sub_scores: Vec<f64> = keep.iter().map(|&i| scores[i]).collect();
    let r2 = pairs_report("no a", &sub, &sub_scores, &[0.25], 0.3).unwrap();
    let f = r2.differentials.fnmr_at_far.unwrap();
    assert!(f.ratio.is_some_and(|q| q >= 1.0), "{f:?}");
}

#[test]
fn celeba_attribute_table_counts_pairs_sharing_an_attribute() {
    let text = "4\nSmiling Young\n1.jpg 1 -1\n2.jpg 1 1\n3.jpg -1 1\n4.jpg 1 1\n";
    let attrs = CelebaAttributes::parse(text, Path::new("list_attr_celeba.txt")).unwrap();
    let p = |a: &str, b: &str, g: bool| NamedPair {
        a: a.into(),
        b: b.into(),
        genuine: g,
    };
    let pairs = [
        p("1.jpg", "2.jpg", true),
        p("2.jpg", "4.jpg", false),
        p("3.jpg", "4.jpg", true),
        p("1.jpg", "3.jpg", false),
    ];
    let scores = [0.75, 0.65, 0.85, 0.2];
    let t = attribute_table(&pairs, &scores, &attrs, &[0.6, 0.7, 0.8]).unwrap();
    assert_eq!(t[0].attribute, "all");
    assert_eq!((t[0].pairs, t[0].genuine, t[0].impostor), (4, 2, 2));
    // all @0.7: 0.75 gen ✓, 0.65 imp ✓, 0.85 gen ✓, 0.2 imp ✓ → 1.0; @0.8: 0.75 gen ✗ → 0.75; @0.6: 0.65 imp ✗ → 0.75.
    assert_eq!(
        t[0].accuracy,
        vec![(0.6, Some(0.75)), (0.7, Some(1.0)), (0.8, Some(0.75))]
    );
    // Smiling: images 1, 2, 4 → pairs (1,2) and (2,4).
    assert_eq!(
        (t[1].attribute.as_str(), t[1].pairs, t[1].genuine),
        ("Smiling", 2, 1)
    );
    // Young: images 2, 3, 4 → pairs (2,4) and (3,4).
    assert_eq!((t[2].pairs, t[2].genuine, t[2].impostor), (2, 1, 1));
    let e = attribute_table(&[p("1.jpg", "9.jpg", true)], &[0.5], &attrs, &[0.6]).unwrap_err();
    assert!(e.to_string().contains("pair 1: image \"9.jpg\""), "{e}");
}

#[test]
fn identification_top_n_and_npy_round_trip() {
    // Three identities on three axes; probes are noisy copies, one confusable.
    let ids: Vec<String> = ["a0", "b0", "c0", "a1", "b1", "c1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let labels: Vec<String> = ids.iter().map(|s| s[..1].to_string()).collect();
    let data = vec![
        1.0, 0.0, 0.0, //
        0.0, 1.0, 0.0, //
        0.0, 0.0, 1.0, //
        0.9, 0.1, 0.0, //
        0.0, 0.8, 0.2, //
        0.7, 0.0, 0.6, // c-probe closer to a
    ];
    let e = Embeddings::new(ids, 3, data.clone()).unwrap();
    let r = identify(&e, &labels, &[1, 2, 3]).unwrap();
    assert_eq!((r.gallery, r.probes), (3, 3));
    assert_eq!(r.top_n, vec![(1, 2.0 / 3.0), (2, 1.0), (3, 1.0)]);
    assert!(identify(&e, &labels[..2], &[1]).is_err());
    let dir = std::env::temp_dir().join(format!("face-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("f.npy");
    write_npy_f32(&p, 6, 3, &data).unwrap();
    let (r, c, back) = read_npy_f32(&p).unwrap();
    assert_eq!((r, c), (6, 3));
    assert_eq!(back, data);
    let e2 = Embeddings::read(&p, None).unwrap();
    assert_eq!(e2.ids()[5], "5");
    std::fs::write(dir.join("bad.npy"), b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i8'}").unwrap();
    let err = read_npy_f32(&dir.join("bad.npy")).unwrap_err().to_string();
    assert!(err.contains("bad.npy") && err.contains("<i8"), "{err}");
    assert!(Embeddings::new(vec!["x".into(), "x".into()], 1, vec![0.0, 1.0])
        .unwrap_err()
        .to_string()
        .contains("twice"));
    std::fs::remove_dir_all(&dir).unwrap();
}
