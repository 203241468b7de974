#!/usr/bin/env python3
"""Reference fixtures for crates/face-eval (committed; tests never run Python).

  ~/.cache/facekit-venv/bin/python tools/reference_eval.py crates/face-eval/tests/fixtures

* ijb.json: a small random IJB-style protocol (faces with template and media ids,
  faceness scores, per-image features [embedding | flipped embedding]) and, for
  each of insightface's 8 ablation settings (N, D, F), the template features and
  pair scores computed the way insightface's eval_ijbc.py does
  (image2template_feature + the batched verification loop), written here from
  its published description;
* lfw_pairs.txt + lfw.json: a 10-fold pairs file with similarity scores, and
  the fold thresholds / accuracies / VAL@FAR of the exact midpoint rule.
"""
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.preprocessing import normalize


def image2template_feature(img_feats, templates, medias):
    unique_templates = np.unique(templates)
    template_feats = np.zeros((len(unique_templates), img_feats.shape[1]))
    for count, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face_feats = img_feats[ind_t]
        face_medias = medias[ind_t]
        unique_medias, counts = np.unique(face_medias, return_counts=True)
        media_feats = []
        for u, ct in zip(unique_medias, counts):
            (ind_m,) = np.where(face_medias == u)
            if ct == 1:
                media_feats += [face_feats[ind_m]]
            else:
                media_feats += [np.mean(face_feats[ind_m], axis=0, keepdims=True)]
        media_feats = np.array(media_feats)
        template_feats[count] = np.sum(media_feats, axis=0)
    return normalize(template_feats), unique_templates


def verification(template_feats, unique_templates, p1, p2):
    template2id = np.zeros((max(unique_templates) + 1, 1), dtype=int)
    for i, t in enumerate(unique_templates):
        template2id[t] = i
    score = np.zeros((len(p1),))
    batch = 7  # small batches, as the real loop batches 100,000
    for s in range(0, len(p1), batch):
        f1 = template_feats[template2id[p1[s:s + batch]]]
        f2 = template_feats[template2id[p2[s:s + batch]]]
        score[s:s + batch] = np.sum(f1 * f2, -1).flatten()
    return score


def ijb(out):
    rng = np.random.default_rng(11)
    n, d = 80, 8
    templates = rng.integers(1, 16, n)
    medias = rng.integers(100, 112, n)
    faceness = rng.uniform(0.5, 1.0, n).astype(np.float32)
    feats = rng.standard_normal((n, 2 * d)).astype(np.float32) * rng.uniform(0.5, 3.0, (n, 1)).astype(np.float32)
    uniq = np.unique(templates)
    p1 = rng.choice(uniq, 50)
    p2 = rng.choice(uniq, 50)
    label = rng.integers(0, 2, 50)
    cases = []
    for norm in (True, False):
        for det in (True, False):
            for flip in (True, False):
                f = feats[:, :d] + feats[:, d:] if flip else feats[:, :d]
                f = f.astype(np.float64)
                if not norm:
                    f = f / np.sqrt(np.sum(f ** 2, -1, keepdims=True))
                if det:
                    f = f * faceness.astype(np.float64)[:, None]
                tf, ut = image2template_feature(f, templates, medias)
                sc = verification(tf, ut, p1, p2)
                cases.append({
                    "norm": norm, "detector_score": det, "flip": flip,
                    "templates": ut.tolist(), "features": tf.ravel().tolist(), "scores": sc.tolist(),
                })
    json.dump({
        "dim": d,
        "faces": [{"image": f"{i}.jpg", "template": int(t), "media": int(m)} for i, (t, m) in enumerate(zip(templates, medias))],
        "faceness": faceness.tolist(),
        "features": feats.ravel().tolist(),
        "pairs": [[int(a), int(b), int(l)] for a, b, l in zip(p1, p2, label)],
        "cases": cases,
    }, open(out / "ijb.json", "w"))


def best_threshold(scores, same):
    order = np.argsort(scores, kind="stable")
    s, g = scores[order], same[order]
    correct = int(g.sum())
    best, best_t = correct, s[0] - 1.0
    i = 0
    while i < len(s):
        v = s[i]
        while i < len(s) and s[i] == v:
            correct += -1 if g[i] else 1
            i += 1
        t = 0.5 * (v + s[i]) if i < len(s) else v
        if correct > best:
            best, best_t = correct, t
    return best_t


def lfw(out):
    rng = np.random.default_rng(12)
    folds, per = 10, 15
    lines = [f"{folds}\t{per}"]
    scores, same, fold = [], [], []
    for k in range(folds):
        for j in range(per):
            lines.append(f"Person_{k}_{j}\t1\t2")
            scores.append(round(float(rng.normal(0.55, 0.15)), 2))  # rounded: ties occur
            same.append(True)
            fold.append(k)
        for j in range(per):
            lines.append(f"Alpha_{k}_{j}\t1\tBeta_{k}_{j}\t1")
            scores.append(round(float(rng.normal(0.2, 0.15)), 2))
            same.append(False)
            fold.append(k)
    (out / "lfw_pairs.txt").write_text("\n".join(lines) + "\n")
    scores, same, fold = np.array(scores), np.array(same), np.array(fold)
    far = 0.05
    res = []
    for k in range(folds):
        tr, te = fold != k, fold == k
        t = best_threshold(scores[tr], same[tr])
        acc = np.mean((scores[te] > t) == same[te])
        imp = np.sort(scores[tr & ~same])[::-1]
        allowed = int(np.floor(far * len(imp)))
        vt = imp[allowed] if allowed < len(imp) else imp[-1] - 1.0
        val = np.mean(scores[te & same] > vt)
        fa = np.mean(scores[te & ~same] > vt)
        res.append({"threshold": t, "accuracy": acc, "val_threshold": vt, "val": val, "far": fa})
    accs = np.array([r["accuracy"] for r in res])
    vals = np.array([r["val"] for r in res])
    json.dump({
        "scores": scores.tolist(), "far_target": far, "folds": [{k: float(v) for k, v in r.items()} for r in res],
        "accuracy": accs.mean(), "accuracy_std": accs.std(), "val": vals.mean(), "val_std": vals.std(),
    }, open(out / "lfw.json", "w"))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    ijb(out)
    lfw(out)
