//! The shared transformer block, the token ViT as a backbone, the face model and weight records.

use burn::backend::NdArray;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Distribution, Tensor, TensorData};
use face_nets::blocks::{Activation, LinearInit, TransformerBlockConfig};
use face_nets::model::files;
use face_nets::record::{load_module, materialize, save_module};
use face_nets::{
    load_model, Backbone, BackboneConfig, ClipVitConfig, FaceModelConfig, FaceVitConfig, IResNetConfig,
    InceptionResnetV1Config, MobileFaceNetConfig, ResNetConfig, TokenInput, TokenLayout, TokenVitConfig,
};

type B = NdArray<f32>;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("face-nets-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn tokenwise_products_equal_batched_ones() {
    let device = Default::default();
    let config = TransformerBlockConfig::new(16, 4, 32).with_activation(Activation::QuickGelu);
    let block = config.init::<B>(&device);
    // Lazy parameters: materialise them so the copy below takes their values.
    materialize(&block);
    let batched = config
        .clone()
        .with_tokenwise(false)
        .init::<B>(&device)
        .load_record(block.clone().into_record());
    let x = Tensor::<B, 3>::random([3, 5, 16], Distribution::Normal(0.0, 1.0), &device);
    let diff = (block.forward(x.clone()) - batched.forward(x))
        .abs()
        .max()
        .into_scalar();
    assert!(diff < 1e-5, "token-wise and batched products differ by {diff}");
}

#[test]
fn activations_match_their_formulas() {
    let device = Default::default();
    let x = Tensor::<B, 1>::from_data(TensorData::from([-1.0f32, 0.5, 7.0]), &device);
    let v = |a: Activation| a.apply(x.clone()).into_data().to_vec::<f32>().unwrap();
    assert_eq!(v(Activation::Relu6), vec![0.0, 0.5, 6.0]);
    let q = v(Activation::QuickGelu);
    let want = |x: f32| x / (1.0 + (-1.702 * x).exp());
    for (got, x) in q.iter().zip([-1.0f32, 0.5, 7.0]) {
        assert!((got - want(x)).abs() < 1e-6, "{got} vs {}", want(x));
    }
    // GELU(0.5) = 0.5·Φ(0.5) = 0.345731…
    assert!((v(Activation::Gelu)[1] - 0.345_731).abs() < 1e-5);
}

#[test]
fn normal_init_has_zero_biases_and_no_qkv_bias_when_asked() {
    let device = Default::default();
    let block = TransformerBlockConfig::new(8, 2, 16)
        .with_qkv_bias(false)
        .with_init(LinearInit::Normal { std: 0.02 })
        .init::<B>(&device);
    assert!(block.attn.qkv.bias.is_none());
    let bias = block.attn.proj.bias.as_ref().unwrap().val();
    assert_eq!(bias.abs().sum().into_scalar(), 0.0);
    let w = block.mlp.fc1.weight.val();
    let std = w.clone().powi_scalar(2).mean().sqrt().into_scalar();
    assert!((0.01..0.03).contains(&std), "weight std {std}");
}

/// Values that identify their position: v = c·10000 + y·100 + x, on a 20 × 20 image.
fn position_image(device: &burn::backend::ndarray::NdArrayDevice) -> Tensor<B, 4> {
    let (s, c) = (20usize, 3usize);
    let v: Vec<f32> = (0..c * s * s)
        .map(|i| {
            let (ch, y, x) = (i / (s * s), (i / s) % s, i % s);
            (ch * 10000 + y * 100 + x) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(v, [1, c, s, s]), device)
}

fn token_vit(input: TokenInput, patch: usize) -> face_nets::TokenVit<B> {
    TokenVitConfig {
        embed_dim: 8,
        depth: 1,
        num_heads: 2,
        mlp_ratio: 2,
        patch_size: patch,
        max_slots: 0,
        coord_freqs: 1,
        input: Some(input),
    }
    .init(&Default::default())
}

#[test]
fn integer_centres_cut_the_exact_blocks() {
    let device = Default::default();
    let input = TokenInput {
        image_size: 20,
        layout: TokenLayout::Grid { n: 2 },
    };
    // A centred 2×2 grid of 8-px patches on 20 px starts at pixel 2.
    assert_eq!(
        input.centres(8),
        vec![[5.5, 5.5], [13.5, 5.5], [5.5, 13.5], [13.5, 13.5]]
    );
    let b = token_vit(input, 8).tokenize(position_image(&device));
    assert_eq!(b.patches.dims(), [1, 4, 3 * 64]);
    let p = b.patches.into_data().to_vec::<f32>().unwrap();
    // Token 1 (top right), channel 0, first row: pixels (x = 10…17, y = 2).
    assert_eq!(
        &p[192..200],
        &[210.0, 211.0, 212.0, 213.0, 214.0, 215.0, 216.0, 217.0]
    );
    // Token 2 (bottom left), channel 2, last value: (x = 9, y = 17).
    assert_eq!(p[3 * 192 - 1], 20000.0 + 1700.0 + 9.0);
    let coords = b.coords.into_data().to_vec::<f32>().unwrap();
    assert!((coords[0] - (6.0 / 20.0 * 2.0 - 1.0)).abs() < 1e-6);
    assert_eq!(b.slots.into_data().to_vec::<i64>().unwrap(), vec![0, 1, 2, 3]);
}

#[test]
fn fractional_centres_interpolate_and_the_outside_is_black() {
    let device = Default::default();
    // One 2-px patch centred at (0.75, 1.0): origin (0.25, 0.5), so pixel (0, 0) of the patch
    // samples (0.25, 0.5) — between x 0/1 and y 0/1.
    let vit = token_vit(
        TokenInput {
            image_size: 20,
            layout: TokenLayout::Points {
                points: vec![[0.75, 1.0], [-0.5, -0.5]],
            },
        },
        2,
    );
    let p = vit
        .tokenize(position_image(&device))
        .patches
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    // Bilinear on v = 100y + x is exact: 100·0.5 + 0.25.
    assert!((p[0] - 50.25).abs() < 1e-3, "{}", p[0]);
    assert!((p[3] - 151.25).abs() < 1e-3, "{}", p[3]);
    // The second patch's origin is (−1, −1): its first pixel is outside, i.e. −1.
    assert_eq!(p[12], -1.0);
    // …and its last pixel of channel 0 is (0, 0) of the image.
    assert_eq!(p[12 + 3], 0.0);
}

#[test]
fn dense_layout_on_112_is_the_16_pixel_block_grid() {
    let input = TokenInput {
        image_size: 112,
        layout: TokenLayout::Dense { n: 7 },
    };
    let grid = TokenInput {
        image_size: 112,
        layout: TokenLayout::Grid { n: 7 },
    };
    assert_eq!(input.centres(16), grid.centres(16));
    assert_eq!(input.centres(16)[8], [23.5, 23.5]);
    let bad = TokenVitConfig {
        input: Some(TokenInput {
            image_size: 112,
            layout: TokenLayout::Grid { n: 8 },
        }),
        ..TokenVitConfig::tiny()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("do not fit"));
    let too_many = TokenVitConfig {
        max_slots: 10,
        input: Some(input),
        ..TokenVitConfig::tiny()
    };
    assert!(too_many.validate().unwrap_err().to_string().contains("slots"));
}

pub(crate) fn small_backbones() -> Vec<BackboneConfig> {
    vec![
        BackboneConfig::IResNet(IResNetConfig::r18().with_base_width(8).with_num_features(16)),
        BackboneConfig::MobileFaceNet(
            MobileFaceNetConfig::mbf()
                .with_blocks([1, 1, 1, 1])
                .with_scale(1)
                .with_num_features(24),
        ),
        BackboneConfig::ResNet(ResNetConfig::new().with_layers([1, 1, 1, 1]).with_base_width(4)),
        BackboneConfig::InceptionResnetV1(InceptionResnetV1Config::new().with_width_divisor(16)),
        BackboneConfig::Vit(FaceVitConfig::new(16, 1).with_num_heads(2).with_num_features(20)),
        BackboneConfig::ClipVit(
            ClipVitConfig::new()
                .with_width(16)
                .with_layers(1)
                .with_heads(2)
                .with_output_dim(12)
                .with_image_size(32),
        ),
        BackboneConfig::TokenVit(TokenVitConfig {
            embed_dim: 16,
            depth: 1,
            num_heads: 2,
            mlp_ratio: 2,
            patch_size: 16,
            max_slots: 49,
            coord_freqs: 2,
            input: Some(TokenInput {
                image_size: 112,
                layout: TokenLayout::Dense { n: 7 },
            }),
        }),
    ]
}

#[test]
fn sizes_from_the_config_equal_the_built_networks() {
    let device = Default::default();
    for b in small_backbones() {
        let net = b.init::<B>(&device).unwrap();
        assert_eq!(b.input_size(), net.input_size(), "{}", b.arch());
        assert_eq!(b.feature_dim(), net.feature_dim(), "{}", b.arch());
    }
}

#[test]
fn save_load_round_trip_and_strict_config() {
    let device = Default::default();
    let dir = temp_dir("model");
    let config = FaceModelConfig::new(small_backbones().remove(0), 8, vec![0.5, 10.0, 40.0]);
    let model = config.init::<B>(&device).unwrap();
    model.save(&config, &dir).unwrap();
    let (c2, loaded) = load_model::<B>(&dir, &device).unwrap();
    assert_eq!(c2, config);
    let x = Tensor::<B, 4>::random([2, 3, 112, 112], Distribution::Normal(0.0, 1.0), &device);
    let (a, b) = (model.forward(x.clone()), loaded.forward(x));
    let diff = (a.embedding - b.embedding).abs().max().into_scalar();
    assert!(diff < 1e-6, "{diff}");
    assert_eq!(loaded.age_bins(), &[0.5, 10.0, 40.0]);
    // Expected age of uniform logits is the mean bin age.
    let mean = loaded.expected_age(Tensor::zeros([1, 3], &device)).into_scalar();
    assert!((mean - 50.5 / 3.0).abs() < 1e-4, "{mean}");
    // A misspelt key deep in the backbone is refused with its path.
    let text = std::fs::read_to_string(dir.join(files::CONFIG)).unwrap();
    std::fs::write(
        dir.join(files::CONFIG),
        text.replace("\"base_width\"", "\"base_widht\""),
    )
    .unwrap();
    let err = load_model::<B>(&dir, &device).unwrap_err().to_string();
    assert!(err.contains("backbone.base_widht"), "{err}");
    std::fs::remove_file(dir.join(files::CONFIG)).unwrap();
    assert!(load_model::<B>(&dir, &device).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn records_round_trip_and_corrupt_files_are_named() {
    let dir = temp_dir("record");
    let device = Default::default();
    let a: Linear<B> = LinearConfig::new(3, 2).init(&device);
    let path = dir.join("a.bin");
    save_module(&a, &path).unwrap();
    let b = load_module(LinearConfig::new(3, 2).init::<B>(&device), &path, &device).unwrap();
    let (wa, wb) = (a.weight.val().into_data(), b.weight.val().into_data());
    assert_eq!(wa, wb);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_module(LinearConfig::new(3, 2).init::<B>(&device), &path, &device).unwrap_err();
    assert!(err.to_string().contains("a.bin"), "{err}");
    // Same structure, other widths: the shapes are compared.
    save_module(&LinearConfig::new(4, 2).init::<B>(&device), &path).unwrap();
    let err = load_module(LinearConfig::new(3, 2).init::<B>(&device), &path, &device).unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
    let missing = load_module(a, &dir.join("none.bin"), &device).unwrap_err();
    assert!(missing.to_string().contains("none.bin"), "{missing}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_student_folds_its_batch_norms_to_the_same_outputs_and_round_trips() {
    use face_nets::FoldBatchNorm;
    let device = Default::default();
    let x = Tensor::<B, 4>::random([2, 3, 112, 112], Distribution::Normal(0.0, 1.0), &device);
    for (i, b) in small_backbones().into_iter().enumerate() {
        let size = b.input_size();
        let x = x.clone().slice([0..2, 0..3, 0..size.min(112), 0..size.min(112)]);
        let x = if size > 112 {
            x.pad(
                (0, size - 112, 0, size - 112),
                burn::tensor::ops::PadMode::Constant(0.5),
            )
        } else {
            x
        };
        let config = FaceModelConfig::new(b, 8, vec![0.5, 10.0, 40.0]);
        let model = face_nets::record::spread_vectors(config.init::<B>(&device).unwrap(), i);
        let before = model.forward(x.clone());
        let folded = model.fold_batch_norm();
        let after = folded.forward(x.clone());
        let arch = config.backbone.arch();
        let rel = |a: Tensor<B, 2>, b: Tensor<B, 2>| {
            let scale = a.clone().abs().max().into_scalar().max(1e-6);
            (a - b).abs().max().into_scalar() / scale
        };
        let d_age = rel(before.age_logits.clone(), after.age_logits.clone());
        let d_emb = rel(before.embedding.clone(), after.embedding.clone());
        let d_gender = rel(
            before.gender_logit.clone().unsqueeze(),
            after.gender_logit.clone().unsqueeze(),
        );
        assert!(
            d_emb.max(d_age).max(d_gender) <= 1e-5,
            "{arch}: {d_emb:e} {d_age:e} {d_gender:e}"
        );
        // the folded student saves and loads as any other (same record layout)
        let dir = temp_dir(&format!("folded-{i}"));
        folded.save(&config, &dir).unwrap();
        let (read, loaded) = load_model::<B>(&dir, &device).unwrap();
        assert!(read.folded, "{arch}: the saved config says folded");
        let again = loaded.forward(x);
        assert!(rel(after.embedding, again.embedding) <= 1e-6, "{arch}: reloaded");
        let _ = std::fs::remove_dir_all(dir);
    }
}
