//! The ONNX executor against onnxruntime: arcface_torch's iResNet, MobileFaceNet and ViT,
//! exported by `torch.onnx.export` with a dynamic batch axis (tools/reference_onnx.py), run on
//! NdArray (the fast engine, fused chains) and Candle (Burn's own ops) at batch 2 and 3; and
//! every load-time refusal and run-time shape error, each naming the file and the thing.
#![allow(deprecated)]

use std::path::{Path, PathBuf};

use burn::backend::candle::Candle;
use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use face_nets::onnx::{OnnxError, OnnxModel};

type Nd = NdArray<f32>;
type Cd = Candle<f32, i64>;

/// onnxruntime and the executor sum in different orders; the outputs are O(1).
const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

/// The fixture scripts' input: x[i] = 0.5·sin(0.37·i) over the flattened [n, 3, S, S] tensor
/// (`deterministic_input` of tools/torch_nets.py at n = 2).
pub(crate) fn input<B: Backend>(n: usize, size: usize) -> Tensor<B, 4> {
    let len = n * 3 * size * size;
    let v: Vec<f32> = (0..len).map(|i| (0.5 * (0.37 * i as f64).sin()) as f32).collect();
    Tensor::from_data(TensorData::new(v, [n, 3, size, size]), &Default::default())
}

/// `(batch, onnxruntime output flattened)` per case of `<name>.json`.
fn cases(name: &str) -> Vec<(usize, Vec<f32>)> {
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let y = c["onnxruntime"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
                .collect();
            (c["batch"].as_u64().unwrap() as usize, y)
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn embed<B: Backend>(model: &OnnxModel<B>, n: usize) -> Vec<f32> {
    let out = model.run(input(n, 112)).unwrap();
    out.tensor::<2>("embedding")
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap()
}

/// One exported network on both backends and both batch sizes.
fn parity(name: &str, steps: usize) {
    let file = fixture(&format!("{name}.onnx"));
    let nd = OnnxModel::<Nd>::load(&file, &Default::default()).unwrap();
    let cd = OnnxModel::<Cd>::load(&file, &Default::default()).unwrap();
    assert_eq!(nd.input().name, "input");
    assert_eq!(nd.input().dims, vec![None, Some(3), Some(112), Some(112)]);
    assert_eq!(nd.outputs()[0].name, "embedding");
    assert_eq!(nd.steps(), steps, "{name}: steps after fusion");
    for (n, expected) in cases(name) {
        assert!(
            expected.iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.1,
            "{name}: trivial reference"
        );
        let d_nd = max_abs_diff(&embed(&nd, n), &expected);
        let d_cd = max_abs_diff(&embed(&cd, n), &expected);
        eprintln!(
            "{name} b{n}: max |Δ| vs onnxruntime: ndarray {d_nd:e}, candle {d_cd:e} ({} steps)",
            nd.steps()
        );
        assert!(d_nd <= TOL, "{name} b{n}: ndarray vs onnxruntime {d_nd}");
        assert!(d_cd <= TOL, "{name} b{n}: candle vs onnxruntime {d_cd}");
    }
}

#[test]
fn exported_iresnet_matches_onnxruntime() {
    // 50 nodes: 21 Conv (the exporter folded the BatchNorms that follow one), 10 BatchNorm,
    // 9 PRelu, 8 Add, Flatten, Gemm. Every PRelu and residual Add folds into its convolution:
    // 21 fused calls, the 10 BatchNorms that follow no convolution, Flatten and the linear layer.
    parity("iresnet18_w8", 33);
}

#[test]
fn exported_mobilefacenet_matches_onnxruntime() {
    // 33 Conv, 22 PRelu and 7 residual Adds fold into 33 calls; the flatten's shape
    // arithmetic (Shape, Gather, Unsqueeze, Concat, Reshape), the linear layer and BatchNorm1d.
    parity("mbf_small", 40);
}

#[test]
fn exported_vit_matches_onnxruntime() {
    // Shape arithmetic (Shape, Gather, Div, Cast, Pow), Split/Squeeze of the packed qkv,
    // 4-D MatMuls, LayerNorm, Clip (ReLU6), Transpose, Reshape from a computed shape.
    parity("vit_face_small", 99);
}

/// Conv chains with BatchNorm and with a Mul/Add pair, a residual, PRelu and Relu; ceil-mode
/// pools on asymmetric pads with and without the padding counted; reflect Pad; Gemm with
/// transB, alpha and beta; broadcasting Sub/Div/Mul; Sigmoid, Clip, Softmax: six outputs, each
/// against onnxruntime, on both backends.
#[test]
fn a_graph_of_many_operators_matches_onnxruntime() {
    let text = std::fs::read_to_string(fixture("ops_zoo.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let file = fixture("ops_zoo.onnx");
    let nd = OnnxModel::<Nd>::load(&file, &Default::default()).unwrap();
    let cd = OnnxModel::<Cd>::load(&file, &Default::default()).unwrap();
    // 21 nodes; Conv+BatchNorm+PRelu and Conv+Mul+Add+Add+Relu are one call each.
    assert_eq!(nd.steps(), 21 - 2 - 4);
    let (y_nd, y_cd) = (nd.run(input(2, 12)).unwrap(), cd.run(input(2, 12)).unwrap());
    assert_eq!(y_nd.names().len(), 6);
    for (name, expected) in doc["outputs"].as_object().unwrap() {
        let shape: Vec<usize> = expected["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let want: Vec<f32> = expected["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let (got_nd, got_cd, dims) = if shape.len() == 4 {
            let a = y_nd.tensor::<4>(name).unwrap();
            let dims = a.dims().to_vec();
            (
                a.into_data().to_vec().unwrap(),
                y_cd.tensor::<4>(name).unwrap().into_data().to_vec().unwrap(),
                dims,
            )
        } else {
            let a = y_nd.tensor::<2>(name).unwrap();
            let dims = a.dims().to_vec();
            (
                a.into_data().to_vec().unwrap(),
                y_cd.tensor::<2>(name).unwrap().into_data().to_vec().unwrap(),
                dims,
            )
        };
        assert_eq!(dims, shape, "{name}: shape");
        let (d_nd, d_cd) = (max_abs_diff(&got_nd, &want), max_abs_diff(&got_cd, &want));
        eprintln!("ops_zoo {name}: max |Δ| vs onnxruntime: ndarray {d_nd:e}, candle {d_cd:e}");
        assert!(
            d_nd <= TOL && d_cd <= TOL,
            "{name}: ndarray {d_nd}, candle {d_cd}"
        );
    }
}

fn load_err(name: &str) -> OnnxError {
    OnnxModel::<Nd>::load(fixture(name), &Default::default()).unwrap_err()
}

#[test]
fn an_unsupported_operator_is_refused_at_load_naming_the_node() {
    let err = load_err("unsupported_op.onnx");
    let msg = err.to_string();
    assert!(
        matches!(&err, OnnxError::Unsupported { node, op, .. } if node == "best_two" && op == "TopK"),
        "{msg}"
    );
    assert!(
        msg.contains("unsupported_op.onnx") && msg.contains("TopK"),
        "{msg}"
    );
}

#[test]
fn an_unsupported_attribute_is_refused_at_load_naming_it() {
    let err = load_err("unsupported_attr.onnx");
    let msg = err.to_string();
    assert!(
        matches!(&err, OnnxError::Unsupported { what, .. } if what.contains("auto_pad") && what.contains("SameUpper")),
        "{msg}"
    );
    assert!(
        msg.contains("unsupported_attr.onnx") && msg.contains("Conv2d"),
        "{msg}"
    );
}

#[test]
fn an_input_size_the_graph_does_not_take_is_an_error() {
    let model = OnnxModel::<Nd>::load(fixture("wrong_size.onnx"), &Default::default()).unwrap();
    assert!(model.check_input(3, 64, 64).is_ok());
    let err = model.check_input(3, 112, 112).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OnnxError::InputShape { .. }), "{msg}");
    assert!(
        msg.contains("wrong_size.onnx") && msg.contains("[?, 3, 64, 64]"),
        "{msg}"
    );
    // Running it on the wrong size is the same error, not a panic inside a convolution.
    let err = model
        .run(Tensor::zeros([1, 3, 112, 112], &Default::default()))
        .unwrap_err();
    assert!(
        matches!(err, OnnxError::InputShape { ref got, .. } if got == &vec![1, 3, 112, 112]),
        "{err}"
    );
    // A free batch axis takes any batch.
    let y = model.run(input(3, 64)).unwrap().tensor::<2>("embedding").unwrap();
    assert_eq!(y.dims(), [3, 4]);
}

#[test]
fn outputs_are_checked_by_name_and_rank() {
    let model = OnnxModel::<Nd>::load(fixture("wrong_size.onnx"), &Default::default()).unwrap();
    assert_eq!(model.output("embedding").unwrap().dims, vec![None, Some(4)]);
    let err = model.output("logits").unwrap_err();
    assert!(
        matches!(&err, OnnxError::NoOutput { available, .. } if available == "embedding"),
        "{err}"
    );
    let out = model.run(input(1, 64)).unwrap();
    assert!(matches!(
        out.tensor::<2>("probabilities"),
        Err(OnnxError::NoOutput { .. })
    ));
    let err = out.tensor::<4>("embedding").unwrap_err();
    assert!(
        err.to_string().contains("[1, 4]") && err.to_string().contains("rank-4"),
        "{err}"
    );
}

#[test]
fn unreadable_and_malformed_files_are_errors_naming_the_file() {
    let err = load_err("no_such_model.onnx");
    assert!(matches!(err, OnnxError::Read { .. }), "{err}");
    assert!(err.to_string().contains("no_such_model.onnx"), "{err}");
    let err = OnnxModel::<Nd>::from_bytes("garbage.onnx", b"not a protobuf at all", &Default::default())
        .unwrap_err();
    assert!(matches!(err, OnnxError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("garbage.onnx"), "{err}");
    // A truncated model: the header of a real file without its weights.
    let bytes = std::fs::read(fixture("iresnet18_w8.onnx")).unwrap();
    let err =
        OnnxModel::<Nd>::from_bytes("cut.onnx", &bytes[..bytes.len() / 2], &Default::default()).unwrap_err();
    assert!(matches!(err, OnnxError::Parse { .. }), "{err}");
}

#[test]
fn a_graph_declared_for_one_image_runs_a_batch_without_mixing_it() {
    // fr_feature.onnx (face-teachers' tests) runs batched after the probe; this graph centres
    // each image on its own mean, which a batched run would compute over the batch: the
    // probe refuses, and the batch runs image by image.
    let model = OnnxModel::<Nd>::load(fixture("batch_one.onnx"), &Default::default()).unwrap();
    assert_eq!(model.input().dims[0], Some(1));
    assert!(!model.runs_batched());
    let x = input::<Nd>(3, 4);
    let values: Vec<f32> = x.clone().into_data().to_vec().unwrap();
    let y: Vec<f32> = model
        .run(x)
        .unwrap()
        .tensor::<2>("embedding")
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(y.len(), 3 * 48);
    for (image, (got, x)) in y.chunks(48).zip(values.chunks(48)).enumerate() {
        let mean = x.iter().map(|v| f64::from(*v)).sum::<f64>() / 48.0;
        let want: Vec<f32> = x.iter().map(|v| (f64::from(*v) - mean) as f32).collect();
        assert!(max_abs_diff(got, &want) <= 1e-6, "image {image}");
    }
}
