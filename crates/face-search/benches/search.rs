//! 1:N search and pair-scoring throughput. Anchors (numpy matmul + argpartition,
//! insightface's IJB-C pair loop) come from `tools/bench_search_numpy.py`, run in
//! the same sitting on the same sizes; ratios are in docs/BENCHMARKS.md.
//!
//! - `search/{f32,f16,int8}_1M_x512_q256_k10`: 256 queries against 1,000,000
//!   512-d rows, top-10 each (256 M comparisons per iteration);
//! - `search/sparse_100k_x4096_q64_k10`: 4096-d ReLU embeddings, ~90 % zeros;
//! - `pairs/ijbc_15658489_x512`: IJB-C-sized 1:1 scoring, 23,124 templates and
//!   15,658,489 pairs in random order (no cache-friendly order assumed) and sorted by
//!   first template (`…_sorted_by_first`, the order of the real meta file).
//!
//! Set `FACEKIT_BENCH_ROWS` to shrink the 1M gallery on small machines.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use face_search::{score_pairs, BuildOptions, Gallery, Storage};

/// A fast deterministic generator (xorshift*), so building 512 M values takes seconds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Roughly Gaussian: sum of 4 uniforms, centred.
    fn gauss(&mut self) -> f32 {
        let u = self.next();
        let s: u32 = (0..4).map(|i| ((u >> (16 * i)) & 0xFFFF) as u32).sum();
        (s as f32 / 65535.0 - 2.0) * 1.732
    }
}

fn unit_rows(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed | 1);
    let mut v: Vec<f32> = (0..rows * dim).map(|_| rng.gauss()).collect();
    for r in v.chunks_exact_mut(dim) {
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        r.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn search(c: &mut Criterion) {
    let rows: usize = std::env::var("FACEKIT_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dim = 512;
    let nq = 256;
    eprintln!("simd kernels in use: {}", face_search::simd_in_use());
    let data = unit_rows(rows, dim, 1);
    let queries = unit_rows(nq, dim, 2);
    let ids: Vec<String> = (0..rows).map(|i| i.to_string()).collect();
    let mut group = c.benchmark_group("search");
    group.sample_size(10);
    group.throughput(Throughput::Elements((rows * nq) as u64));
    for storage in [Storage::F32, Storage::F16, Storage::Int8] {
        let g = Gallery::build(&ids, dim, &data, BuildOptions::new(storage)).unwrap();
        group.bench_function(format!("{storage}_{}k_x512_q256_k10", rows / 1000), |b| {
            b.iter(|| g.search(&queries, 10).unwrap())
        });
    }
    drop(data);
    // Sparse ReLU embeddings.
    let (srows, sdim, snq) = (100_000usize, 4096usize, 64usize);
    let mut rng = Rng(3);
    let sparse: Vec<f32> = (0..srows * sdim)
        .map(|_| (rng.gauss() - 1.2816).max(0.0))
        .collect();
    let squeries: Vec<f32> = (0..snq * sdim).map(|_| (rng.gauss() - 1.2816).max(0.0)).collect();
    let sids: Vec<String> = (0..srows).map(|i| i.to_string()).collect();
    let g = Gallery::build(&sids, sdim, &sparse, BuildOptions::new(Storage::Sparse)).unwrap();
    eprintln!(
        "sparse: {:.1} % non-zero, {} MB",
        100.0 * g.stored_values() as f64 / (srows * sdim) as f64,
        g.byte_len() >> 20
    );
    group.throughput(Throughput::Elements((srows * snq) as u64));
    group.bench_function("sparse_100k_x4096_q64_k10", |b| {
        b.iter(|| g.search(&squeries, 10).unwrap())
    });
    group.finish();
}

fn pairs(c: &mut Criterion) {
    let (templates, n_pairs, dim) = (23_124usize, 15_658_489usize, 512usize);
    let feats = unit_rows(templates, dim, 4);
    let mut rng = Rng(5);
    let pairs: Vec<(u32, u32)> = (0..n_pairs)
        .map(|_| {
            (
                (rng.next() % templates as u64) as u32,
                (rng.next() % templates as u64) as u32,
            )
        })
        .collect();
    let mut group = c.benchmark_group("pairs");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n_pairs as u64));
    group.bench_function("ijbc_15658489_x512", |b| {
        b.iter(|| score_pairs(&feats, dim, &pairs).unwrap())
    });
    // The order of insightface's meta file: pairs grouped by their first template.
    let mut sorted = pairs.clone();
    sorted.sort_unstable();
    group.bench_function("ijbc_15658489_x512_sorted_by_first", |b| {
        b.iter(|| score_pairs(&feats, dim, &sorted).unwrap())
    });
    group.finish();
}

criterion_group!(benches, search, pairs);
criterion_main!(benches);
