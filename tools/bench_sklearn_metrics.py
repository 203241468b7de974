#!/usr/bin/env python3
"""scikit-learn / numpy anchors for docs/BENCHMARKS.md, on the very scores our
benches use, plus a full-scale cross-check of our report against them.

  cargo run --release --example roc_report -- --dump-scores /tmp/ijbc_scores.bin
  ~/.cache/facekit-venv/bin/python tools/bench_sklearn_metrics.py /tmp/ijbc_scores.bin out/roc_report/report.json

Times (best of --repeat runs):
  * ijbc_table: what insightface eval_ijbc.py does per method: roc_curve, auc,
    and the nearest-FPR TAR at 1e-6..1e-1;
  * irauc_batch: one 512 x 512 batch (128 identities x 4), L2-normalise, Gram
    matrix, upper triangle, roc_auc_score.
"""
import argparse
import json
import time

import numpy as np
from sklearn.metrics import auc, roc_auc_score, roc_curve

TARGETS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


def ijbc_table(labels, scores):
    fpr, tpr, _ = roc_curve(labels, scores)
    area = auc(fpr, tpr)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    tars = []
    for far in TARGETS:
        _, i = min(list(zip(abs(fpr - far), range(len(fpr)))))
        tars.append(float(tpr[i]))
    return area, tars


def irauc_batch(emb, labels):
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = x @ x.T
    iu = np.triu_indices(len(labels), 1)
    same = (labels[:, None] == labels[None, :])[iu]
    return roc_auc_score(same, sim[iu])


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scores")
    ap.add_argument("report", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    raw = np.fromfile(a.scores, dtype="<u8", count=2)
    n_gen, n_imp = int(raw[0]), int(raw[1])
    scores = np.fromfile(a.scores, dtype="<f8", offset=16)
    labels = np.r_[np.ones(n_gen, np.int8), np.zeros(n_imp, np.int8)]
    t, (area, tars) = best_of(lambda: ijbc_table(labels, scores), a.repeat)
    print(f"ijbc_table: {len(scores)} scores, best of {a.repeat}: {t:.3f} s; AUC {area:.12f}")
    print("  nearest TAR@FAR:", " ".join(f"{x:.6f}" for x in tars))

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(128, 512))
    emb = (np.repeat(centres, 4, axis=0) * 0.5 + rng.normal(size=(512, 512))).astype(np.float32)
    ids = np.repeat(np.arange(128), 4)
    tb, _ = best_of(lambda: irauc_batch(emb, ids), 20)
    print(f"irauc_batch: 512 x 512 f32, 130816 pairs, best of 20: {tb * 1e3:.2f} ms")

    if a.report:
        rep = json.load(open(a.report))
        ours = {r["target_far"]: r["tar"] for r in rep["tar_at_far"] if r["convention"] == "Nearest"}
        for far, want in zip(TARGETS, tars):
            assert ours[far] == want, (far, ours[far], want)
        assert abs(rep["auc"] - area) < 1e-12, (rep["auc"], area)
        print("cross-check: report.json AUC and Nearest TAR@FAR equal scikit-learn/insightface at full scale")


if __name__ == "__main__":
    main()
