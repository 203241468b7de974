//! Export and load times of a face model: the PyTorch layout (`write_torch` / `read_torch`)
//! and ONNX (`write_onnx`, then the executor's `OnnxModel::load`), for the quickstart's student
//! (iResNet-18, width 16, 128-d), a published-size iResNet-50 (512-d) and arcface_torch's
//! `vit_t` (the transformer graph: layer norms, attention, 512-d). The anchor,
//! `tools/bench_export_torch.py`, times PyTorch on the same architectures in the same sitting:
//! `safetensors.torch.save_file` / `load_file` + `load_state_dict`, `torch.onnx.export`, and
//! onnxruntime's session creation.

use burn::backend::NdArray;
use criterion::{criterion_group, criterion_main, Criterion};
use face_nets::export::{read_torch, write_onnx, write_torch};
use face_nets::onnx::OnnxModel;
use face_nets::{BackboneConfig, FaceModelConfig, FaceVitConfig, IResNetConfig};

type B = NdArray<f32>;

fn bench(c: &mut Criterion) {
    face_nets::keep_freed_memory();
    let dev = Default::default();
    let dir = std::env::temp_dir().join(format!("face-nets-bench-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bins: Vec<f32> = (0..101).map(|a| a as f32).collect();
    let models = [
        (
            "student_r18w16",
            BackboneConfig::IResNet(IResNetConfig::r18().with_base_width(16).with_num_features(128)),
            128,
        ),
        (
            "iresnet50",
            BackboneConfig::IResNet(IResNetConfig::new([3, 4, 14, 3])),
            512,
        ),
        ("vit_t", BackboneConfig::Vit(FaceVitConfig::vit_t()), 512),
    ];
    let mut group = c.benchmark_group("export");
    group.sample_size(10);
    for (name, backbone, dim) in models {
        let config = FaceModelConfig::new(backbone, dim, bins.clone());
        let model = config.init::<B>(&dev).expect("model");
        let st = dir.join(format!("{name}.safetensors"));
        let onnx = dir.join(format!("{name}.onnx"));
        group.bench_function(format!("{name}/torch_write"), |b| {
            b.iter(|| write_torch(&model, &config, &st).expect("write"))
        });
        group.bench_function(format!("{name}/torch_read"), |b| {
            b.iter(|| read_torch::<B>(&st, &dev).expect("read").0.embedding_dim)
        });
        group.bench_function(format!("{name}/onnx_write"), |b| {
            b.iter(|| write_onnx(&model, &config, &onnx).expect("write"))
        });
        group.bench_function(format!("{name}/onnx_load"), |b| {
            b.iter(|| OnnxModel::<B>::load(&onnx, &dev).expect("load").steps())
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
