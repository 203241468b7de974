//! Criterion benches of face-metrics. Anchors (scikit-learn / numpy on the same
//! scores, same sitting) come from `tools/bench_sklearn_metrics.py`; ratios are
//! recorded in docs/BENCHMARKS.md.
//!
//! `ijbc_table` reads the scores dumped by
//! `cargo run --release --example roc_report -- --dump-scores /tmp/ijbc_scores.bin`
//! (override with FACEKIT_IJBC_SCORES); without the file it generates scores of
//! the same size and shape.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use face_metrics::{
    mann_whitney_auc, FarConvention, PairwiseBatchAuc, VerificationReport, VerificationScores,
    DEFAULT_FAR_TARGETS,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

fn ijbc_scores() -> (Vec<f64>, Vec<f64>) {
    let path = std::env::var("FACEKIT_IJBC_SCORES").unwrap_or_else(|_| "/tmp/ijbc_scores.bin".into());
    if let Ok(bytes) = std::fs::read(&path) {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            b
        };
        let (g, n) = (
            u64::from_le_bytes(word(0)) as usize,
            u64::from_le_bytes(word(1)) as usize,
        );
        if bytes.len() == 16 + 8 * (g + n) {
            let all: Vec<f64> = (2..2 + g + n).map(|i| f64::from_le_bytes(word(i))).collect();
            eprintln!("ijbc_table: scores from {path}");
            return (all[..g].to_vec(), all[g..].to_vec());
        }
    }
    eprintln!("ijbc_table: {path} missing, generating scores");
    let mut rng = StdRng::seed_from_u64(7);
    let (g, i) = (Normal::new(0.6, 0.15).unwrap(), Normal::new(0.0, 0.08).unwrap());
    let gen = (0..19_557)
        .map(|_| f64::from(g.sample(&mut rng) as f32))
        .collect();
    let imp = (0..15_638_932)
        .map(|_| f64::from(i.sample(&mut rng) as f32))
        .collect();
    (gen, imp)
}

/// The insightface IJB-C table and more: index 15,658,489 scores, AUC, EER,
/// TAR@FAR at 1e-6..1e-1 in all three conventions.
fn ijbc_table(c: &mut Criterion) {
    let (gen, imp) = ijbc_scores();
    let mut group = c.benchmark_group("verification");
    group.sample_size(10);
    group.bench_function("ijbc_table_15.66M_all_conventions", |b| {
        b.iter(|| {
            let v = VerificationScores::from_split(&gen, &imp[..]).unwrap();
            VerificationReport::new("bench", &v, &DEFAULT_FAR_TARGETS).unwrap()
        })
    });
    group.bench_function("ijbc_table_15.66M_nearest_only", |b| {
        b.iter(|| {
            let v = VerificationScores::from_split(&gen, &imp[..]).unwrap();
            (
                v.auc(),
                v.tar_at_far(&DEFAULT_FAR_TARGETS, FarConvention::Nearest)
                    .unwrap(),
            )
        })
    });
    group.finish();
}

fn batch_embeddings(seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (p, k, dim) = (128usize, 4usize, 512usize);
    let centres: Vec<f32> = (0..p * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let mut emb = Vec::with_capacity(p * k * dim);
    let mut labels = Vec::with_capacity(p * k);
    for id in 0..p {
        for _ in 0..k {
            emb.extend((0..dim).map(|d| 0.5 * centres[id * dim + d] + rng.gen_range(-1.0f32..1.0)));
            labels.push(id as u32);
        }
    }
    (emb, labels)
}

/// irAUC on a 512-embedding batch (128 identities × 4, 512-d): 130,816 pairs.
fn irauc_batch(c: &mut Criterion) {
    let (emb, labels) = batch_embeddings(3);
    let mut scorer = PairwiseBatchAuc::new();
    c.bench_function("irauc_batch_512x512", |b| {
        b.iter(|| scorer.compute(&emb, 512, &labels).unwrap())
    });
    // The AUC step alone, on the batch's 130,816 pair scores.
    let (gen, imp) = scorer.pair_scores(&emb, 512, &labels).unwrap();
    c.bench_function("per_batch_auc_130816_pairs_slots", |b| {
        b.iter(|| VerificationScores::from_split(&gen, &imp[..]).unwrap().auc())
    });
    let scores: Vec<f64> = gen.iter().chain(&imp).copied().collect();
    let labels: Vec<bool> = gen
        .iter()
        .map(|_| true)
        .chain(imp.iter().map(|_| false))
        .collect();
    c.bench_function("per_batch_auc_130816_pairs_sorting", |b| {
        b.iter_batched(
            || (),
            |_| mann_whitney_auc(&scores, &labels).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, ijbc_table, irauc_batch);
criterion_main!(benches);
