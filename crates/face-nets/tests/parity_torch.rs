//! Checkpoint import proven by parity: state dicts written by PyTorch (tools/reference_nets.py)
//! load through our key tables, and eval-mode outputs match PyTorch's to 1e-4.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use face_nets::{IResNetConfig, NetsError};

type B = NdArray<f32>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The reference script's input: x[i] = 0.5·sin(0.37·i) over the flattened [2, 3, S, S] tensor.
fn input(size: usize) -> Tensor<B, 4> {
    let n = 2 * 3 * size * size;
    let v: Vec<f32> = (0..n).map(|i| (0.5 * (0.37 * i as f64).sin()) as f32).collect();
    Tensor::from_data(TensorData::new(v, [2, 3, size, size]), &Default::default())
}

fn reference(name: &str) -> Vec<f32> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap();
    v["output"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn iresnet18_matches_pytorch() {
    let cfg = IResNetConfig::r18().with_base_width(8).with_num_features(32);
    let (model, report) = cfg
        .load_torch::<B>(&fixture("iresnet18_w8.pth"), &Default::default())
        .unwrap();
    assert!(!report.ignored.is_empty() && report.ignored.iter().all(|k| k.ends_with("num_batches_tracked")));
    let y: Vec<f32> = model.forward(input(112)).into_data().to_vec().unwrap();
    let expected = reference("iresnet18_w8.json");
    let d = max_abs_diff(&y, &expected);
    eprintln!("iresnet18_w8: max |burn − torch| = {d:e}");
    assert!(d <= 1e-4, "max |burn − torch| = {d}");
    // The output is not trivial.
    assert!(expected.iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.1);
}

#[test]
fn wrong_architecture_is_a_clear_error() {
    let device = Default::default();
    // Wider model: shapes differ.
    let e = IResNetConfig::r18()
        .with_base_width(16)
        .with_num_features(32)
        .load_torch::<B>(&fixture("iresnet18_w8.pth"), &device);
    assert!(matches!(e, Err(NetsError::Tensor { .. })), "{:?}", e.err());
    // Deeper model: weights missing.
    let e = IResNetConfig::r34()
        .with_base_width(8)
        .with_num_features(32)
        .load_torch::<B>(&fixture("iresnet18_w8.pth"), &device);
    match e {
        Err(NetsError::MissingKeys { keys, .. }) => {
            assert!(keys.iter().any(|k| k.starts_with("layer2.2.")), "{keys:?}")
        }
        other => panic!("expected missing keys, got {:?}", other.err()),
    }
    assert!(matches!(
        IResNetConfig::r18().load_torch::<B>(&fixture("nope.pth"), &device),
        Err(NetsError::Checkpoint { .. })
    ));
    assert!(IResNetConfig::r18().with_input_size(8).validate().is_err());
}
