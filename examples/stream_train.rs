//! Measures the streamed training data path on a RecordIO set with its target cache (as
//! `facekit teach --aligned` or `examples/synthetic_recordio.rs --targets` writes them):
//! peak resident memory and images/s of one whole epoch of batches (read, decode, align,
//! augment, normalise, targets), or of real training steps of the default student.
//!
//! ```text
//! cargo run --release --example stream_train -- --rec /tmp/rec20k epoch        # the data path
//! cargo run --release --example stream_train -- --rec /tmp/rec20k train 20     # 20 student steps
//! ```
//!
//! It prints one JSON line: faces, images/s, seconds and the peak RSS (`VmHWM`).

use std::path::PathBuf;
use std::time::Instant;

use face_data::{Normalize, RecordIoFaces};
use face_distill::config::{DistillConfig, Streaming};
use face_distill::{HostBatch, StreamedFaces, TrainFaces, Trainer};
use face_nets::NdArrayTrain;
use rand::seq::SliceRandom;
use rand::SeedableRng;

type Error = Box<dyn std::error::Error>;

/// The process's peak resident memory in MiB (Linux `VmHWM`; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: stream_train --rec DIR (epoch | train STEPS) [--batch N]";
    let at = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let rec = PathBuf::from(at("--rec").ok_or(usage)?);
    let batch: usize = at("--batch").map_or(Ok(32), |b| b.parse())?;
    let mode = args
        .iter()
        .find(|a| *a == "epoch" || *a == "train")
        .ok_or(usage)?
        .clone();
    let t0 = Instant::now();
    let source = Box::new(RecordIoFaces::open(&rec)?);
    let set = StreamedFaces::open(&rec.join("targets.safetensors"), source, 112)?;
    let n = set.len();
    let opened = t0.elapsed().as_secs_f64();
    let mut config = DistillConfig::default();
    config.data.batch = batch;
    config.data.stream = Streaming::On;
    let (images, seconds) = match mode.as_str() {
        "epoch" => {
            // One epoch of the trainer's batches: a seeded permutation, augmented.
            let pipe = face_distill::data::augmentation(&config.data.augment, 112);
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
            let t = Instant::now();
            let mut checksum = 0.0f64;
            for (b, rows) in order.chunks(batch).enumerate() {
                let aug = pipe.as_ref().map(|p| (p, 0, 0, (b * batch) as u64));
                let host = HostBatch::new(&set, rows, aug, &Normalize::arcface())?;
                checksum += f64::from(host.pixels[0]) + f64::from(host.targets.p_male[0]);
            }
            std::hint::black_box(checksum);
            (n, t.elapsed().as_secs_f64())
        }
        _ => {
            let steps: u64 = args
                .iter()
                .skip_while(|a| *a != "train")
                .nth(1)
                .ok_or(usage)?
                .parse()?;
            config.train.max_steps = Some(steps);
            config.train.checkpoint_every = steps + 1;
            let dev = Default::default();
            let student = face_distill::pipeline::new_student::<NdArrayTrain>(&config, &set, &dev)?;
            let run = tempfile::tempdir()?;
            let t = Instant::now();
            let out = Trainer::<NdArrayTrain>::new(config, vec![dev], run.path())?
                .with_progress(false)
                .fit(student, &set, None)?;
            let faces: u64 = out.state.train.iter().map(|r| r.faces).sum();
            let data: f64 = out.state.train.iter().map(|r| r.data_seconds).sum();
            eprintln!(
                "{} steps, {faces} faces; waiting on data {data:.2} s of {:.1} s",
                out.state.step,
                t.elapsed().as_secs_f64()
            );
            (faces as usize, t.elapsed().as_secs_f64())
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "mode": mode, "faces_in_set": n, "batch": batch, "images": images,
            "seconds": seconds, "images_per_s": images as f64 / seconds,
            "open_seconds": opened, "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}
