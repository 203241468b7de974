#!/usr/bin/env python3
"""Reference values for face-ssl's DINO pieces, computed independently in numpy (float64).

Writes crates/face-ssl/tests/fixtures/dino_reference.json with:
- the projection head (Linear -> GELU -> Linear -> GELU -> Linear, L2 normalise, weight-normalised
  last layer with unit-length prototypes) on random inputs;
- the DINO loss over 2 global + 2 local views (teacher centred and sharpened, student tempered,
  cross-entropy of every pair but a view with itself), the per-pair matrix, and the centre update;
- the monitors (teacher entropy per image and of the mean target, KL = loss - entropy, std of
  normalised rows);
- the schedules (linear warm-up + cosine, teacher temperature warm-up) and one EMA step.

Usage: ~/.cache/facekit-venv/bin/python tools/reference_dino.py
"""
import json
import math
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/face-ssl/tests/fixtures/dino_reference.json"
rng = np.random.default_rng(20261124)


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def l2n(x, axis):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(z):
    return np.exp(log_softmax(z))


# --- head -------------------------------------------------------------------------------
in_dim, hidden, bottleneck, k = 8, 16, 4, 10
widths = [in_dim, hidden, hidden, bottleneck]
layers = [(rng.normal(0, 0.4, (a, b)), rng.normal(0, 0.1, b)) for a, b in zip(widths[:-1], widths[1:])]
last_v = rng.normal(0, 1.0, (bottleneck, k))
x = rng.normal(0, 1.0, (6, in_dim))
h = x
for i, (w, b) in enumerate(layers):
    h = h @ w + b
    if i < len(layers) - 1:
        h = gelu(h)
z = l2n(h, 1)
head_logits = z @ (last_v / np.linalg.norm(last_v, axis=0, keepdims=True))

# --- loss -------------------------------------------------------------------------------
n, g_views, v_views = 3, 2, 4
student = rng.normal(0, 1.0, (v_views * n, k))
teacher = rng.normal(0, 1.0, (g_views * n, k))
centre = rng.normal(0, 0.3, (1, k))
t_temp, s_temp, c_mom = 0.05, 0.1, 0.9
q = softmax((teacher - centre) / t_temp)
lp = log_softmax(student / s_temp)
pairs = np.zeros((g_views, v_views))
for i in range(g_views):
    for v in range(v_views):
        qi, lv = q[i * n:(i + 1) * n], lp[v * n:(v + 1) * n]
        pairs[i, v] = np.mean(-(qi * lv).sum(axis=1))
terms = [(i, v) for i in range(g_views) for v in range(v_views) if i != v]
loss = sum(pairs[i, v] for i, v in terms) / len(terms)
new_centre = c_mom * centre + (1 - c_mom) * teacher.mean(axis=0, keepdims=True)
entropy = float(np.mean(-(q * np.log(np.maximum(q, 1e-30))).sum(axis=1)))
qbar = q.mean(axis=0)
marginal = float(-(qbar * np.log(np.maximum(qbar, 1e-30))).sum())
kl_pairs = []
for i, v in terms:
    qi, lv = q[i * n:(i + 1) * n], lp[v * n:(v + 1) * n]
    kl_pairs.append(np.mean((qi * (np.log(np.maximum(qi, 1e-30)) - lv)).sum(axis=1)))
kl = float(np.mean(kl_pairs))
assert abs(kl - (loss - entropy)) < 1e-12  # the identity the trainer relies on

feats = rng.normal(0, 1.0, (6, 5))
norm_std = float(np.std(l2n(feats, 1), axis=0, ddof=1).mean())

# --- schedules and EMA ------------------------------------------------------------------
total, warmup, base, end = 20, 5, 0.01, 1e-4
warm = np.linspace(0.0, base, warmup)
rest = np.arange(total - warmup)
cos = end + 0.5 * (base - end) * (1 + np.cos(np.pi * rest / len(rest)))
lr_schedule = np.concatenate([warm, cos])
mom = 1.0 + 0.5 * (0.996 - 1.0) * (1 + np.cos(np.pi * np.arange(total) / total))
temps = list(np.linspace(0.04, 0.07, 4)) + [0.07, 0.07]
ema_t, ema_s, ema_m = rng.normal(0, 1, 7), rng.normal(0, 1, 7), 0.996
ema = ema_m * ema_t + (1 - ema_m) * ema_s


def lst(a):
    return np.asarray(a, dtype=float).ravel().tolist()


json.dump(
    {
        "generator": "tools/reference_dino.py (numpy %s)" % np.__version__,
        "head": {
            "widths": widths,
            "out_dim": k,
            "layers": [{"weight": lst(w), "bias": lst(b)} for w, b in layers],
            "last_v": lst(last_v),
            "input": lst(x),
            "bottleneck": lst(z),
            "logits": lst(head_logits),
        },
        "loss": {
            "n": n,
            "global_views": g_views,
            "views": v_views,
            "k": k,
            "student": lst(student),
            "teacher": lst(teacher),
            "centre": lst(centre),
            "teacher_temp": t_temp,
            "student_temp": s_temp,
            "center_momentum": c_mom,
            "targets": lst(q),
            "pairs": lst(pairs),
            "loss": float(loss),
            "new_centre": lst(new_centre),
            "entropy": entropy,
            "marginal_entropy": marginal,
            "kl": kl,
        },
        "std": {"features": lst(feats), "rows": 6, "dim": 5, "normalised_std": norm_std},
        "schedule": {
            "base": base, "end": end, "total": total, "warmup": warmup, "lr": lst(lr_schedule),
            "momentum_base": 0.996, "momentum": lst(mom),
            "temp_warmup": 0.04, "temp_target": 0.07, "temp_epochs": 4, "temps": lst(temps),
        },
        "ema": {"teacher": lst(ema_t), "student": lst(ema_s), "momentum": ema_m, "result": lst(ema)},
    },
    open(OUT, "w"),
    indent=1,
)
print("wrote", OUT)
