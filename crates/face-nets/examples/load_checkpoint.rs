//! Loads a PyTorch checkpoint into one of the backbones, prints the load report, and embeds a
//! deterministic input on NdArray:
//!
//! ```text
//! cargo run -p face-nets --release --example load_checkpoint -- mbf-small crates/face-nets/tests/fixtures/mbf_small.pth
//! cargo run -p face-nets --release --example load_checkpoint -- iresnet50 backbone.pth
//! ```
//!
//! Architectures: iresnet18|34|50|100, iresnet18-w8 (the test fixture), mbf, mbf-small,
//! resnet50, inception-resnet-v1, vit-t, vit-s, farl-vit-b16.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::backend::NdArray;
use burn::tensor::{Distribution, Tensor};
use face_nets::weights::LoadReport;
use face_nets::{
    l2_normalize, Backbone, ClipCheckpoint, ClipVitConfig, FaceVitConfig, IResNetConfig,
    InceptionResnetV1Config, MobileFaceNetConfig, ResNetConfig,
};

type B = NdArray<f32>;

fn embed(model: &impl Backbone<B>, report: LoadReport) -> Tensor<B, 2> {
    println!(
        "applied {} tensors; ignored {} checkpoint keys{}",
        report.applied.len(),
        report.ignored.len(),
        report
            .ignored
            .iter()
            .find(|k| !k.ends_with("num_batches_tracked"))
            .map(|k| format!(" (e.g. {k})"))
            .unwrap_or_default()
    );
    let s = model.input_size();
    let x = Tensor::<B, 4>::random([2, 3, s, s], Distribution::Normal(0.0, 0.5), &Default::default());
    model.features(x)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arch, path] = args.as_slice() else {
        eprintln!("usage: load_checkpoint ARCH CHECKPOINT.pth");
        return ExitCode::from(2);
    };
    let path = PathBuf::from(path);
    let d = Default::default();
    let features = match arch.as_str() {
        "iresnet18" | "iresnet34" | "iresnet50" | "iresnet100" => {
            let cfg = match arch.as_str() {
                "iresnet18" => IResNetConfig::r18(),
                "iresnet34" => IResNetConfig::r34(),
                "iresnet50" => IResNetConfig::r50(),
                _ => IResNetConfig::r100(),
            };
            cfg.load_torch::<B>(&path, &d).map(|(m, r)| embed(&m, r))
        }
        "iresnet18-w8" => IResNetConfig::r18()
            .with_base_width(8)
            .with_num_features(32)
            .load_torch::<B>(&path, &d)
            .map(|(m, r)| embed(&m, r)),
        "mbf" => MobileFaceNetConfig::mbf()
            .load_torch::<B>(&path, &d)
            .map(|(m, r)| embed(&m, r)),
        "mbf-small" => MobileFaceNetConfig::new()
            .with_blocks([2, 2, 2, 1])
            .with_scale(1)
            .with_num_features(64)
            .load_torch::<B>(&path, &d)
            .map(|(m, r)| embed(&m, r)),
        "resnet50" => ResNetConfig::resnet50()
            .load_torch::<B>(&path, &d)
            .map(|(m, r)| embed(&m, r)),
        "inception-resnet-v1" => InceptionResnetV1Config::new()
            .load_torch::<B>(&path, &d)
            .map(|(m, r)| embed(&m, r)),
        "vit-t" => FaceVitConfig::vit_t()
            .load_torch::<B>(&path, &d)
            .map(|(m, r)| embed(&m, r)),
        "vit-s" => FaceVitConfig::vit_s()
            .load_torch::<B>(&path, &d)
            .map(|(m, r)| embed(&m, r)),
        "farl-vit-b16" => ClipVitConfig::vit_b16()
            .load_torch::<B>(&path, &ClipCheckpoint::farl(), &d)
            .map(|(m, r)| embed(&m, r)),
        other => {
            eprintln!("unknown architecture {other:?}");
            return ExitCode::from(2);
        }
    };
    match features {
        Ok(f) => {
            let [n, dim] = f.dims();
            let cos: f32 = {
                let e = l2_normalize(f, 1e-12);
                let a = e.clone().narrow(0, 0, 1);
                let b = e.narrow(0, 1, 1);
                (a * b).sum().into_scalar()
            };
            println!("{n} features of width {dim}; cosine between the two random inputs: {cos:.4}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
