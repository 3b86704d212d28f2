#!/usr/bin/python3
"""PyTorch side of the benchmark: one workload, one thread count; prints one JSON line.

  /usr/bin/python3 bench/torch_bench.py --workload mlp --threads 2 [--steps 20 --warmup 5] [--device cuda]
  /usr/bin/python3 bench/torch_bench.py --sgemm 1024 --threads 2 [--device cuda]

The models are ligm's reference architectures (tools/torch_reference.py); see bench/workloads.md.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch_reference as ref  # noqa: E402


class ViT(nn.Module):
    """timm's ViT layout (pre-norm blocks on nn.MultiheadAttention-free packed qkv) without timm."""

    def __init__(self, dim=192, depth=6, heads=3, patch=4, img=28, classes=10):
        super().__init__()
        n = (img // patch) ** 2
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), t], 1) + self.pos_embed
        for b in self.blocks:
            t = b(t)
        return self.head(self.norm(t)[:, 0])


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        att = ((q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, N, C))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class BasicBlock(nn.Module):
    """torchvision's BasicBlock (written out: the GPU machine's PyTorch may come without torchvision)."""

    def __init__(self, i, o, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.downsample = downsample

    def forward(self, x):
        h = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(h + (self.downsample(x) if self.downsample is not None else x))


class ResNetSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())

        def down(i, o, s):
            return nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))
        self.blocks = nn.Sequential(BasicBlock(32, 32), BasicBlock(32, 64, 2, down(32, 64, 2)),
                                    BasicBlock(64, 128, 2, down(64, 128, 2)))
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def workload(name, device="cpu"):
    """(model, inputs, targets, loss_fn) on device"""
    m, x, y, loss_fn = _workload(name)
    return m.to(device), x.to(device), y.to(device), loss_fn


def _workload(name):
    g = torch.Generator().manual_seed(0)
    if name == "gpt":
        m = ref.GPT(256, 128, 4, 4, 128)
        tok = torch.randint(0, 256, (16, 129), generator=g)
        return m, tok[:, :-1], tok[:, 1:], lambda out, y: nn.functional.cross_entropy(out.reshape(-1, 256), y.reshape(-1))
    batch = 128 if name == "mlp" else 64
    x = torch.randn(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    m = {"mlp": lambda: ref.mlp(784, [256, 256], 10), "cnn": lambda: ref.small_cnn(1, 10, [32, 64], 128, 28),
         "resnet": ResNetSmall, "vit": ViT}[name]()
    return m, x, y, nn.functional.cross_entropy


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload")
    ap.add_argument("--sgemm", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    # Which float32 GPU work may use TF32 tensor cores, set explicitly (PyTorch's own defaults
    # are "conv": cudnn.allow_tf32 on, matmul.allow_tf32 off); ligm_bench takes the same flag.
    ap.add_argument("--tf32", default="off", choices=["off", "conv", "all"])
    ap.add_argument("--cudnn-benchmark", default="0", choices=["0", "1"],
                    help="torch.backends.cudnn.benchmark (ligm_bench takes the same flag)")
    ap.add_argument("--profile", type=int, default=0,
                    help="after the timed steps, this many more under torch.profiler; its table is printed first")
    a = ap.parse_args()
    torch.backends.cudnn.allow_tf32 = a.tf32 != "off"
    torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "all"
    torch.backends.cudnn.benchmark = a.cudnn_benchmark == "1"
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    torch.set_num_threads(a.threads)
    if a.sgemm:
        n = a.sgemm
        A, B = torch.randn(n, n, device=a.device), torch.randn(n, n, device=a.device)
        for _ in range(3):
            A @ B
        sync()
        times = []
        for _ in range(max(5, int((2e10 if a.device == "cpu" else 2e12) / (2 * n ** 3)))):
            t = time.perf_counter()
            A @ B
            sync()
            times.append(time.perf_counter() - t)
        times.sort()
        print(json.dumps({"side": "torch", "device": a.device, "sgemm": n, "threads": a.threads, "ms": 1e3 * times[len(times) // 2],
                          "gflops": 2 * n ** 3 / times[len(times) // 2] / 1e9}))
        return
    m, x, y, loss_fn = workload(a.workload, a.device)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        loss = loss_fn(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    if a.profile > 0:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if a.device == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(a.profile):
                loss = loss_fn(m(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sync()
        key = "self_cuda_time_total" if a.device == "cuda" else "self_cpu_time_total"
        print(f"torch profile: {a.workload} on {a.device}, {a.profile} steps")
        print(prof.key_averages().table(sort_by=key, row_limit=40))
    times.sort()
    peak = torch.cuda.max_memory_allocated() / 1e6 if a.device == "cuda" else None
    print(json.dumps({"side": "torch", "device": a.device, "workload": a.workload, "threads": a.threads, "ms": 1e3 * times[len(times) // 2],
                      "rss_mb": rss_mb(), "tensor_peak_mb": peak, "loss": loss.item()}))


if __name__ == "__main__":
    main()
