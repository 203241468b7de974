#!/usr/bin/env python3
"""PyTorch anchor for `cargo bench -p face-ssl --bench pretrain`: the same LAFS/DINO step on the
CPU — token ViT-Tiny (192 wide, 12 blocks, 3 heads, MLP x4, 16-px patch tokens with a Fourier
coordinate encoding and slot embeddings, class token), DINO head (2048 hidden, 256 bottleneck,
65 536 weight-normalised prototypes), 2 global views of 49 tokens + 6 local views of 9, batch 16:
student forward on all views, teacher forward on the global views, centred/sharpened targets,
cross-entropy over view pairs, backward, per-parameter clipping at 3, AdamW step, EMA teacher,
centre update. Token data is random (view building is measured separately in the Rust bench).

Usage: ~/.cache/facekit-venv/bin/python tools/bench_ssl_torch.py [--threads 2] [--seconds 60]
"""
import argparse
import copy
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seconds", type=float, default=60.0)
p.add_argument("--batch", type=int, default=16)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

D, DEPTH, HEADS, PATCH, FREQS, SLOTS = 192, 12, 3, 16, 6, 64
K, HIDDEN, BOTTLENECK = 65536, 2048, 256
G_TOK, L_TOK, LOCALS = 49, 9, 6


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(D, eps=1e-6)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)
        self.norm2 = nn.LayerNorm(D, eps=1e-6)
        self.fc1 = nn.Linear(D, 4 * D)
        self.fc2 = nn.Linear(4 * D, D)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q @ k.transpose(-2, -1)) * (c // HEADS) ** -0.5).softmax(-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(b, n, c))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TokenVit(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Linear(3 * PATCH * PATCH, D)
        self.coord = nn.Linear(2 + 4 * FREQS, D)
        self.slot = nn.Embedding(SLOTS, D)
        self.cls = nn.Parameter(torch.zeros(1, 1, D).normal_(0, 0.02))
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(FREQS, dtype=torch.float32))

    def forward(self, patches, coords, slots):
        ang = coords[..., None] * self.freqs
        n, t = coords.shape[:2]
        enc = torch.cat([coords, torch.cat([ang.sin(), ang.cos()], -1).reshape(n, t, 4 * FREQS)], -1)
        x = self.patch(patches) + self.coord(enc) + self.slot(slots)
        x = torch.cat([self.cls.expand(n, -1, -1), x], 1)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)[:, 0]


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(D, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, HIDDEN), nn.GELU(),
                                 nn.Linear(HIDDEN, BOTTLENECK))
        self.last_v = nn.Parameter(torch.randn(BOTTLENECK, K))

    def forward(self, x):
        z = F.normalize(self.mlp(x), dim=-1)
        return z @ (self.last_v / self.last_v.norm(dim=0, keepdim=True))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone, self.head = TokenVit(), Head()

    def forward(self, views):
        return self.head(self.backbone(*views))


def views(n, t):
    return (torch.randn(n, t, 3 * PATCH * PATCH), torch.rand(n, t, 2) * 2 - 1, torch.randint(0, 49, (n, t)))


n = args.batch
student = Model()
teacher = copy.deepcopy(student)
for q in teacher.parameters():
    q.requires_grad_(False)
decay = [q for q in student.parameters() if q.ndim >= 2]
no_decay = [q for q in student.parameters() if q.ndim < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.04}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=5e-4 * n / 256, eps=1e-8)
centre = torch.zeros(1, K)
g, l = views(2 * n, G_TOK), views(LOCALS * n, L_TOK)


def step():
    global centre
    s = torch.cat([student(g), student(l)])
    with torch.no_grad():
        t = teacher(g)
        q = F.softmax((t - centre) / 0.04, -1).chunk(2)
    lp = F.log_softmax(s / 0.1, -1).chunk(2 + LOCALS)
    loss, terms = 0.0, 0
    for i, qi in enumerate(q):
        for v, lv in enumerate(lp):
            if v != i:
                loss = loss + (-qi * lv).sum(-1).mean()
                terms += 1
    loss = loss / terms
    opt.zero_grad()
    loss.backward()
    for q_ in student.parameters():
        if q_.grad is not None:
            norm = q_.grad.norm()
            q_.grad.mul_(min(1.0, 3.0 / (norm.item() + 1e-6)))
    opt.step()
    with torch.no_grad():
        for pt, ps in zip(teacher.parameters(), student.parameters()):
            pt.mul_(0.996).add_(ps.detach(), alpha=0.004)
        centre = 0.9 * centre + 0.1 * t.mean(0, keepdim=True)
    return loss.item()


step()  # warm-up
times = []
start = time.perf_counter()
while time.perf_counter() - start < args.seconds or len(times) < 3:
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
times.sort()
median = times[len(times) // 2]
print(f"torch {torch.__version__}, {args.threads} threads, batch {n}: {len(times)} steps, "
      f"median {median:.3f} s/step = {n / median:.2f} images/s")
