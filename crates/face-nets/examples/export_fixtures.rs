//! Writes the export fixtures: the PyTorch-layout files that `tools/check_torch_export.py`
//! loads into the reference classes with `load_state_dict(strict=True)`, and the ONNX files
//! `tools/check_onnx_export.py` runs in onnxruntime:
//!
//! ```text
//! cargo run -p face-nets --release --example export_fixtures -- crates/face-nets/tests/fixtures/export
//! python tools/check_torch_export.py crates/face-nets/tests/fixtures/export
//! python tools/check_onnx_export.py crates/face-nets/tests/fixtures/export
//! ```
//!
//! The `.onnx` files are not committed: the tests write them again from the committed
//! `.safetensors` (the same weights give the same bytes) and compare with onnxruntime's outputs.
//!
//! For each backbone family, a small face model (every vector
//! spread away from its initial value by `record::spread_vectors`) is written as
//! `<arch>.safetensors` + `<arch>.safetensors.json`, with our outputs on the fixture scripts'
//! deterministic input (x[i] = 0.5·sin(0.37·i) over [2, 3, S, S]) in `<arch>.facekit.json`.

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Tensor, TensorData};
use face_nets::export::{read_torch, write_onnx, write_torch};
use face_nets::{
    BackboneConfig, ClipVitConfig, FaceModelConfig, FaceVitConfig, IResNetConfig, InceptionResnetV1Config,
    MobileFaceNetConfig, ResNetConfig, TokenInput, TokenLayout, TokenVitConfig,
};

type B = NdArray<f32>;

/// The fixture architectures, each matching a constructor of tools/torch_nets.py.
fn fixtures() -> Vec<(&'static str, BackboneConfig)> {
    vec![
        (
            "iresnet",
            BackboneConfig::IResNet(IResNetConfig::r18().with_base_width(8).with_num_features(32)),
        ),
        (
            "mobilefacenet",
            BackboneConfig::MobileFaceNet(
                MobileFaceNetConfig::mbf()
                    .with_blocks([1, 2, 1, 1])
                    .with_scale(1)
                    .with_num_features(24),
            ),
        ),
        (
            "resnet",
            BackboneConfig::ResNet(
                ResNetConfig::new()
                    .with_layers([1, 1, 1, 1])
                    .with_base_width(4)
                    .with_num_classes(None),
            ),
        ),
        (
            "inception_resnet_v1",
            BackboneConfig::InceptionResnetV1(InceptionResnetV1Config::new().with_width_divisor(16)),
        ),
        (
            "vit",
            BackboneConfig::Vit(FaceVitConfig::new(16, 1).with_num_heads(2).with_num_features(20)),
        ),
        (
            "clip_vit",
            BackboneConfig::ClipVit(
                ClipVitConfig::new()
                    .with_image_size(32)
                    .with_patch_size(8)
                    .with_width(16)
                    .with_layers(1)
                    .with_heads(2)
                    .with_output_dim(12),
            ),
        ),
        (
            // A dense 3×3 token layout: every token falls between pixels, each differently.
            "token_vit",
            BackboneConfig::TokenVit(TokenVitConfig {
                embed_dim: 16,
                depth: 1,
                num_heads: 2,
                mlp_ratio: 2,
                patch_size: 12,
                max_slots: 12,
                coord_freqs: 2,
                input: Some(TokenInput {
                    image_size: 112,
                    layout: TokenLayout::Dense { n: 3 },
                }),
            }),
        ),
    ]
}

fn deterministic_input(size: usize) -> Tensor<B, 4> {
    let n = 2 * 3 * size * size;
    let v: Vec<f32> = (0..n).map(|i| (0.5 * (0.37 * i as f64).sin()) as f32).collect();
    Tensor::from_data(TensorData::new(v, [2, 3, size, size]), &Default::default())
}

fn rows<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: export_fixtures DIR")?);
    std::fs::create_dir_all(&dir)?;
    let device = Default::default();
    for (name, backbone) in fixtures() {
        let file = dir.join(format!("{name}.safetensors"));
        // A fixture already written keeps its weights (initialisation is not seeded), so the
        // committed PyTorch and onnxruntime outputs stay valid; delete it to draw new ones.
        let (config, model) = if file.is_file() {
            read_torch::<B>(&file, &device)?
        } else {
            let config = FaceModelConfig::new(backbone, 16, vec![10.0, 25.0, 40.0, 55.0, 70.0]);
            let model = face_nets::record::spread_vectors(config.init::<B>(&device)?, 7);
            write_torch(&model, &config, &file)?;
            (config, model)
        };
        write_onnx(&model, &config, &dir.join(format!("{name}.onnx")))?;
        let out = model.forward(deterministic_input(config.input_size()));
        let doc = serde_json::json!({
            "input_size": config.input_size(),
            "embedding": rows(out.embedding),
            "age_probs": rows(softmax(out.age_logits.clone(), 1)),
            "expected_age": rows(model.expected_age(out.age_logits.clone())),
            "p_male": rows(sigmoid(out.gender_logit)),
        });
        std::fs::write(
            dir.join(format!("{name}.facekit.json")),
            serde_json::to_string(&doc)?,
        )?;
        println!("{name}: {} bytes", std::fs::metadata(&file)?.len());
    }
    Ok(())
}
