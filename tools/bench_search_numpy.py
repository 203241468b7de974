#!/usr/bin/env python3
"""numpy anchors for face-search (docs/BENCHMARKS.md), same sizes as
crates/face-search/benches/search.rs, same sitting:

  * search: 256 L2-normalised 512-d queries against 1,000,000 normalised rows,
    `q @ G.T` in blocks of 65,536 rows + argpartition top-10 per query, merged
    (the usual numpy 1:N search); float32 and float16 gallery (upcast per block);
  * sparse: 64 queries against 100,000 4096-d ReLU rows (~90 % zeros) stored as a
    scipy CSR matrix, `G @ q.T` + argpartition top-10 (--sparse-only runs just this);
  * ijbc pairs: insightface eval_ijbc.py's verification loop (batches of 100,000
    pairs, feat1 * feat2 summed over the last axis) on 23,124 templates and
    15,658,489 random pairs.

  ~/.cache/facekit-venv/bin/python tools/bench_search_numpy.py [--rows 1000000]
"""
import argparse
import time

import numpy as np


def unit(rows, dim, rng):
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def search(gallery, queries, k=10, block=65536):
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(gallery), block):
        s = queries @ gallery[start:start + block].astype(np.float32, copy=False).T
        idx = np.argpartition(-s, k, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, idx, 1)], 1)
        cand_i = np.concatenate([best_i, idx + start], 1)
        top = np.argpartition(-cand_s, k, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, top, 1)
        best_i = np.take_along_axis(cand_i, top, 1)
    return best_i, best_s


def ijbc_loop(feats, p1, p2, batch=100000):
    score = np.zeros(len(p1))
    for s in range(0, len(p1), batch):
        f1 = feats[p1[s:s + batch]]
        f2 = feats[p2[s:s + batch]]
        score[s:s + batch] = np.sum(f1 * f2, -1).flatten()
    return score


def sparse_anchor(rng, repeat):
    import scipy.sparse as sp
    g = np.maximum(rng.standard_normal((100_000, 4096), dtype=np.float32) - 1.2816, 0)
    q = np.maximum(rng.standard_normal((64, 4096), dtype=np.float32) - 1.2816, 0)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    csr = sp.csr_matrix(g)
    del g

    def run():
        s = (csr @ q.T).T
        return np.argpartition(-s, 10, axis=1)[:, :10]

    t = best(run, repeat)
    print(f"sparse scipy CSR 100000 x 4096 ({csr.nnz / csr.shape[0] / 4096:.1%} non-zero), 64 queries: "
          f"{t * 1e3:.0f} ms = {100_000 * 64 / t / 1e6:.1f} M comparisons/s")


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sparse-only", action="store_true")
    ap.add_argument("--pairs-only", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    if not a.pairs_only:
        sparse_anchor(rng, a.repeat)
    if a.sparse_only:
        return
    if not a.pairs_only:
        g = unit(a.rows, 512, rng)
        q = unit(256, 512, rng)
        n = a.rows * 256
        t = best(lambda: search(g, q), a.repeat)
        print(f"search f32 {a.rows} x 512, 256 queries, k=10: {t * 1e3:.0f} ms = {n / t / 1e6:.1f} M comparisons/s")
        g16 = g.astype(np.float16)
        del g
        t = best(lambda: search(g16, q), a.repeat)
        print(f"search f16 (upcast per block): {t * 1e3:.0f} ms = {n / t / 1e6:.1f} M comparisons/s")
        del g16
    feats = unit(23124, 512, rng)
    p1 = rng.integers(0, 23124, 15_658_489)
    p2 = rng.integers(0, 23124, 15_658_489)
    t = best(lambda: ijbc_loop(feats, p1, p2), max(1, a.repeat - 2))
    print(f"ijbc pair loop, 15,658,489 pairs x 512: {t:.2f} s")
    order = np.lexsort((p2, p1))
    p1, p2 = p1[order], p2[order]
    t = best(lambda: ijbc_loop(feats, p1, p2), max(1, a.repeat - 2))
    print(f"ijbc pair loop, same pairs sorted by first template: {t:.2f} s")


if __name__ == "__main__":
    main()
