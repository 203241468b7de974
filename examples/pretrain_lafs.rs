//! LAFS self-supervised pretraining on the bundled real faces, on the CPU: MTCNN finds and aligns
//! every face (its five landmarks carried into the 112-pixel crop), a small landmark-token ViT
//! is pretrained with DINO + LAFS' landmark shuffle and perturbation, the collapse monitors are
//! printed every epoch and drawn to `monitors.svg`, and the backbone is read out before and after:
//! instance retrieval across augmentations (no labels) and the 1-shot protocol on the faces with
//! a known identity, before and after a short ArcFace fine-tune on the shots.
//!
//! ```text
//! cargo run --release --example pretrain_lafs
//! cargo run --release --example pretrain_lafs -- --images DIR [--out DIR] [--epochs N] [--set key=value]…
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use face_ssl::fewshot::transfer;
use face_ssl::{
    arcface_finetune, embed, one_shot_eval, view_retrieval, Face, FineTuneConfig, OneShotReport,
    OneShotSplit, PretrainConfig, Pretrainer, Tokenizer,
};
use face_teachers::default_models_dir;

type Error = Box<dyn std::error::Error>;
type Infer = NdArray<f32>;
type Train = Autodiff<Infer>;

struct Args {
    images: PathBuf,
    out: PathBuf,
    epochs: Option<usize>,
    overrides: Vec<String>,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        images: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/faces"),
        out: PathBuf::from("runs/pretrain_lafs"),
        epochs: None,
        overrides: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--images" => a.images = value()?.into(),
            "--out" => a.out = value()?.into(),
            "--epochs" => a.epochs = Some(value()?.parse()?),
            "--set" => a.overrides.push(value()?),
            "-h" | "--help" => {
                println!("usage: pretrain_lafs [--images DIR] [--out DIR] [--epochs N] [--set key=value]…");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (see --help)").into()),
        }
    }
    Ok(a)
}

fn line(name: &str, retrieval: f64, r: &OneShotReport) -> String {
    format!(
        "{name:<28} view retrieval {:>5.1} %   1-shot rank-1 {:>5.1} %   AUC {:.3}",
        100.0 * retrieval,
        100.0 * r.rank1,
        r.verification.auc
    )
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let device = burn::backend::ndarray::NdArrayDevice::default();

    // 1. Faces: every confident detection, aligned with its landmarks.
    let t0 = Instant::now();
    let mtcnn = face_detect::Mtcnn::<Infer>::load(&default_models_dir(), Default::default(), &device)?;
    // Identities of the folder's labelled photos (the bundled folder's manifest names them).
    let manifest = args.images.join("manifest.csv");
    let labels = if manifest.is_file() {
        face_data::read_identity_labels(&manifest)?
    } else {
        HashMap::new()
    };
    let files = face_data::list_images(&args.images)?;
    let (mut faces, mut labelled): (Vec<Face>, Vec<(usize, String)>) = (Vec::new(), Vec::new());
    // Every confident detection, largest first; a labelled photo's identity goes to its largest face.
    mtcnn.scan_images(
        &files,
        &labels,
        0.9,
        || {},
        |f| -> Result<(), Error> {
            if let Some(id) = f.label {
                labelled.push((faces.len(), id.to_owned()));
            }
            faces.push(Face::align(f.photo, &f.detection.landmarks, 112)?);
            Ok(())
        },
    )?;
    println!(
        "1. detect + align: {} faces in {} images, {} with an identity ({:.1} s)",
        faces.len(),
        files.len(),
        labelled.len(),
        t0.elapsed().as_secs_f64()
    );

    // 2. Pretrain.
    let mut config = PretrainConfig::tiny(Tokenizer::Landmarks).with_overrides(&args.overrides)?;
    if let Some(e) = args.epochs {
        config.optim.epochs = e;
    }
    let trainer = Pretrainer::<Train>::new(config.clone(), device)?;
    let views = trainer.views().clone();
    <Infer as Backend>::seed(&device, config.seed);
    let untrained = config.backbone_config()?.init::<Infer>(&device);
    println!(
        "2. pretrain LAFS: ViT {}×{} ({} landmark tokens + {} local views of {}), {} epochs of {} steps",
        config.vit.depth,
        config.vit.embed_dim,
        config.views.global_tokens(),
        config.views.local_views,
        config.views.local_view_tokens(),
        config.optim.epochs,
        trainer.steps_per_epoch(faces.len())
    );
    println!("   epoch   loss  H(teacher)  H(mean)  KL(t‖s)  std·√d  img/s");
    let run = trainer.fit(&faces, |r| {
        let m = &r.monitors;
        println!(
            "   {:>5} {:>6.3} {:>11.3} {:>8.3} {:>8.3} {:>7.3} {:>6.1}{}",
            r.epoch,
            m.loss,
            m.teacher_entropy,
            m.marginal_entropy,
            m.kl,
            m.std_ratio,
            r.images_per_second,
            r.collapse
                .map(|c| format!("  WARNING: collapse — {c}"))
                .unwrap_or_default()
        );
        true
    })?;
    run.save(&args.out)?;
    println!(
        "   saved to {} (monitor curves: monitors.svg)",
        args.out.display()
    );

    // 3. Read-outs.
    let ids: Vec<String> = labelled.iter().map(|(_, id)| id.clone()).collect();
    let lf: Vec<Face> = labelled.iter().map(|(i, _)| faces[*i].clone()).collect();
    let readout = |vit: &face_ssl::TokenVit<Infer>| -> Result<(f64, OneShotReport), Error> {
        let retrieval = view_retrieval(vit, &views, &faces, 7, &device)?;
        let report = one_shot_eval(&embed(vit, &views, &lf, 16, &device)?, &ids)?;
        Ok((retrieval, report))
    };
    println!(
        "3. read-outs ({} faces for retrieval; {} identities, 1-shot):",
        faces.len(),
        OneShotSplit::new(&ids).gallery.len()
    );
    let (r0, o0) = readout(&untrained)?;
    println!("   {}", line("untrained", r0, &o0));
    let (r1, o1) = readout(&run.teacher.backbone)?;
    println!("   {}", line("pretrained (teacher)", r1, &o1));
    let split = OneShotSplit::new(&ids);
    let shots: Vec<Face> = split.gallery.iter().map(|&i| lf[i].clone()).collect();
    let tunable = transfer(
        &run.teacher.backbone,
        config.backbone_config()?.init::<Train>(&device),
        &device,
    )?;
    let (tuned, losses) = arcface_finetune(tunable, &views, &shots, &FineTuneConfig::default(), &device)?;
    let (r2, o2) = readout(&tuned)?;
    println!(
        "   {}   (ArcFace loss {:.2} → {:.2})",
        line("+ ArcFace on the shots", r2, &o2),
        losses.first().copied().unwrap_or(f64::NAN),
        losses.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "   note: {} probes of {} identities are far too few for a few-shot figure; on real data pass --images.",
        o0.probes, o0.identities
    );
    Ok(())
}
