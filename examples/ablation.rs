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

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use face_distill::config::{DistillConfig, TaskMode};
use face_distill::eval::predict;
use face_distill::{DeviceChoice, FaceSet, Student, Trainer};
use face_teachers::{CacheItem, TargetCache};

type Error = Box<dyn std::error::Error>;

#[derive(Default, Clone, Copy)]
struct Scores {
    teacher_cosine: f64,
    age_mae: f64,
    gender_agree: f64,
}

fn held_out_scores<B: AutodiffBackend>(
    config: &DistillConfig,
    train: &FaceSet,
    test: &FaceSet,
    seed: u64,
    dir: &std::path::Path,
    device: &B::Device,
) -> Result<Scores, Error> {
    let t = train.targets();
    B::seed(device, seed);
    let student = Student::<B>::new(&config.student.backbone, t.dim, t.age_bins.len(), device)?;
    let mut c = config.clone();
    c.train.seed = seed;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let out = Trainer::<B>::new(c, vec![device.clone()], dir)?.fit(student, train, None)?;
    let p = predict(&out.student.valid(), test, device);
    let tt = test.targets();
    let n = test.len() as f64;
    let d = tt.dim;
    Ok(Scores {
        teacher_cosine: (0..test.len())
            .map(|r| {
                p.embeddings[r * d..(r + 1) * d]
                    .iter()
                    .zip(&tt.embeddings[r * d..(r + 1) * d])
                    .map(|(a, b)| f64::from(a * b))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n,
        age_mae: p
            .expected_age
            .iter()
            .zip(&tt.expected_age)
            .map(|(a, b)| f64::from((a - b).abs()))
            .sum::<f64>()
            / n,
        gender_agree: p
            .p_male
            .iter()
            .zip(&tt.p_male)
            .filter(|(a, b)| (**a > 0.5) == (**b > 0.5))
            .count() as f64
            / n,
    })
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

fn run<B: AutodiffBackend>(
    run_dir: PathBuf,
    config: DistillConfig,
    seeds: u64,
    holdout: f64,
    device: B::Device,
) -> Result<(), Error> {
    let cache = TargetCache::read(&run_dir.join("targets.safetensors"))?;
    let items = CacheItem::from_folder(&run_dir.join("faces"))?;
    let probe = Student::<B>::new(&config.student.backbone, cache.meta.dim, cache.meta.age_bins.len(), &device)?;
    let all = FaceSet::from_cache(&cache, &items, probe.input_size() as u32, None)?;
    // Every k-th face (by id order) is held out: deterministic and spread over the images.
    let every = (1.0 / holdout).round().max(2.0) as usize;
    let test_rows: Vec<usize> = (0..all.len()).filter(|i| i % every == every - 1).collect();
    let train_rows: Vec<usize> = (0..all.len()).filter(|i| i % every != every - 1).collect();
    let (train, test) = (all.subset(&train_rows)?, all.subset(&test_rows)?);
    println!(
        "{} training faces, {} held-out faces, {} seeds, {} epochs each",
        train.len(),
        test.len(),
        seeds,
        config.train.epochs
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
            s.push(held_out_scores::<B>(&c, &train, &test, seed, &dir, &device)?);
        }
        let f = |g: fn(&Scores) -> f64| mean_std(&s.iter().map(g).collect::<Vec<_>>());
        let (cm, cs) = f(|x| x.teacher_cosine);
        let (am, as_) = f(|x| x.age_mae);
        let (gm, gs) = f(|x| x.gender_agree);
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

fn main() -> Result<(), Error> {
    let mut run_dir = PathBuf::from("runs/quickstart");
    let (mut epochs, mut seeds, mut holdout) = (30u64, 3u64, 0.25f64);
    let mut device = DeviceChoice::Candle;
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
    match device {
        DeviceChoice::NdArray => run::<face_distill::NdArrayTrain>(run_dir, config, seeds, holdout, Default::default()),
        DeviceChoice::Candle => run::<face_distill::CandleTrain>(run_dir, config, seeds, holdout, Default::default()),
        DeviceChoice::Cuda(_) => Err("the ablation runs on the CPU backends (cpu, candle)".into()),
    }
}
