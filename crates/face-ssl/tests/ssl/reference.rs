//! DINO's pieces against the numpy reference of `tools/reference_dino.py` (float64 there, f32
//! here): head, targets, loss and its per-pair matrix, centre update, monitors, schedules, EMA.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use face_ssl::loss::{dino_loss, pair_cross_entropy, student_log_probs, teacher_targets, Centre};
use face_ssl::monitor::{marginal_entropy, mean_entropy, normalised_std};
use face_ssl::schedule::{teacher_temperature, Cosine};
use face_ssl::train::ema_update;
use face_ssl::{DinoHead, DinoModel, PretrainConfig, Tokenizer};
use serde_json::Value;

type B = NdArray<f32>;

const TOL: f64 = 1e-5;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dino_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn t2(v: &Value, rows: usize, cols: usize) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(floats(v), [rows, cols]), &Default::default())
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().expect("f32")
}

fn assert_close(name: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max);
    assert!(worst <= tol, "{name}: max |Δ| {worst:e} > {tol:e}");
}

fn scalar(t: Tensor<B, 1>) -> f64 {
    f64::from(values(t)[0])
}

#[test]
fn head_matches_numpy() {
    let _rng = crate::common::burn_rng();
    let f = fixture();
    let h = &f["head"];
    let widths: Vec<usize> = h["widths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap() as usize)
        .collect();
    let k = h["out_dim"].as_u64().unwrap() as usize;
    let dev = Default::default();
    let mlp = h["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(widths.windows(2))
        .map(|(l, w)| {
            (
                t2(&l["weight"], w[0], w[1]),
                Tensor::<B, 1>::from_data(TensorData::new(floats(&l["bias"]), [w[1]]), &dev),
            )
        })
        .collect();
    let bottleneck = *widths.last().unwrap();
    let head = DinoHead::<B>::from_weights(mlp, t2(&h["last_v"], bottleneck, k));
    let x = t2(&h["input"], 6, widths[0]);
    assert_close(
        "bottleneck",
        &values(head.bottleneck(x.clone())),
        &floats(&h["bottleneck"]),
        TOL,
    );
    assert_close("logits", &values(head.forward(x)), &floats(&h["logits"]), TOL);
    assert_eq!(head.out_dim(), k);
}

#[test]
fn loss_targets_and_centre_match_numpy() {
    let _rng = crate::common::burn_rng();
    let f = fixture();
    let l = &f["loss"];
    let n = l["n"].as_u64().unwrap() as usize;
    let (g, v, k) = (
        l["global_views"].as_u64().unwrap() as usize,
        l["views"].as_u64().unwrap() as usize,
        l["k"].as_u64().unwrap() as usize,
    );
    let student = t2(&l["student"], v * n, k);
    let teacher = t2(&l["teacher"], g * n, k);
    let centre_value = t2(&l["centre"], 1, k);
    let (tt, st) = (
        l["teacher_temp"].as_f64().unwrap(),
        l["student_temp"].as_f64().unwrap(),
    );

    let targets = teacher_targets(teacher.clone(), centre_value.clone(), tt);
    assert_close("targets", &values(targets.clone()), &floats(&l["targets"]), TOL);
    let pairs = pair_cross_entropy(targets.clone(), student_log_probs(student.clone(), st), n);
    assert_close("pairs", &values(pairs), &floats(&l["pairs"]), TOL);
    let loss = scalar(dino_loss(targets.clone(), student, n, st));
    let want = l["loss"].as_f64().unwrap();
    assert!(
        (loss - want).abs() <= TOL * want.abs().max(1.0),
        "loss {loss} vs {want}"
    );

    let marginal = marginal_entropy(targets.clone());
    assert!(
        (marginal - l["marginal_entropy"].as_f64().unwrap()).abs() <= TOL,
        "marginal {marginal}"
    );
    let entropy = mean_entropy(targets);
    assert!(
        (entropy - l["entropy"].as_f64().unwrap()).abs() <= TOL,
        "entropy {entropy}"
    );
    // The trainer reports KL(teacher‖student) as loss − entropy; the reference computes it
    // directly from the pairs.
    assert!((loss - entropy - l["kl"].as_f64().unwrap()).abs() <= 2.0 * TOL);

    let mut centre = Centre::<B>::zeros(k, l["center_momentum"].as_f64().unwrap(), &Default::default());
    centre.set(centre_value);
    centre.update(teacher);
    assert_close("centre", &values(centre.value()), &floats(&l["new_centre"]), TOL);
}

#[test]
fn normalised_std_matches_numpy() {
    let _rng = crate::common::burn_rng();
    let f = fixture();
    let s = &f["std"];
    let x = t2(&s["features"], 6, 5);
    let got = normalised_std(x);
    assert!(
        (got - s["normalised_std"].as_f64().unwrap()).abs() <= TOL,
        "{got}"
    );
    // One row has no spread to measure.
    assert_eq!(normalised_std(t2(&s["features"], 6, 5).narrow(0, 0, 1)), 0.0);
}

#[test]
fn schedules_match_numpy() {
    let _rng = crate::common::burn_rng();
    let f = fixture();
    let s = &f["schedule"];
    let total = s["total"].as_u64().unwrap();
    let lr = Cosine::new(s["base"].as_f64().unwrap(), s["end"].as_f64().unwrap(), total)
        .with_warmup(s["warmup"].as_u64().unwrap(), 0.0);
    let got: Vec<f32> = (0..total).map(|i| lr.at(i) as f32).collect();
    assert_close("lr", &got, &floats(&s["lr"]), 1e-9);
    let m = Cosine::new(s["momentum_base"].as_f64().unwrap(), 1.0, total);
    let got: Vec<f32> = (0..total).map(|i| m.at(i) as f32).collect();
    assert_close("momentum", &got, &floats(&s["momentum"]), 1e-7);
    let got: Vec<f32> = (0..6)
        .map(|e| {
            teacher_temperature(
                s["temp_warmup"].as_f64().unwrap(),
                s["temp_target"].as_f64().unwrap(),
                s["temp_epochs"].as_u64().unwrap() as usize,
                e,
            ) as f32
        })
        .collect();
    assert_close("teacher temperature", &got, &floats(&s["temps"]), 1e-9);
}

fn flat(m: &DinoModel<B>) -> Vec<f32> {
    face_nets::record::float_values(m)
}

#[test]
fn ema_moves_every_parameter() {
    let _rng = crate::common::burn_rng();
    let f = fixture();
    let e = &f["ema"];
    let m = e["momentum"].as_f64().unwrap();
    // The reference's arithmetic on a vector …
    let want: Vec<f32> = floats(&e["teacher"])
        .iter()
        .zip(floats(&e["student"]))
        .map(|(t, s)| (m * f64::from(*t) + (1.0 - m) * f64::from(s)) as f32)
        .collect();
    assert_close("ema arithmetic", &want, &floats(&e["result"]), 1e-6);
    // … and the same rule applied by ema_update to every parameter of two real models.
    let config = PretrainConfig::tiny(Tokenizer::Landmarks);
    let dev = Default::default();
    let teacher = DinoModel::<B>::new(&config, &dev).unwrap();
    let student = DinoModel::<B>::new(&config, &dev).unwrap();
    let (t0, s0) = (flat(&teacher), flat(&student));
    assert_ne!(t0, s0);
    let moved = flat(&ema_update(teacher, &student, 0.9).unwrap());
    let expect: Vec<f32> = t0.iter().zip(&s0).map(|(t, s)| 0.9 * t + 0.1 * s).collect();
    assert_close("ema_update", &moved, &expect, 1e-6);

    // Different architectures are refused.
    let mut wider = config.clone();
    wider.vit.depth = 3;
    let other = DinoModel::<B>::new(&wider, &dev).unwrap();
    assert!(ema_update(DinoModel::<B>::new(&config, &dev).unwrap(), &other, 0.9).is_err());
}
