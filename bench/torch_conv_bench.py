#!/usr/bin/env python3
"""PyTorch side of the per-layer convolution benchmark (bench/conv_bench.cpp has the layers).

  /usr/bin/python3 bench/torch_conv_bench.py --threads 2 [--reps 20]

Times torch's forward convolution and aten::convolution_backward for the input gradient and for
the weight gradient separately, batch 64, float32; one JSON line per layer, medians of --reps.
"""
import argparse
import json
import time

import torch

LAYERS = [("stem 1->32 3x3 28", 1, 28, 32, 3, 1), ("32->32 3x3 28", 32, 28, 32, 3, 1),
          ("32->64 3x3 s2 28", 32, 28, 64, 3, 2), ("64->64 3x3 14", 64, 14, 64, 3, 1),
          ("32->64 1x1 s2 28", 32, 28, 64, 1, 2), ("64->128 3x3 s2 14", 64, 14, 128, 3, 2),
          ("128->128 3x3 7", 128, 7, 128, 3, 1), ("64->128 1x1 s2 14", 64, 14, 128, 1, 2),
          ("cnn 32->64 3x3 14", 32, 14, 64, 3, 1)]


def time_ms(reps, f):
    for _ in range(3):
        f()
    t = []
    for _ in range(reps):
        s = time.perf_counter()
        f()
        t.append(1e3 * (time.perf_counter() - s))
    return sorted(t)[len(t) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with torch.no_grad():
        for name, c_in, hw, c_out, k, s in LAYERS:
            pad = k // 2
            x, w = torch.randn(64, c_in, hw, hw), torch.randn(c_out, c_in, k, k)
            y = torch.nn.functional.conv2d(x, w, None, s, pad)
            gy = torch.randn_like(y)
            conv_bwd = torch.ops.aten.convolution_backward
            args = (gy, x, w, None, [s, s], [pad, pad], [1, 1], False, [0, 0], 1)
            f = time_ms(a.reps, lambda: torch.nn.functional.conv2d(x, w, None, s, pad))
            bi = time_ms(a.reps, lambda: conv_bwd(*args, [True, False, False]))
            bw = time_ms(a.reps, lambda: conv_bwd(*args, [False, True, False]))
            print(json.dumps({"side": "torch", "layer": name, "threads": a.threads, "fwd_ms": round(f, 3),
                              "bwd_input_ms": round(bi, 3), "bwd_weight_ms": round(bw, 3)}))


if __name__ == "__main__":
    main()
