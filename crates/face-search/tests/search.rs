//! Search results against brute force in f64, file round trips, recall of the
//! quantised forms, and bad input.

use face_search::{score_pairs, BuildOptions, Gallery, Hit, SearchError, Storage};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// `ids` identities with `per_id` noisy samples each around a random centre
/// (face-like: same-identity cosine ≈ 0.6–0.8, others ≈ 0), L2-normalised.
fn clustered(ids: usize, per_id: usize, dim: usize, seed: u64) -> (Vec<String>, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = Normal::new(0.0f32, 1.0).unwrap();
    let mut names = Vec::new();
    let mut data = Vec::new();
    for i in 0..ids {
        let centre: Vec<f32> = (0..dim).map(|_| n.sample(&mut rng)).collect();
        for s in 0..per_id {
            let mut v: Vec<f32> = centre.iter().map(|c| c + 0.7 * n.sample(&mut rng)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            data.extend(v);
            names.push(format!("id{i}/img{s}"));
        }
    }
    (names, data)
}

/// The exact top-k in f64 (ties to the lower row).
fn brute_force(gallery: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<(u32, f64)>> {
    queries
        .chunks_exact(dim)
        .map(|q| {
            let mut s: Vec<(u32, f64)> = gallery
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, g)| {
                    (
                        i as u32,
                        q.iter().zip(g).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum(),
                    )
                })
                .collect();
            s.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            s.truncate(k);
            s
        })
        .collect()
}

/// Asserts `got` is an exact top-k: same rows as brute force except where two
/// scores are within `tol` (a near tie may swap), and scores within `tol`.
fn assert_exact(got: &[Vec<Hit>], want: &[Vec<(u32, f64)>], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (q, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "query {q}");
        for (r, (h, &(idx, s))) in g.iter().zip(w).enumerate() {
            assert!(
                (f64::from(h.score) - s).abs() < tol,
                "query {q} rank {r}: {} vs {s}",
                h.score
            );
            if h.index != idx {
                let other = w.iter().find(|x| x.0 == h.index).map(|x| x.1);
                assert!(
                    other.is_some_and(|o| (o - s).abs() < tol),
                    "query {q} rank {r}: row {} instead of {idx}",
                    h.index
                );
            }
        }
    }
}

fn recall_at_k(got: &[Vec<Hit>], want: &[Vec<(u32, f64)>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (g, w) in got.iter().zip(want) {
        total += w.len();
        hit += w.iter().filter(|(i, _)| g.iter().any(|h| h.index == *i)).count();
    }
    hit as f64 / total as f64
}

#[test]
fn f32_search_is_exact_and_survives_a_file_round_trip() {
    let dim = 128;
    let (ids, data) = clustered(300, 5, dim, 1);
    let (_, queries) = clustered(40, 1, dim, 2);
    // Queries near gallery members too, so genuine matches exist.
    let mut queries = queries;
    queries.extend_from_slice(&data[7 * dim..8 * dim]);
    queries.extend_from_slice(&data[1499 * dim..1500 * dim]);
    let g = Gallery::build(&ids, dim, &data, BuildOptions::new(Storage::F32)).unwrap();
    let got = g.search(&queries, 10).unwrap();
    let want = brute_force(&data, &queries, dim, 10);
    assert_exact(&got, &want, 1e-5);
    // A query equal to row 7 finds row 7 first, score 1.
    assert_eq!(got[40][0].index, 7);
    assert!((got[40][0].score - 1.0).abs() < 1e-5);
    assert_eq!(got[41][0].index, 1499);

    let dir = std::env::temp_dir().join(format!("face-search-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("g.fkg");
    g.write(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, g.byte_len());
    let h = Gallery::open(&path).unwrap();
    assert_eq!(
        (h.len(), h.dim(), h.storage(), h.normalised()),
        (1500, dim, Storage::F32, true)
    );
    assert_eq!(h.id(0), "id0/img0");
    assert_eq!(h.id(1499), "id299/img4");
    assert_eq!(h.row(3), g.row(3));
    assert_eq!(h.rows_f32(), (0..1500).flat_map(|i| g.row(i)).collect::<Vec<_>>());
    assert!(h.rows_f32().iter().zip(&data).all(|(a, b)| (a - b).abs() < 1e-6));
    assert_eq!(h.search(&queries, 10).unwrap(), got);
    // All scores agree with the top-k.
    let all = h.scores(&queries).unwrap();
    assert_eq!(all.len(), queries.len() / dim * 1500);
    for (q, hits) in got.iter().enumerate() {
        for hit in hits {
            assert_eq!(all[q * 1500 + hit.index as usize], hit.score);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn results_do_not_depend_on_query_batching_or_k_larger_than_the_gallery() {
    let dim = 64;
    let (ids, data) = clustered(700, 3, dim, 3);
    let (_, queries) = clustered(70, 1, dim, 4);
    let g = Gallery::build(&ids, dim, &data, BuildOptions::new(Storage::F32)).unwrap();
    let all = g.search(&queries, 5).unwrap();
    for (q, one) in queries.chunks_exact(dim).enumerate() {
        assert_eq!(g.search(one, 5).unwrap()[0], all[q]);
    }
    let tiny = Gallery::build(
        &["a", "b"],
        dim,
        &data[..2 * dim],
        BuildOptions::new(Storage::F32),
    )
    .unwrap();
    let hits = tiny.search(&queries[..dim], 10).unwrap();
    assert_eq!(hits[0].len(), 2);
}

#[test]
fn quantised_forms_keep_recall_and_scores_close() {
    let dim = 512;
    let (ids, data) = clustered(2000, 4, dim, 5);
    let (_, mut queries) = clustered(50, 1, dim, 6);
    // Probes that are new samples of gallery identities: noisy copies of members.
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..50 {
        let r = rng.gen_range(0..8000);
        let mut v: Vec<f32> = data[r * dim..(r + 1) * dim]
            .iter()
            .map(|v| v + rng.gen_range(-0.02..0.02))
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        queries.extend(v);
    }
    let want = brute_force(&data, &queries, dim, 10);
    let f16 = Gallery::build(&ids, dim, &data, BuildOptions::new(Storage::F16)).unwrap();
    let i8g = Gallery::build(&ids, dim, &data, BuildOptions::new(Storage::Int8)).unwrap();
    let r16 = recall_at_k(&f16.search(&queries, 10).unwrap(), &want);
    let got8 = i8g.search(&queries, 10).unwrap();
    let r8 = recall_at_k(&got8, &want);
    eprintln!("recall@10: f16 {r16:.4}, int8 {r8:.4}");
    assert!(r16 >= 0.99, "f16 recall@10 {r16}");
    assert!(r8 >= 0.9, "int8 recall@10 {r8}");
    // The top-1 of every identity probe survives int8, with its score within 0.01.
    for q in 50..100 {
        assert_eq!(got8[q][0].index, want[q][0].0, "probe {q}");
        assert!((f64::from(got8[q][0].score) - want[q][0].1).abs() < 0.01);
    }
    // Sizes (ids included): f16 about half, int8 about a quarter of f32.
    let f32g = Gallery::build(&ids, dim, &data, BuildOptions::new(Storage::F32)).unwrap();
    assert!((f16.byte_len() as f64) < 0.53 * f32g.byte_len() as f64);
    assert!((i8g.byte_len() as f64) < 0.3 * f32g.byte_len() as f64);
}

#[test]
fn sparse_relu_embeddings_are_exact_and_small() {
    let dim = 4096;
    let rows = 600;
    let mut rng = StdRng::seed_from_u64(8);
    let n = Normal::new(0.0f32, 1.0).unwrap();
    // ReLU of a shifted Gaussian: ~90 % zeros.
    let relu = |rng: &mut StdRng| -> f32 { (n.sample(rng) - 1.2816).max(0.0) };
    let data: Vec<f32> = (0..rows * dim).map(|_| relu(&mut rng)).collect();
    let queries: Vec<f32> = (0..37 * dim).map(|_| relu(&mut rng)).collect();
    let zeros = data.iter().filter(|&&v| v == 0.0).count() as f64 / data.len() as f64;
    assert!((0.88..0.92).contains(&zeros), "zero fraction {zeros}");
    let ids: Vec<String> = (0..rows).map(|i| format!("r{i}")).collect();
    let opts = BuildOptions {
        storage: Storage::Sparse,
        normalise: false,
    };
    let g = Gallery::build(&ids, dim, &data, opts).unwrap();
    assert_eq!(g.stored_values(), data.iter().filter(|&&v| v != 0.0).count());
    assert!(
        g.byte_len() * 4 < rows * dim * 4,
        "sparse file {} bytes",
        g.byte_len()
    );
    assert_exact(
        &g.search(&queries, 7).unwrap(),
        &brute_force(&data, &queries, dim, 7),
        1e-4,
    );
    assert_eq!(g.row(5), data[5 * dim..6 * dim].to_vec());
    // Normalised sparse: same as normalised dense f32.
    let gs = Gallery::build(&ids, dim, &data, BuildOptions::new(Storage::Sparse)).unwrap();
    let gd = Gallery::build(&ids, dim, &data, BuildOptions::new(Storage::F32)).unwrap();
    let (a, b) = (gs.search(&queries, 3).unwrap(), gd.search(&queries, 3).unwrap());
    for (x, y) in a.iter().zip(&b) {
        for (h, k) in x.iter().zip(y) {
            assert_eq!(h.index, k.index);
            assert!((h.score - k.score).abs() < 1e-5);
        }
    }
    let dir = std::env::temp_dir().join(format!("face-search-sparse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    g.write(dir.join("s.fkg")).unwrap();
    let h = Gallery::open(dir.join("s.fkg")).unwrap();
    assert_eq!(h.search(&queries, 7).unwrap(), g.search(&queries, 7).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pair_scores_match_dot_products() {
    let dim = 512;
    let dot = |data: &[f32], a: usize, b: usize| -> f64 {
        data[a * dim..(a + 1) * dim]
            .iter()
            .zip(&data[b * dim..(b + 1) * dim])
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    };
    // 600 rows span several cache blocks, so the reordering path runs; 100 rows
    // take the direct path. Every pair must get its own score either way.
    let (_, data) = clustered(300, 2, dim, 9);
    let mut rng = StdRng::seed_from_u64(10);
    let pairs: Vec<(u32, u32)> = (0..40_000)
        .map(|_| (rng.gen_range(0..600), rng.gen_range(0..600)))
        .collect();
    let s = score_pairs(&data, dim, &pairs).unwrap();
    for (i, &(a, b)) in pairs.iter().enumerate() {
        assert!(
            (f64::from(s[i]) - dot(&data, a as usize, b as usize)).abs() < 1e-5,
            "pair {i}"
        );
    }
    let small: Vec<(u32, u32)> = pairs.iter().map(|&(a, b)| (a % 100, b % 100)).collect();
    let s = score_pairs(&data[..100 * dim], dim, &small).unwrap();
    for (i, &(a, b)) in small.iter().enumerate() {
        assert!(
            (f64::from(s[i]) - dot(&data, a as usize, b as usize)).abs() < 1e-5,
            "pair {i}"
        );
    }
    let err = score_pairs(&data, dim, &[(0, 1), (3, 600)]).unwrap_err();
    assert!(
        err.to_string().contains("pair 1 refers to rows (3, 600)"),
        "{err}"
    );
    assert!(score_pairs(&data, 0, &[]).is_err());
    assert!(score_pairs(&data[..dim + 1], dim, &[]).is_err());
}

#[test]
fn bad_inputs_are_named() {
    let dim = 4;
    let data = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let f = BuildOptions::new(Storage::F32);
    assert!(matches!(
        Gallery::build(&["a"], dim, &data, f),
        Err(SearchError::Dimension { .. })
    ));
    assert!(matches!(
        Gallery::build(&[] as &[&str], dim, &[], f),
        Err(SearchError::Empty { .. })
    ));
    let mut nan = data;
    nan[6] = f32::NAN;
    let e = Gallery::build(&["a", "b"], dim, &nan, f).unwrap_err();
    assert!(e.to_string().contains("row 1, column 2"), "{e}");
    assert!(Gallery::build(&["a\nb", "c"], dim, &data, f).is_err());
    let g = Gallery::build(&["a", "b"], dim, &data, f).unwrap();
    assert!(matches!(
        g.search(&[1.0, 2.0, 3.0], 1),
        Err(SearchError::Dimension { .. })
    ));
    assert!(matches!(g.search(&[], 1), Err(SearchError::Empty { .. })));
    assert!(g.search(&[f32::INFINITY, 0.0, 0.0, 0.0], 1).is_err());
    assert!("f64".parse::<Storage>().is_err());
    assert_eq!("INT8".parse::<Storage>().unwrap(), Storage::Int8);

    let dir = std::env::temp_dir().join(format!("face-search-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.fkg");
    g.write(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let check = |name: &str, b: &[u8], needle: &str| {
        let p = dir.join(name);
        std::fs::write(&p, b).unwrap();
        let e = Gallery::open(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(needle), "{name}: {e}");
    };
    check("truncated.fkg", &bytes[..bytes.len() - 3], "truncated");
    check("short.fkg", &bytes[..10], "header");
    let mut m = bytes.clone();
    m[0] = b'X';
    check("magic.fkg", &m, "magic");
    let mut v = bytes.clone();
    v[8] = 9;
    check("version.fkg", &v, "version 9");
    let mut ids = bytes.clone();
    let last = ids.len() - 1;
    ids[last] = b'x';
    check("ids.fkg", &ids, "ids");
    // Corrupt sparse offsets.
    let s = Gallery::build(
        &["a", "b"],
        dim,
        &data,
        BuildOptions {
            storage: Storage::Sparse,
            normalise: false,
        },
    )
    .unwrap();
    s.write(dir.join("s.fkg")).unwrap();
    let mut sb = std::fs::read(dir.join("s.fkg")).unwrap();
    sb[64 + 8] = 2; // row 0 ends after row 1's start
    sb[64 + 16] = 1;
    check("sparse.fkg", &sb, "sparse row");
    assert!(Gallery::open(dir.join("missing.fkg"))
        .unwrap_err()
        .to_string()
        .contains("missing.fkg"));
    // A failed write leaves no file under the final name.
    assert!(g.write(dir.join("no/such/dir/g.fkg")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
