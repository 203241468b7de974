//! Student export: the PyTorch layout written by `face_nets::export` read back by our own
//! loader for every backbone family, and against PyTorch itself (the fixtures
//! `tools/check_torch_export.py` wrote after `load_state_dict(strict=True)`); the ONNX graph
//! against onnxruntime (`tools/check_onnx_export.py`) and against the model, through face-nets'
//! own executor.

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::tensor::{Distribution, Tensor};
use face_nets::export::{read_torch, sidecar_path, torch_state_dict, write_torch};
use face_nets::{BackboneConfig, FaceModelConfig, NetsError};

use crate::units::small_backbones;

type B = NdArray<f32>;

/// Every backbone family, each with a committed fixture in `tests/fixtures/export`.
const FAMILIES: [&str; 7] = [
    "iresnet",
    "mobilefacenet",
    "resnet",
    "inception_resnet_v1",
    "vit",
    "clip_vit",
    "token_vit",
];

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("face-nets-export-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn torch_export_reads_back_identically_for_every_family() {
    let dev = Default::default();
    let dir = tmp("round");
    let mut exported = 0;
    for b in small_backbones() {
        let config = FaceModelConfig::new(b.clone(), 12, vec![10.0, 30.0, 50.0]);
        // Every vector (BatchNorm statistics, biases, PReLU slopes) away from its initial value,
        // so a swapped or dropped tensor shows.
        let model = face_nets::record::spread_vectors(config.init::<B>(&dev).unwrap(), 3);
        let file = dir.join(format!("{}.safetensors", b.arch()));
        let meta = write_torch(&model, &config, &file).unwrap();
        assert!(sidecar_path(&file).is_file());
        assert_eq!(meta.model, config);
        let names: Vec<String> = torch_state_dict(&model, &config)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        // PyTorch's names: no Burn parameter names are left, and every BatchNorm is whole.
        for n in &names {
            assert!(
                !n.ends_with(".gamma") && !n.ends_with(".beta") && !n.ends_with(".alpha"),
                "{}: {n}",
                b.arch()
            );
            assert!(n.starts_with("backbone.") || n.starts_with("head."), "{n}");
            if let Some(stem) = n.strip_suffix(".running_var") {
                assert!(names.contains(&format!("{stem}.num_batches_tracked")), "{n}");
            }
        }
        for head in [
            "head.embedding.linear.weight",
            "head.age.linear.bias",
            "head.gender.linear.weight",
            "head.embedding.bn.num_batches_tracked",
        ] {
            assert!(names.iter().any(|n| n == head), "{}: no {head}", b.arch());
        }
        let (back_config, back) = read_torch::<B>(&file, &dev).unwrap();
        assert_eq!(back_config, config);
        let s = b.input_size();
        let x = Tensor::<B, 4>::random([2, 3, s, s], Distribution::Normal(0.0, 1.0), &dev);
        let (p, q) = (model.forward(x.clone()), back.forward(x));
        assert_eq!(values(p.embedding), values(q.embedding), "{}", b.arch());
        assert_eq!(values(p.age_logits), values(q.age_logits), "{}", b.arch());
        assert_eq!(values(p.gender_logit), values(q.gender_logit), "{}", b.arch());
        exported += 1;
    }
    assert_eq!(exported, 7);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn torch_export_names_follow_the_reference_classes() {
    let dev = Default::default();
    let arch = |b: BackboneConfig| {
        let config = FaceModelConfig::new(b, 8, vec![20.0, 40.0]);
        let model = config.init::<B>(&dev).unwrap();
        torch_state_dict(&model, &config)
            .unwrap()
            .into_iter()
            .map(|(n, d)| (n, d.shape.to_vec()))
            .collect::<Vec<_>>()
    };
    let backbones = small_backbones();
    // arcface_torch iresnet: PReLU `weight`, `downsample.0/1`, `fc` [out, in], `features` BatchNorm1d.
    let ir = arch(backbones[0].clone());
    let has = |v: &[(String, Vec<usize>)], k: &str| v.iter().find(|(n, _)| n == k).map(|(_, s)| s.clone());
    assert_eq!(has(&ir, "backbone.prelu.weight"), Some(vec![8]));
    assert!(has(&ir, "backbone.layer2.0.downsample.0.weight").is_some());
    assert!(has(&ir, "backbone.layer2.0.downsample.1.num_batches_tracked").is_some());
    assert_eq!(has(&ir, "backbone.fc.weight"), Some(vec![16, 8 * 8 * 7 * 7]));
    assert!(has(&ir, "backbone.features.running_mean").is_some());
    assert_eq!(has(&ir, "head.embedding.linear.weight"), Some(vec![8, 16]));
    // arcface_torch mbf: Sequential indices all the way down.
    let mbf = arch(backbones[1].clone());
    assert!(
        has(&mbf, "backbone.layers.0.layers.0.weight").is_some(),
        "{:?}",
        &mbf[..6]
    );
    assert!(has(&mbf, "backbone.layers.0.layers.2.weight").is_some());
    assert!(has(&mbf, "backbone.features.layers.3.running_var").is_some());
    assert!(has(&mbf, "backbone.features.layers.2.weight").is_some());
    // OpenAI CLIP's VisionTransformer: packed `in_proj_weight` [3w, w], `ln_1`, `c_fc`, raw
    // parameters as they are (`proj` [width, output_dim]).
    let clip = arch(backbones[5].clone());
    assert_eq!(
        has(&clip, "backbone.transformer.resblocks.0.attn.in_proj_weight"),
        Some(vec![48, 16])
    );
    assert_eq!(
        has(&clip, "backbone.transformer.resblocks.0.attn.in_proj_bias"),
        Some(vec![48])
    );
    assert!(has(&clip, "backbone.transformer.resblocks.0.attn.out_proj.weight").is_some());
    assert!(has(&clip, "backbone.transformer.resblocks.0.ln_1.weight").is_some());
    assert_eq!(
        has(&clip, "backbone.transformer.resblocks.0.mlp.c_fc.weight"),
        Some(vec![64, 16])
    );
    assert_eq!(has(&clip, "backbone.proj"), Some(vec![16, 12]));
    assert_eq!(has(&clip, "backbone.class_embedding"), Some(vec![16]));
    // facekit's TokenViT class: timm block names, `slot_embed` an nn.Embedding.
    let token = arch(backbones[6].clone());
    assert_eq!(has(&token, "backbone.slot_embed.weight"), Some(vec![49, 16]));
    assert_eq!(
        has(&token, "backbone.patch_embed.weight"),
        Some(vec![16, 3 * 16 * 16])
    );
    assert_eq!(
        has(&token, "backbone.blocks.0.attn.qkv.weight"),
        Some(vec![48, 16])
    );
    assert!(has(&token, "backbone.norm.bias").is_some());
}

#[test]
fn a_bad_export_is_a_clear_error() {
    let dev = Default::default();
    let dir = tmp("bad");
    let b = small_backbones()[0].clone();
    let config = FaceModelConfig::new(b.clone(), 8, vec![20.0, 40.0]);
    let model = config.init::<B>(&dev).unwrap();
    let file = dir.join("m.safetensors");
    write_torch(&model, &config, &file).unwrap();
    // The sidecar describes another width: the keys do not fit, and the file is named.
    let side = sidecar_path(&file);
    let text = std::fs::read_to_string(&side)
        .unwrap()
        .replace("\"embedding_dim\": 8", "\"embedding_dim\": 9");
    std::fs::write(&side, text).unwrap();
    let e = read_torch::<B>(&file, &dev).unwrap_err();
    assert!(e.to_string().contains("m.safetensors"), "{e}");
    // No sidecar.
    std::fs::remove_file(&side).unwrap();
    let e = read_torch::<B>(&file, &dev).unwrap_err();
    assert!(e.to_string().contains("no sidecar"), "{e}");
    // A folded model cannot be named in PyTorch layout.
    use face_nets::FoldBatchNorm;
    let e = torch_state_dict(&model.fold_batch_norm(), &config).unwrap_err();
    assert!(
        matches!(e, NetsError::Config { .. }) && e.to_string().contains("folded"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn torch_export_matches_pytorch() {
    // Written by examples/export_fixtures.rs, then loaded by tools/check_torch_export.py into
    // the PyTorch reference classes with load_state_dict(strict=True); `<arch>.torch.json` is
    // what PyTorch computed.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/export");
    let dev = Default::default();
    for arch in FAMILIES {
        let (config, model) = read_torch::<B>(&dir.join(format!("{arch}.safetensors")), &dev).unwrap();
        assert_eq!(config.backbone.arch(), arch);
        let torch: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{arch}.torch.json"))).unwrap())
                .unwrap();
        let floats = |k: &str| -> Vec<f32> {
            torch[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let out = model.forward(crate::onnx::input::<B>(2, config.input_size()));
        let ages = burn::tensor::activation::softmax(out.age_logits, 1);
        let male = burn::tensor::activation::sigmoid(out.gender_logit);
        for (what, ours, theirs) in [
            ("embedding", values(out.embedding), floats("embedding")),
            ("age", values(ages), floats("age_probs")),
            ("p_male", values(male), floats("p_male")),
        ] {
            assert_eq!(ours.len(), theirs.len(), "{arch} {what}");
            let d = max_diff(&ours, &theirs);
            assert!(d < 1e-4, "{arch} {what}: max |Δ| {d}");
        }
    }
}

#[test]
fn onnx_export_matches_onnxruntime_through_our_executor() {
    // The committed PyTorch-layout fixtures, written again as ONNX here (the bytes
    // examples/export_fixtures.rs gave onnxruntime in tools/check_onnx_export.py), run by
    // face-nets' executor against onnxruntime's outputs and against the model itself.
    use face_nets::export::onnx_bytes;
    use face_nets::onnx::OnnxModel;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/export");
    let dev = Default::default();
    for arch in FAMILIES {
        let (config, model) = read_torch::<B>(&dir.join(format!("{arch}.safetensors")), &dev).unwrap();
        let bytes = onnx_bytes(&model, &config).unwrap();
        let onnx = OnnxModel::<B>::from_bytes(format!("{arch}.onnx"), &bytes, &dev).unwrap();
        let names: Vec<&str> = onnx.outputs().iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["embedding", "age_probs", "expected_age", "p_male"]);
        let s = config.input_size();
        assert_eq!(
            onnx.input().dims,
            vec![None, Some(3), Some(s), Some(s)],
            "a dynamic batch axis"
        );
        assert_eq!(onnx.output("embedding").unwrap().dims, vec![None, Some(16)]);
        let ort: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{arch}.onnxruntime.json"))).unwrap(),
        )
        .unwrap();
        let floats = |k: &str| -> Vec<f32> {
            ort[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let x = crate::onnx::input::<B>(2, s);
        let out = onnx.run(x.clone()).unwrap();
        let direct = model.forward(x.clone());
        let check = |what: &str, ours: Vec<f32>, theirs: &[f32], tol: f32| {
            assert_eq!(ours.len(), theirs.len(), "{arch} {what}");
            let d = max_diff(&ours, theirs);
            assert!(d < tol, "{arch} {what}: max |Δ| {d}");
        };
        check(
            "embedding",
            values(out.tensor::<2>("embedding").unwrap()),
            &floats("embedding"),
            1e-4,
        );
        check(
            "age_probs",
            values(out.tensor::<2>("age_probs").unwrap()),
            &floats("age_probs"),
            1e-4,
        );
        check(
            "expected_age",
            values(out.tensor::<1>("expected_age").unwrap()),
            &floats("expected_age"),
            1e-3,
        );
        check(
            "p_male",
            values(out.tensor::<1>("p_male").unwrap()),
            &floats("p_male"),
            1e-4,
        );
        // And the executor's graph against the model it came from.
        check(
            "embedding vs model",
            values(out.tensor::<2>("embedding").unwrap()),
            &values(direct.embedding),
            1e-4,
        );
        check(
            "p_male vs model",
            values(out.tensor::<1>("p_male").unwrap()),
            &values(burn::tensor::activation::sigmoid(direct.gender_logit)),
            1e-4,
        );
        // Batch 3 through the same file.
        let x3 = Tensor::cat(vec![x.clone(), x.narrow(0, 0, 1)], 0);
        let e3 = values(onnx.run(x3).unwrap().tensor::<2>("embedding").unwrap());
        check("batch 3", e3[..32].to_vec(), &floats("embedding"), 1e-4);
    }
    // A folded model is refused: its BatchNorms are folded as the graph is written.
    use face_nets::FoldBatchNorm;
    let (config, model) = read_torch::<B>(&dir.join("iresnet.safetensors"), &dev).unwrap();
    let e = onnx_bytes(&model.fold_batch_norm(), &config).unwrap_err();
    assert!(e.to_string().contains("before folding"), "{e}");
}

#[test]
fn onnx_export_runs_like_the_model_for_every_token_layout() {
    // The token ViT's graph has three cases: tokens on whole pixels (one shared projection, no
    // bilinear taps), tokens that all fall between pixels alike (one shared bilinear matrix),
    // and tokens that each fall differently (one matrix per token). Each against the model.
    use face_nets::export::onnx_bytes;
    use face_nets::onnx::OnnxModel;
    use face_nets::{TokenInput, TokenLayout, TokenVitConfig};
    let dev = Default::default();
    for (name, layout, patch) in [
        ("grid", TokenLayout::Grid { n: 6 }, 16),
        ("dense 4 (every origin whole)", TokenLayout::Dense { n: 4 }, 12),
        (
            "points (shared fractions)",
            TokenLayout::Points {
                points: vec![[30.25, 40.75], [60.25, 20.75], [90.25, 100.75]],
            },
            10,
        ),
        ("dense 5 (fractions differ)", TokenLayout::Dense { n: 5 }, 9),
        (
            "points over the edge",
            TokenLayout::Points {
                points: vec![[0.3, 2.0], [110.6, 111.2], [56.0, 56.0]],
            },
            8,
        ),
    ] {
        let backbone = BackboneConfig::TokenVit(TokenVitConfig {
            embed_dim: 16,
            depth: 1,
            num_heads: 4,
            mlp_ratio: 2,
            patch_size: patch,
            max_slots: 40,
            coord_freqs: 1,
            input: Some(TokenInput {
                image_size: 112,
                layout,
            }),
        });
        let config = FaceModelConfig::new(backbone, 8, vec![20.0, 40.0]);
        let model = face_nets::record::spread_vectors(config.init::<B>(&dev).unwrap(), 5);
        let bytes = onnx_bytes(&model, &config).unwrap();
        let onnx = OnnxModel::<B>::from_bytes("token.onnx", &bytes, &dev).unwrap();
        let x = Tensor::<B, 4>::random([3, 3, 112, 112], Distribution::Uniform(-1.0, 1.0), &dev);
        let ours = values(onnx.run(x.clone()).unwrap().tensor::<2>("embedding").unwrap());
        let direct = values(model.forward(x).embedding);
        assert_eq!(ours.len(), direct.len(), "{name}");
        let d = max_diff(&ours, &direct);
        assert!(d < 1e-4, "{name}: max |Δ| {d}");
    }
}
