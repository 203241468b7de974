"""Anchor for the distillation bench: one training step of the quickstart student in PyTorch.

    ~/.cache/facekit-venv/bin/python tools/bench_distill_torch.py [--device cpu|cuda] [--batch 32]

The student is the same network as face-distill's default: iResNet-18 with base width 16 and
128 features at 112×112, then the multitask head (Linear without bias → BatchNorm1d → L2 for a
512-d embedding, Linear to 81 age bins, Linear to one gender logit). A step is forward,
the joint loss (1 − cos, KL over age bins, BCE with a soft target), backward and AdamW, on random
inputs and targets (the cost does not depend on the values). CPU runs use 2 threads, as the
Rust benches do. Prints images/s (median of the timed steps).
"""
import argparse
import json
import time

import torch
from torch import nn
from torch.nn import functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--device", default="cpu")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
dev = torch.device(args.device)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x):
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (self.down(x) if self.down is not None else x)


class Student(nn.Module):
    def __init__(self, width=16, features=128, dim=512, bins=81, layers=(2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))
        blocks, cin = [], width
        for i, n in enumerate(layers):
            cout = width * 2**i
            blocks.append(Block(cin, cout, 2))
            blocks += [Block(cout, cout, 1) for _ in range(n - 1)]
            cin = cout
        self.body = nn.Sequential(*blocks)
        self.bn2 = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin * 7 * 7, features)
        self.features = nn.BatchNorm1d(features)
        self.emb = nn.Linear(features, dim, bias=False)
        self.emb_bn = nn.BatchNorm1d(dim)
        self.age = nn.Linear(features, bins)
        self.gender = nn.Linear(features, 1)

    def forward(self, x):
        f = self.features(self.fc(torch.flatten(self.bn2(self.body(self.stem(x))), 1)))
        return F.normalize(self.emb_bn(self.emb(f)), dim=1), self.age(f), self.gender(f).squeeze(1)


model = Student().to(dev).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
b = args.batch
x = torch.randn(b, 3, 112, 112, device=dev)
t_emb = F.normalize(torch.randn(b, 512, device=dev), dim=1)
t_age = torch.softmax(torch.randn(b, 81, device=dev), dim=1)
t_male = torch.rand(b, device=dev)


def step():
    opt.zero_grad(set_to_none=True)
    emb, age, gender = model(x)
    loss = (1 - (emb * t_emb).sum(1)).mean()
    loss = loss + F.kl_div(F.log_softmax(age, 1), t_age, reduction="batchmean")
    loss = loss + F.binary_cross_entropy_with_logits(gender, t_male)
    loss.backward()
    opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()


for _ in range(3):
    step()
times = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({"torch": torch.__version__, "device": args.device, "batch": b, "threads": args.threads,
                  "step_seconds": med, "images_per_second": b / med}))
