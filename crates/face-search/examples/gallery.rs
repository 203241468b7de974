//! Builds a 100,000 × 512 gallery of clustered unit vectors in each storage form, writes
//! and memory-maps it, searches 256 queries, and prints speed, file size and recall@10
//! against the exact f32 result.
//!
//! ```sh
//! cargo run --release -p face-search --example gallery
//! ```

use std::time::Instant;

use face_search::{BuildOptions, Gallery, Hit, Storage};

fn main() -> Result<(), face_search::SearchError> {
    let (rows, dim, nq, k) = (100_000usize, 512usize, 256usize, 10usize);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut gauss = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.46
    };
    // 10,000 identities × 10 samples: centre + noise.
    let mut data = Vec::with_capacity(rows * dim);
    for _ in 0..rows / 10 {
        let centre: Vec<f32> = (0..dim).map(|_| gauss()).collect();
        for _ in 0..10 {
            data.extend(centre.iter().map(|c| c + 0.8 * gauss()));
        }
    }
    let queries: Vec<f32> = (0..nq)
        .flat_map(|q| data[q * 391 * dim..(q * 391 + 1) * dim].iter().map(|v| v + 0.3))
        .collect();
    let ids: Vec<String> = (0..rows)
        .map(|i| format!("person{}/{}", i / 10, i % 10))
        .collect();
    let dir = std::env::temp_dir();
    let mut exact: Vec<Vec<Hit>> = Vec::new();
    println!("SIMD kernels: {}", face_search::simd_in_use());
    for storage in [Storage::F32, Storage::F16, Storage::Int8, Storage::Sparse] {
        let path = dir.join(format!("face-search-example-{storage}.fkg"));
        Gallery::build(&ids, dim, &data, BuildOptions::new(storage))?.write(&path)?;
        let g = Gallery::open(&path)?;
        let t = Instant::now();
        let hits = g.search(&queries, k)?;
        let secs = t.elapsed().as_secs_f64();
        if storage == Storage::F32 {
            exact = hits.clone();
        }
        let recall = exact
            .iter()
            .zip(&hits)
            .map(|(e, h)| e.iter().filter(|x| h.iter().any(|y| y.index == x.index)).count())
            .sum::<usize>() as f64
            / (nq * k) as f64;
        println!(
            "{storage:>6}: {:>6.1} MB, {:>6.1} M comparisons/s, recall@{k} vs f32 {:.4}, top-1 of query 0: {} ({:.3})",
            g.byte_len() as f64 / 1e6,
            (rows * nq) as f64 / secs / 1e6,
            recall,
            g.id(hits[0][0].index as usize),
            hits[0][0].score
        );
        std::fs::remove_file(&path).ok();
    }
    Ok(())
}
