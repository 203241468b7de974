//! IJB-C-sized 1:1 verification report on synthetic scores.
//!
//! Generates 19,557 genuine and 15,638,932 impostor cosine scores (the IJB-C 1:1
//! pair counts; f32-rounded like real embedding scores), then prints AUC, the
//! TAR@FAR table in the three conventions and the EER, and writes
//! `report.json`, `roc.svg` and `det.svg`.
//!
//! ```text
//! cargo run --release --example roc_report -- [--out DIR] [--seed N] [--dump-scores FILE]
//! ```
//! `--dump-scores` also writes the raw scores (little-endian f64: genuine then
//! impostor, after a header of two u64 counts) for `tools/bench_sklearn_metrics.py`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use face_metrics::{
    write_det_svg, write_roc_svg, VerificationReport, VerificationScores, DEFAULT_FAR_TARGETS,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

const N_GENUINE: usize = 19_557;
const N_IMPOSTOR: usize = 15_638_932;

struct Args {
    out: PathBuf,
    seed: u64,
    dump: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: PathBuf::from("out/roc_report"),
        seed: 20_261_123,
        dump: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value()?),
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--dump-scores" => args.dump = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                return Err("usage: roc_report [--out DIR] [--seed N] [--dump-scores FILE]".into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Deterministic, parallel sampling: chunk `c` uses its own seeded generator.
fn sample(n: usize, seed: u64, draw: impl Fn(&mut StdRng) -> f64 + Sync) -> Vec<f64> {
    const CHUNK: usize = 1 << 16;
    let mut out = vec![0.0; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, part)| {
        let mut rng = StdRng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for x in part {
            // Cosine of f32 embeddings: rounded to f32, clipped to [-1, 1].
            *x = f64::from(draw(&mut rng).clamp(-1.0, 1.0) as f32);
        }
    });
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out)?;

    let t = Instant::now();
    // Genuine: mostly well separated, with a 12 % tail of hard pairs (pose, age, blur).
    let easy = Normal::new(0.62, 0.11)?;
    let hard = Normal::new(0.30, 0.12)?;
    let genuine = sample(N_GENUINE, args.seed, |r| {
        if r.gen::<f64>() < 0.12 {
            hard.sample(r)
        } else {
            easy.sample(r)
        }
    });
    // Impostors: centred near 0 with a slightly heavy right tail (look-alikes).
    let body = Normal::new(0.0, 0.075)?;
    let tail = Normal::new(0.12, 0.08)?;
    let impostor = sample(N_IMPOSTOR, args.seed.wrapping_add(1), |r| {
        if r.gen::<f64>() < 0.01 {
            tail.sample(r)
        } else {
            body.sample(r)
        }
    });
    println!(
        "generated {N_GENUINE} genuine + {N_IMPOSTOR} impostor scores in {:.2?}",
        t.elapsed()
    );

    if let Some(path) = &args.dump {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        f.write_all(&(N_GENUINE as u64).to_le_bytes())?;
        f.write_all(&(N_IMPOSTOR as u64).to_le_bytes())?;
        for x in genuine.iter().chain(&impostor) {
            f.write_all(&x.to_le_bytes())?;
        }
        f.flush()?;
        println!("raw scores written to {}", path.display());
    }

    let t = Instant::now();
    let scores = VerificationScores::from_split(&genuine, &impostor[..])?;
    println!(
        "indexed the scores (validate, sort genuine, count impostors per slot) in {:.2?}",
        t.elapsed()
    );
    let t = Instant::now();
    let report = VerificationReport::new("IJB-C-sized synthetic 1:1", &scores, &DEFAULT_FAR_TARGETS)?;
    println!(
        "AUC, EER and TAR@FAR (3 conventions × 6 targets) in {:.2?}\n",
        t.elapsed()
    );
    print!("{}", report.summary());

    report.write_json(args.out.join("report.json"))?;
    write_roc_svg(
        args.out.join("roc.svg"),
        "ROC — IJB-C-sized synthetic",
        &[("synthetic", &report.roc)],
        1e-6,
    )?;
    write_det_svg(
        args.out.join("det.svg"),
        "DET — IJB-C-sized synthetic",
        &[("synthetic", &report.det)],
    )?;
    println!("\nwrote {}/{{report.json, roc.svg, det.svg}}", args.out.display());
    Ok(())
}
