//! Parity with scikit-learn and insightface's TAR@FAR rule, on fixtures written by
//! `tools/reference_metrics.py` (scikit-learn 1.9, numpy 2.4).
//!
//! Tolerances: ROC points, thresholds, TAR and FAR are ratios of integer counts or
//! input scores, so they must match bit for bit; AUC and EER are sums and
//! interpolations, matched to 1e-12.

use face_metrics::{
    mann_whitney_auc, roc_curve, FarConvention, PairwiseBatchAuc, RocOptions, VerificationScores,
};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::INFINITY))
        .collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_bool().expect("bool"))
        .collect()
}

struct Case {
    name: String,
    scores: Vec<f64>,
    genuine: Vec<bool>,
    raw: Value,
}

fn cases() -> Vec<Case> {
    let fx = fixture("verification_reference.json");
    fx["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().expect("name").to_string(),
            scores: f64s(&c["scores"]),
            genuine: bools(&c["genuine"]),
            raw: c.clone(),
        })
        .collect()
}

#[test]
fn roc_curve_matches_sklearn_point_for_point() {
    for case in cases() {
        for (key, drop) in [("drop", true), ("full", false)] {
            let roc = roc_curve(
                &case.scores,
                &case.genuine,
                RocOptions {
                    drop_intermediate: drop,
                },
            )
            .unwrap();
            let want = &case.raw["roc"][key];
            assert_eq!(
                roc.thresholds,
                f64s(&want["thresholds"]),
                "{} {key} thresholds",
                case.name
            );
            assert_eq!(roc.fpr, f64s(&want["fpr"]), "{} {key} fpr", case.name);
            assert_eq!(roc.tpr, f64s(&want["tpr"]), "{} {key} tpr", case.name);
        }
    }
}

#[test]
fn auc_matches_sklearn_three_ways() {
    for case in cases() {
        let want = case.raw["auc"].as_f64().unwrap();
        let roc = roc_curve(&case.scores, &case.genuine, RocOptions::default()).unwrap();
        let trapezoid = roc.auc().unwrap();
        let mw = mann_whitney_auc(&case.scores, &case.genuine).unwrap();
        let fast = VerificationScores::from_pairs(&case.scores[..], &case.genuine[..])
            .unwrap()
            .auc();
        for (how, got) in [("trapezoid", trapezoid), ("mann-whitney", mw), ("slots", fast)] {
            assert!(
                (got - want).abs() <= 1e-12,
                "{} {how}: {got} vs sklearn {want}",
                case.name
            );
        }
    }
}

fn split(case: &Case) -> (Vec<f64>, Vec<f64>) {
    let gen = case
        .scores
        .iter()
        .zip(&case.genuine)
        .filter(|(_, &g)| g)
        .map(|(&s, _)| s)
        .collect();
    let imp = case
        .scores
        .iter()
        .zip(&case.genuine)
        .filter(|(_, &g)| !g)
        .map(|(&s, _)| s)
        .collect();
    (gen, imp)
}

#[test]
fn tar_at_far_matches_reference_in_all_conventions() {
    for case in cases() {
        let targets = f64s(&case.raw["targets"]);
        let (gen, imp) = split(&case);
        let from_pairs = VerificationScores::from_pairs(&case.scores[..], &case.genuine[..]).unwrap();
        let from_split = VerificationScores::from_split(&gen, &imp[..]).unwrap();
        for (key, conv) in [
            ("nearest", FarConvention::Nearest),
            ("at_most", FarConvention::AtMost),
            ("kth_negative", FarConvention::KthNegative),
        ] {
            for v in [&from_pairs, &from_split] {
                let got = v.tar_at_far(&targets, conv).unwrap();
                for (i, r) in got.iter().enumerate() {
                    let want = &case.raw[key][i];
                    let ctx = format!("{} {key} @ {}", case.name, targets[i]);
                    assert_eq!(r.tar, want["tar"].as_f64().unwrap(), "{ctx} tar");
                    assert_eq!(r.far, want["far"].as_f64().unwrap(), "{ctx} far");
                    assert_eq!(
                        r.threshold,
                        want["threshold"].as_f64().unwrap_or(f64::INFINITY),
                        "{ctx} threshold"
                    );
                }
            }
        }
    }
}

#[test]
fn eer_matches_reference() {
    for case in cases() {
        let v = VerificationScores::from_pairs(&case.scores[..], &case.genuine[..]).unwrap();
        let e = v.eer();
        let want = &case.raw["eer"];
        for (what, got) in [("eer", e.eer), ("lower", e.lower), ("upper", e.upper)] {
            let w = want[what].as_f64().unwrap();
            assert!((got - w).abs() <= 1e-12, "{} {what}: {got} vs {w}", case.name);
        }
        assert_eq!(
            e.threshold,
            want["threshold"].as_f64().unwrap_or(f64::INFINITY),
            "{} threshold",
            case.name
        );
        assert!(
            e.lower <= e.eer + 1e-15 && e.eer <= e.upper + 1e-15,
            "{}: {e:?}",
            case.name
        );
    }
}

#[test]
fn batch_auc_matches_sklearn_on_cosine_pairs() {
    let fx = fixture("batch_auc_reference.json");
    let emb: Vec<f32> = f64s(&fx["embeddings"]).into_iter().map(|x| x as f32).collect();
    let labels: Vec<u64> = fx["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let dim = fx["dim"].as_u64().unwrap() as usize;
    let got = PairwiseBatchAuc::new()
        .compute(&emb, dim, &labels)
        .unwrap()
        .expect("both kinds of pair");
    let (g, i) = (got.genuine_pairs, got.impostor_pairs);
    assert_eq!(g, fx["genuine_pairs"].as_u64().unwrap());
    assert_eq!(i, fx["impostor_pairs"].as_u64().unwrap());
    // Our cosines are f32 (SGEMM), the reference's f64: a near-tie pair may swap
    // order, moving the AUC by 1/(G·I) per swap. Allow two swaps.
    let want = fx["auc"].as_f64().unwrap();
    assert!(
        (got.auc - want).abs() <= 2.0 / (g * i) as f64,
        "{} vs {want}",
        got.auc
    );
}
