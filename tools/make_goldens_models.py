#!/usr/bin/python3
"""Writes the goldens of ligm::models, for tests/test_models.cpp.

Run with Debian's PyTorch and torchvision (python3-torch 1.13, python3-torchvision 0.14) and
timm 0.9.16 from PyPI (pure Python; `pip install --no-deps --target DIR timm==0.9.16`, then
PYTHONPATH=DIR):   PYTHONPATH=DIR /usr/bin/python3 tools/make_goldens_models.py

tests/goldens/model_keys.json: the state_dict keys and shapes of the reference architectures
(torchvision's resnet18/34, timm's VisionTransformer, a nanoGPT-style GPT, the MLP and CNN as
torch.nn.Sequential), for the test that ligm's names are PyTorch's.

tests/goldens/models.safetensors, float64:
  small.<case>.sd.<key>, .in, .out, .cot, .grad.<param>: small models with their weights, as a
      safetensors file written here (with NumPy) that ligm loads by key; the output and the
      parameter gradients of sum(out * cot).
  full.<case>.in, .out: full-size models (resnet18 with both stems, ViT-Tiny, GPT) whose
      weights both sides fill from the same formula (see formula_fill), eval mode.
"""
import json
import math
import os
import sys

import numpy as np
import timm
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import randomize, write_safetensors  # noqa: E402
from torch_reference import GPT, mlp, resnet18_cifar, small_cnn, vit  # noqa: E402

torch.manual_seed(2811)
D = torch.float64
OUT, KEYS = {}, {}


def keys_of(name, m):
    KEYS[name] = [[k, list(v.shape)] for k, v in m.state_dict().items()]


keys_of("mlp", mlp(784, [256, 256], 10))
keys_of("mlp_bn_dropout", mlp(784, [128, 128], 10, bn=True, dropout=0.1))
keys_of("small_cnn", small_cnn(1, 10, [32, 64], 128, 28))
keys_of("resnet18", torchvision.models.resnet18())
keys_of("resnet34", torchvision.models.resnet34(num_classes=10))
keys_of("resnet18_cifar_1ch", resnet18_cifar(1, 10))
keys_of("vit_tiny", vit(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=192, depth=12, num_heads=3))
keys_of("vit_avg_nocls", vit(img_size=32, patch_size=8, in_chans=3, num_classes=0, embed_dim=64, depth=2, num_heads=4,
                             class_token=False, global_pool="avg"))
keys_of("gpt", GPT(256, 128, 4, 4, 128))


# --- small models with stored weights -----------------------------------------------------
def small_case(name, m, x):
    m = m.double()
    randomize(m)
    m.eval()
    for k, v in m.state_dict().items():
        OUT[f"small.{name}.sd.{k}"] = v.detach().clone().to(D)
    out = m(x)
    cot = torch.randn_like(out)
    params = dict(m.named_parameters())
    grads = torch.autograd.grad(out, list(params.values()), cot, allow_unused=True)
    OUT[f"small.{name}.in"] = x
    OUT[f"small.{name}.out"] = out.detach()
    OUT[f"small.{name}.cot"] = cot
    for (k, p), g in zip(params.items(), grads):
        OUT[f"small.{name}.grad.{k}"] = torch.zeros_like(p) if g is None else g


small_case("mlp", mlp(64, [16, 12], 5, bn=True), torch.randn(4, 1, 8, 8, dtype=D))
small_case("small_cnn", small_cnn(2, 5, [4, 6], 10, 12), torch.randn(3, 2, 12, 12, dtype=D))
small_case("vit", vit(img_size=16, patch_size=4, in_chans=1, num_classes=5, embed_dim=16, depth=2, num_heads=2),
           torch.randn(3, 1, 16, 16, dtype=D))
small_case("vit_avg", vit(img_size=12, patch_size=4, in_chans=2, num_classes=3, embed_dim=16, depth=1, num_heads=4,
                          class_token=False, global_pool="avg"), torch.randn(2, 2, 12, 12, dtype=D))
small_case("gpt", GPT(48, 16, 2, 2, 16), torch.randint(0, 48, (2, 12)))


# --- full-size models with formula weights ------------------------------------------------
def formula_fill(m):
    """Every state_dict entry, keys in sorted order k = 0, 1, ...: s(i) = sin(0.37 i + 1.1 k + 0.5)
    for element i of the flattened tensor, and
      running_var: 1 + 0.3 |s|;  num_batches_tracked: 0;  running_mean, cls_token, pos_embed,
      1-d "bias": 0.1 s;  1-d "weight": 1 + 0.2 s;  other (d >= 2): s * 1.5 / sqrt(fan_in),
      fan_in = numel / shape[0] (an embedding table [V, D] uses 1)."""
    sd = m.state_dict()
    for k, key in enumerate(sorted(sd)):
        t = sd[key]
        i = torch.arange(t.numel(), dtype=D)
        s = torch.sin(0.37 * i + 1.1 * k + 0.5)
        if key.endswith("running_var"):
            v = 1 + 0.3 * s.abs()
        elif key.endswith("num_batches_tracked"):
            v = torch.zeros_like(s)
        elif key.endswith("running_mean") or key.endswith("cls_token") or key.endswith("pos_embed") or \
                (t.dim() == 1 and key.endswith("bias")):
            v = 0.1 * s
        elif t.dim() == 1:
            v = 1 + 0.2 * s
        else:
            fan_in = 1 if key.endswith("wte.weight") or key.endswith("wpe.weight") else t.numel() // t.shape[0]
            v = s * 1.5 / math.sqrt(fan_in)
        with torch.no_grad():
            t.copy_(v.reshape(t.shape).to(t.dtype))


def full_case(name, m, x):
    m = m.double().eval()
    formula_fill(m)
    with torch.no_grad():
        OUT[f"full.{name}.in"] = x
        OUT[f"full.{name}.out"] = m(x)


full_case("resnet18", torchvision.models.resnet18(num_classes=7), torch.randn(2, 3, 32, 32, dtype=D))
full_case("resnet18_cifar_1ch", resnet18_cifar(1, 10), torch.randn(2, 1, 28, 28, dtype=D))
full_case("vit_tiny", vit(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=192, depth=12, num_heads=3),
          torch.randn(2, 1, 28, 28, dtype=D))
full_case("gpt", GPT(256, 128, 4, 4, 128), torch.randint(0, 256, (2, 20)))

if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    gold = os.path.join(root, "tests", "goldens")
    write_safetensors(os.path.join(gold, "models.safetensors"), OUT)
    with open(os.path.join(gold, "model_keys.json"), "w") as f:  # one key per line, for readable diffs
        f.write('{"generator": "tools/make_goldens_models.py", "torch": "%s", "torchvision": "%s", "timm": "%s",\n'
                % (torch.__version__, torchvision.__version__, timm.__version__))
        f.write(' "models": {\n' + ",\n".join(
            f'  "{name}": [\n' + ",\n".join("    " + json.dumps(e) for e in entries) + "]"
            for name, entries in KEYS.items()) + "}}\n")
    print(f"wrote {len(OUT)} tensors and {len(KEYS)} key lists to tests/goldens")
