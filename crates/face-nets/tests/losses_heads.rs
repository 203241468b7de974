//! Margin losses against arcface_torch's formulas run in PyTorch (tools/reference_nets.py writes
//! logits, loss and d loss / d cos for ArcFace, easy-margin ArcFace, CosFace, a combined margin
//! and plain normalised softmax, with one target past the θ + m > π threshold) and the heads'
//! arithmetic, all in f64. (The f32 training step lives in its own test binary: NdArray<f32> and
//! NdArray<f64> share one device, whose default float type is process-wide in Burn 0.21.)

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Int, Tensor, TensorData};
use face_nets::heads::{expected_age, gender_probability, EmbeddingHeadConfig};
use face_nets::{CombinedMarginConfig, MultiTaskHeadConfig};

type B = NdArray<f64>;
type Ad = Autodiff<B>;

fn matrix(v: &serde_json::Value) -> (Vec<f64>, [usize; 2]) {
    let rows = v.as_array().unwrap();
    let cols = rows[0].as_array().unwrap().len();
    let flat = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    (flat, [rows.len(), cols])
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn margin_losses_match_arcface_torch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/margin_losses.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (cos, shape) = matrix(&doc["cos"]);
    let labels: Vec<i64> = doc["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let configs = [
        ("arcface", CombinedMarginConfig::arcface()),
        (
            "arcface_easy",
            CombinedMarginConfig::arcface().with_easy_margin(true),
        ),
        ("cosface", CombinedMarginConfig::cosface()),
        (
            "combined",
            CombinedMarginConfig::new()
                .with_scale(32.0)
                .with_m1(0.9)
                .with_m2(0.3)
                .with_m3(0.15),
        ),
        ("softmax", CombinedMarginConfig::normalized_softmax(30.0)),
    ];
    let device = Default::default();
    for (name, cfg) in configs {
        let case = &doc["cases"][name];
        let loss_fn = cfg.init();
        let c = Tensor::<Ad, 2>::from_data(TensorData::new(cos.clone(), shape), &device).require_grad();
        let y = Tensor::<Ad, 1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &device);
        let logits: Vec<f64> = loss_fn.logits(c.clone(), y.clone()).into_data().to_vec().unwrap();
        let loss = loss_fn.forward(c.clone(), y);
        let loss_value: f64 = loss.clone().into_scalar();
        let grads = loss.backward();
        let grad: Vec<f64> = c.grad(&grads).unwrap().into_data().to_vec().unwrap();
        let (want_logits, _) = matrix(&case["logits"]);
        let (want_grad, _) = matrix(&case["grad"]);
        let dl = max_abs_diff(&logits, &want_logits);
        let dg = max_abs_diff(&grad, &want_grad);
        let dv = (loss_value - case["loss"].as_f64().unwrap()).abs();
        eprintln!("{name}: |Δlogits| {dl:e}, |Δloss| {dv:e}, |Δgrad| {dg:e}");
        assert!(dl < 1e-9 && dv < 1e-9 && dg < 1e-9, "{name}");
    }
}

#[test]
fn threshold_rule_is_used_past_pi() {
    // cos θ = −0.95 < cos(π − 0.5): the target becomes cos θ − 0.5·sin(0.5), not cos(θ + 0.5).
    let device = Default::default();
    let cos = Tensor::<B, 2>::from_data([[-0.95, 0.1]], &device);
    let y = Tensor::<B, 1, Int>::from_data([0], &device);
    let logits: Vec<f64> = CombinedMarginConfig::arcface()
        .with_scale(1.0)
        .init()
        .logits(cos, y)
        .into_data()
        .to_vec()
        .unwrap();
    let want = -0.95 - (std::f64::consts::PI - 0.5).sin() * 0.5;
    assert!((logits[0] - want).abs() < 1e-12, "{logits:?}");
    assert!((logits[1] - 0.1).abs() < 1e-12);
    assert!(CombinedMarginConfig::new().with_scale(0.0).validate().is_err());
    assert!(CombinedMarginConfig::new().with_m2(f64::NAN).validate().is_err());
}

#[test]
fn heads_compute_what_they_document() {
    let device = Default::default();
    // Expected age of a distribution concentrated on 30 and 60 in equal parts is 45.
    let mut logits = vec![-1e9; 2 * 101];
    logits[30] = 0.0;
    logits[60] = 0.0;
    logits[101 + 7] = 5.0;
    let ages: Vec<f64> = expected_age(Tensor::<B, 2>::from_data(
        TensorData::new(logits, [2, 101]),
        &device,
    ))
    .into_data()
    .to_vec()
    .unwrap();
    assert!(
        (ages[0] - 45.0).abs() < 1e-9 && (ages[1] - 7.0).abs() < 1e-9,
        "{ages:?}"
    );
    let p: Vec<f64> = gender_probability(Tensor::<B, 1>::from_data([0.0, 2.0f64.ln()], &device))
        .into_data()
        .to_vec()
        .unwrap();
    // Burn 0.21's sigmoid evaluates in f32 even on an f64 backend, hence 1e-7.
    assert!(
        (p[0] - 0.5).abs() < 1e-7 && (p[1] - 2.0 / 3.0).abs() < 1e-7,
        "{p:?}"
    );

    let head = MultiTaskHeadConfig::new(16)
        .with_embedding_dim(8)
        .init::<B>(&device);
    let feats = Tensor::<B, 2>::random([4, 16], burn::tensor::Distribution::Default, &device);
    let out = head.forward(feats);
    assert_eq!(out.embedding.dims(), [4, 8]);
    assert_eq!(out.age_logits.dims(), [4, 101]);
    assert_eq!(out.gender_logit.dims(), [4]);
    let norms: Vec<f64> = out
        .embedding
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .into_data()
        .to_vec()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-9), "{norms:?}");
    let ages: Vec<f64> = out.expected_age().into_data().to_vec().unwrap();
    assert!(ages.iter().all(|a| (0.0..=100.0).contains(a)));
    assert!(MultiTaskHeadConfig::new(16).with_age_bins(1).validate().is_err());
    // Without BatchNorm the embedding head is a biased linear layer.
    let e = EmbeddingHeadConfig::new(16)
        .with_dim(4)
        .with_batch_norm(false)
        .init::<B>(&device);
    assert_eq!(e.forward(Tensor::zeros([2, 16], &device)).dims(), [2, 4]);
}
