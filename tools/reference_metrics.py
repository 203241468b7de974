#!/usr/bin/env python3
"""Writes the parity fixtures of face-metrics (crates/face-metrics/tests/fixtures/).

Reference values come from scikit-learn (roc_curve, roc_auc_score) and numpy;
the TAR@FAR rules follow DESIGN.md:
  * Nearest: insightface eval_ijbc.py -- flip the roc_curve arrays, then
    min(zip(|fpr - far|, index)), i.e. nearest FPR with ties to the larger TPR;
  * AtMost: largest TPR with actual FPR <= target on the full curve;
  * KthNegative: threshold = k-th highest impostor, k = round(N * far) half up.
EER: on the full curve (drop_intermediate=False), b = first point with
FPR >= FNR, a = b - 1, linear interpolation between them.

Usage: ~/.cache/facekit-venv/bin/python tools/reference_metrics.py
(needs numpy and scikit-learn from PyPI; the tests never need Python).
"""
import json
import os

import numpy as np
import sklearn
from sklearn.metrics import roc_auc_score, roc_curve

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "face-metrics", "tests", "fixtures")
TARGETS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.25, 0.5, 1.0]


def num(x):
    """JSON has no infinity: +inf thresholds are written as null."""
    return float(x) if np.isfinite(x) else None


def nearest(labels, scores, far):
    fpr, tpr, thr = roc_curve(labels, scores)
    fpr, tpr, thr = np.flipud(fpr), np.flipud(tpr), np.flipud(thr)
    _, i = min(list(zip(abs(fpr - far), range(len(fpr)))))
    return {"tar": float(tpr[i]), "far": float(fpr[i]), "threshold": num(thr[i])}


def at_most(labels, scores, far):
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    ok = np.nonzero(fpr <= far)[0]
    best = tpr[ok].max()
    i = ok[np.nonzero(tpr[ok] == best)[0][0]]
    return {"tar": float(tpr[i]), "far": float(fpr[i]), "threshold": num(thr[i])}


def kth_negative(labels, scores, far):
    gen, imp = scores[labels == 1], scores[labels == 0]
    k = min(int(np.floor(len(imp) * far + 0.5)), len(imp))
    if k == 0:
        t = float(np.nextafter(imp.max(), np.inf))
    else:
        t = float(np.sort(imp)[::-1][k - 1])
    return {"tar": float(np.mean(gen >= t)), "far": float(np.mean(imp >= t)), "threshold": num(t)}


def eer(labels, scores):
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    b = int(np.nonzero(fpr >= fnr)[0][0])
    a = b - 1
    alpha = (fnr[a] - fpr[a]) / ((fpr[b] - fpr[a]) - (fnr[b] - fnr[a]))
    return {
        "eer": float(fpr[a] + alpha * (fpr[b] - fpr[a])),
        "lower": float(max(fpr[a], fnr[b])),
        "upper": float(min(fnr[a], fpr[b])),
        "threshold": num(thr[b]),
    }


def case(name, gen, imp, rng):
    scores = np.concatenate([gen, imp]).astype(np.float64)
    labels = np.concatenate([np.ones(len(gen), int), np.zeros(len(imp), int)])
    perm = rng.permutation(len(scores))
    scores, labels = scores[perm], labels[perm]
    curves = {}
    for drop in (True, False):
        fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=drop)
        curves["drop" if drop else "full"] = {
            "thresholds": [num(x) for x in thr],
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
        }
    return {
        "name": name,
        "scores": scores.tolist(),
        "genuine": labels.astype(bool).tolist(),
        "roc": curves,
        "auc": float(roc_auc_score(labels, scores)),
        "targets": TARGETS,
        "nearest": [nearest(labels, scores, f) for f in TARGETS],
        "at_most": [at_most(labels, scores, f) for f in TARGETS],
        "kth_negative": [kth_negative(labels, scores, f) for f in TARGETS],
        "eer": eer(labels, scores),
    }


def batch_case(rng):
    """A P x K batch of float32 embeddings and the sklearn AUC of its cosine pairs."""
    p, k, dim = 16, 4, 32
    centres = rng.normal(size=(p, dim))
    emb = (np.repeat(centres, k, axis=0) * 0.6 + rng.normal(size=(p * k, dim))).astype(np.float32)
    labels = np.repeat(np.arange(p), k)
    x = emb.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    iu = np.triu_indices(p * k, 1)
    same = (labels[:, None] == labels[None, :])[iu]
    return {
        "dim": dim,
        "embeddings": emb.ravel().astype(float).tolist(),
        "labels": labels.tolist(),
        "auc": float(roc_auc_score(same, sim[iu])),
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
    }


def main():
    rng = np.random.default_rng(20261123)
    cases = [
        case("rounded_normal_ties", np.round(rng.normal(0.6, 0.15, 300), 2), np.round(rng.normal(0.1, 0.15, 3000), 2), rng),
        case("continuous", rng.normal(0.55, 0.2, 300), rng.normal(0.05, 0.18, 2500), rng),
        case("coarse_integers", rng.integers(3, 11, 200).astype(float), rng.integers(0, 8, 1500).astype(float), rng),
        case("separated", rng.uniform(0.7, 1.0, 100), rng.uniform(-0.2, 0.6, 900), rng),
        case("overlapping_uniform", np.round(rng.uniform(0, 1, 400), 3), np.round(rng.uniform(0, 1, 2500), 3), rng),
        case(
            "float32_cosine",
            rng.normal(0.5, 0.12, 400).astype(np.float32).astype(np.float64),
            rng.normal(0.0, 0.1, 3000).astype(np.float32).astype(np.float64),
            rng,
        ),
        case("two_values", np.array([0.5, 0.7, 0.7]), np.array([0.5, 0.5]), rng),
        case("all_tied", np.array([0.3, 0.3]), np.array([0.3, 0.3, 0.3]), rng),
    ]
    os.makedirs(OUT, exist_ok=True)
    meta = {"generator": "tools/reference_metrics.py", "sklearn": sklearn.__version__, "numpy": np.__version__}
    with open(os.path.join(OUT, "verification_reference.json"), "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, separators=(",", ":"))
    with open(os.path.join(OUT, "batch_auc_reference.json"), "w") as f:
        json.dump({"meta": meta, **batch_case(rng)}, f)


if __name__ == "__main__":
    main()
