//! Ablation: identity-only vs age/gender-only vs joint distillation with the same budget
//! (steps, batch, seeds), evaluated on faces held out from training. Tests — rather than
//! assumes — whether learning identity alongside helps the age and gender heads.
//!
//! ```text
//! cargo run --release --example quickstart          # builds runs/quickstart/{faces,targets.safetensors}
//! cargo run --release --example ablation -- [--run runs/quickstart] [--epochs 30] [--seeds 3]
//!     [--holdout 0.25] [--device cpu|candle] [--set key=value]…
//! ```
//!
//! Prints a Markdown table (mean ± std over seeds) and writes it to `<run>/ablation.md`.

use std::path::PathBuf;

use face_distill::config::{DistillConfig, TaskMode};
use face_distill::eval::{agreement, Agreement};
use face_distill::pipeline::train_and_predict;
use face_distill::FaceSet;
use face_nets::DeviceChoice;
use face_teachers::TargetCache;

type Error = Box<dyn std::error::Error>;

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

fn main() -> Result<(), Error> {
    let mut run_dir = PathBuf::from("runs/quickstart");
    let (mut epochs, mut seeds, mut holdout) = (30u64, 3u64, 0.25f64);
    let mut device = DeviceChoice::NdArray;
    let mut overrides = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--run" => run_dir = value()?.into(),
            "--epochs" => epochs = value()?.parse()?,
            "--seeds" => seeds = value()?.parse()?,
            "--holdout" => holdout = value()?.parse()?,
            "--device" => device = value()?.parse()?,
            "--set" => overrides.push(value()?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    if !(holdout > 0.0 && holdout < 1.0) || seeds == 0 {
        return Err("--holdout must be in (0, 1) and --seeds ≥ 1".into());
    }
    let mut config = DistillConfig::default();
    config.train.epochs = epochs;
    config.data.batch = 16;
    config.train.early_stop_patience = None;
    config.train.checkpoint_every = 1_000_000;
    let config = config.with_overrides(&overrides)?;
    config.validate()?;

    let cache = TargetCache::read(&run_dir.join("targets.safetensors"))?;
    let items = face_data::FileFaces::folder(&run_dir.join("faces"))?;
    let size = config.student.backbone.input_size() as u32;
    let all = FaceSet::from_cache(&cache, &items, size, None)?;
    // Every k-th face (by id order) is held out: deterministic and spread over the images.
    let every = (1.0 / holdout).round().max(2.0) as usize;
    let test_rows: Vec<usize> = (0..all.len()).filter(|i| i % every == every - 1).collect();
    let train_rows: Vec<usize> = (0..all.len()).filter(|i| i % every != every - 1).collect();
    let (train, test) = (all.subset(&train_rows)?, all.subset(&test_rows)?);
    println!(
        "{} training faces, {} held-out faces, {seeds} seeds × {epochs} epochs per mode",
        train.len(),
        test.len()
    );
    let mut table = String::from(
        "| mode | cos(student, teacher) ↑ | age MAE vs teacher (years) ↓ | gender agreement ↑ |\n|---|---|---|---|\n",
    );
    for mode in [TaskMode::IdentityOnly, TaskMode::AgeGenderOnly, TaskMode::Joint] {
        let mut c = config.clone();
        c.loss.mode = mode;
        let mut s = Vec::new();
        for seed in 0..seeds {
            let dir = run_dir.join(format!("ablation/{mode:?}-{seed}"));
            let p = train_and_predict(&c, &device, &train, &test, &dir, seed)?;
            s.push(agreement(&p, test.targets()));
        }
        let f = |g: fn(&Agreement) -> f64| mean_std(&s.iter().map(g).collect::<Vec<_>>());
        let (cm, cs) = f(|x| x.teacher_cosine);
        let (am, as_) = f(|x| x.age_mae);
        let (gm, gs) = f(|x| x.gender);
        let line = format!(
            "| {mode:?} | {cm:.3} ± {cs:.3} | {am:.2} ± {as_:.2} | {:.1} ± {:.1} % |\n",
            100.0 * gm,
            100.0 * gs
        );
        print!("{line}");
        table.push_str(&line);
    }
    std::fs::write(run_dir.join("ablation.md"), &table)?;
    println!("\n{table}");
    Ok(())
}
