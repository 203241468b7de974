//! Distil a student from an identity teacher you bring as an ONNX file: write its teacher
//! spec, cut the bundled faces, make the targets with that teacher (and the bundled age/gender
//! teacher), train a small student, and report teacher against student.
//!
//! ```text
//! cargo run --release --example onnx_teacher                       # the fixture below
//! cargo run --release --example onnx_teacher -- MODEL.onnx OUTPUT_NAME [--out DIR] [--epochs N]
//! ```
//!
//! By default the teacher is a face-nets network from a test fixture, exported here to ONNX:
//! the iResNet-18 face model of `crates/face-nets/tests/fixtures/export/iresnet.safetensors`
//! (PyTorch layout, read by `face_nets::export::read_torch`), written by
//! `face_nets::export::write_onnx` (BatchNorms folded, dynamic batch axis, output
//! `embedding`, 16-d). Its weights are random, so the student learns to copy an untrained
//! embedding: the point is the path, not the accuracy. Put a real model's file and output name in
//! its place: an insightface model-zoo `w600k_r50.onnx`, output `683`, input
//! `(x − 127.5)/127.5` RGB on the ArcFace 112 crop.

use std::path::PathBuf;
use std::time::Instant;

use face_distill::config::DistillConfig;
use face_distill::pipeline::{build_targets, cut_faces, distill, load_mtcnn};
use face_distill::FaceSet;
use face_nets::DeviceChoice;
use face_teachers::spec::{file_sha256, Channels, IdentityNet, InputSpec, ModelFile, OutputRef, Template};
use face_teachers::{default_models_dir, TeacherSpec};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    facekit::nets::keep_freed_memory();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut onnx = None;
    let mut output = "embedding".to_owned();
    let (mut out, mut epochs) = (PathBuf::from("runs/onnx_teacher"), 10u64);
    let mut positional = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().ok_or("--out needs a value")?.into(),
            "--epochs" => epochs = it.next().ok_or("--epochs needs a value")?.parse()?,
            _ => positional.push(a),
        }
    }
    if let [file, name] = positional.as_slice() {
        onnx = Some(PathBuf::from(file));
        output = name.clone();
    } else if !positional.is_empty() {
        return Err("usage: onnx_teacher [MODEL.onnx OUTPUT_NAME] [--out DIR] [--epochs N]".into());
    }
    std::fs::create_dir_all(&out)?;
    let onnx = match onnx {
        Some(f) => f,
        // 0. A face-nets network from a test fixture, exported to ONNX.
        None => {
            let fixture = root.join("crates/face-nets/tests/fixtures/export/iresnet.safetensors");
            let (config, net) =
                face_nets::export::read_torch::<burn::backend::NdArray>(&fixture, &Default::default())?;
            let file = out.join("teacher.onnx");
            face_nets::export::write_onnx(&net, &config, &file)?;
            println!("0. {} → {} (ONNX)", fixture.display(), file.display());
            file
        }
    };

    // 1. The teacher spec: the file and its hash, the crop, the normalisation, the output.
    let spec = TeacherSpec {
        identity: Some(IdentityNet {
            model: ModelFile::Onnx {
                file: std::fs::canonicalize(&onnx)?,
                sha256: file_sha256(&onnx)?,
            },
            input: Some(InputSpec {
                size: 112,
                template: Template::Arcface,
                mean: [127.5; 3],
                std: [127.5; 3],
                scale: 1.0,
                channels: Channels::Rgb,
            }),
            output: Some(OutputRef {
                name: output,
                columns: None,
            }),
        }),
        ..TeacherSpec::default()
    };
    let spec_path = out.join("identity.teacher.json");
    spec.write(&spec_path)?;
    println!("1. teacher spec → {}", spec_path.display());

    // 2. Faces, then targets from that teacher (the cache is keyed by the spec's hash).
    let models = default_models_dir();
    let mut config = DistillConfig::default();
    config.teachers.identity = Some(spec_path);
    config.train.epochs = epochs;
    config.data.batch = 16;
    config.train.early_stop_patience = None;
    config.validate()?;
    let images = root.join("data/faces");
    let labels = face_data::read_identity_labels(&images.join("manifest.csv"))?;
    let faces_dir = out.join("faces");
    let cut = cut_faces(&load_mtcnn(&models)?, &images, &labels, &faces_dir)?;
    let t0 = Instant::now();
    let cache_path = out.join("targets.safetensors");
    let (cache, items, _) = build_targets(
        &models,
        &config.teachers,
        &faces_dir,
        &cache_path,
        true,
        &DeviceChoice::NdArray,
    )?;
    println!(
        "2. {} faces, targets from {} ({}-d) in {:.1} s",
        cache.len(),
        cache.meta.identity_version,
        cache.meta.dim,
        t0.elapsed().as_secs_f64()
    );

    // 3. The student learns that teacher's embedding (and the bundled age/gender teacher's).
    let size = config.student.backbone.input_size() as u32;
    let train = FaceSet::from_cache(&cache, &items, size, None)?;
    let val = FaceSet::from_cache(&cache, &items, size, Some(&cut.face_labels))?;
    let run = distill(
        &config,
        &DeviceChoice::NdArray,
        &train,
        Some(&val),
        &out.join("run"),
        true,
        None,
    )?;
    if let Some(report) = &run.report {
        println!("3. report:\n{}", report.table());
    }
    Ok(())
}
