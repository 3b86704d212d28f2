#!/usr/bin/python3
"""Writes tests/goldens/lora.safetensors: LoRA and DoRA layers as huggingface/peft computes them,
written here in plain PyTorch (PEFT itself is not a Debian package), for tests/test_lora.cpp.

Run with Debian's PyTorch (python3-torch 1.13):  /usr/bin/python3 tools/make_goldens_lora.py

PEFT's forward, per its lora/layer.py and lora/dora.py (dropout 0):
  LoRA   result = base(x) + lora_B(lora_A(x)) * scaling
  DoRA   weight_norm = ||W + scaling * (B @ A)||, per output unit, detached
         mag = lora_magnitude_vector / weight_norm
         result = base(x) + (mag - 1) * base_without_bias(x) + mag * lora_B(lora_A(x)) * scaling
Convolutions: lora_A = Conv2d(in, r, k, the base's stride and padding), lora_B = Conv2d(r, out, 1),
the norm over (in, kh, kw). The state_dict keys are PEFT's (base_layer.*, lora_A.weight,
lora_B.weight, lora_magnitude_vector), which are ligm's too. ALLoRA has no public code: no golden.

Each case stores, in float64: <case>.sd.<key>, <case>.in, <case>.out, <case>.cot, <case>.grad.in
and <case>.grad.<key> for the adapter's parameters (d sum(out * cot) / d .).
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import write_safetensors  # noqa: E402

torch.manual_seed(1205)
D = torch.float64
OUT = {}


class PeftLayer(nn.Module):
    """PEFT's forward around base_layer, lora_A and lora_B (set by the subclass, in that order)."""

    def add_adapter(self, r, alpha, dora, n_out, units):
        self.scaling = alpha / r
        self.dora = dora
        self.units = units  # the shape that puts one value per output unit against the output
        if dora:
            self.lora_magnitude_vector = nn.Parameter(torch.rand(n_out, dtype=D) + 0.5)

    def forward(self, x):
        result = self.base_layer(x)
        lora = self.lora_B(self.lora_A(x))
        if not self.dora:
            return result + lora * self.scaling
        w0 = self.base_layer.weight
        w = w0 + self.scaling * (self.lora_B.weight.flatten(1) @ self.lora_A.weight.flatten(1)).reshape(w0.shape)
        mag = (self.lora_magnitude_vector / w.flatten(1).norm(p=2, dim=1).detach()).view(self.units)
        return result + (mag - 1) * self.plain(x) + mag * lora * self.scaling


class PeftLinear(PeftLayer):
    def __init__(self, n_in, n_out, r, alpha, dora):
        super().__init__()
        self.base_layer = nn.Linear(n_in, n_out)
        self.lora_A = nn.Linear(n_in, r, bias=False)
        self.lora_B = nn.Linear(r, n_out, bias=False)
        self.add_adapter(r, alpha, dora, n_out, (-1,))

    def plain(self, x):  # the base without its bias
        return F.linear(x, self.base_layer.weight)


class PeftConv2d(PeftLayer):
    def __init__(self, n_in, n_out, k, stride, padding, r, alpha, dora):
        super().__init__()
        self.base_layer = nn.Conv2d(n_in, n_out, k, stride=stride, padding=padding)
        self.lora_A = nn.Conv2d(n_in, r, k, stride=stride, padding=padding, bias=False)
        self.lora_B = nn.Conv2d(r, n_out, 1, bias=False)
        self.add_adapter(r, alpha, dora, n_out, (1, -1, 1, 1))

    def plain(self, x):
        return F.conv2d(x, self.base_layer.weight, None, self.base_layer.stride, self.base_layer.padding)


def case(name, m, x):
    m = m.double()
    with torch.no_grad():  # B nonzero (PEFT starts it at zero: every term must matter here)
        m.lora_B.weight.copy_(torch.randn_like(m.lora_B.weight) * 0.5)
    for k, v in m.state_dict().items():
        OUT[f"{name}.sd.{k}"] = v.detach().clone()
    x = x.clone().requires_grad_(True)
    out = m(x)
    cot = torch.randn_like(out)
    adapter = {k: p for k, p in m.named_parameters() if not k.startswith("base_layer.")}
    grads = torch.autograd.grad(out, [x] + list(adapter.values()), cot)
    OUT[f"{name}.in"] = x.detach()
    OUT[f"{name}.out"] = out.detach()
    OUT[f"{name}.cot"] = cot
    OUT[f"{name}.grad.in"] = grads[0]
    for k, g in zip(adapter, grads[1:]):
        OUT[f"{name}.grad.{k}"] = g


case("lora_linear", PeftLinear(5, 4, 2, 4, False), torch.randn(2, 3, 5, dtype=D))
case("dora_linear", PeftLinear(5, 4, 2, 4, True), torch.randn(6, 5, dtype=D))
case("lora_conv2d", PeftConv2d(3, 4, 3, 2, 1, 2, 4, False), torch.randn(2, 3, 7, 7, dtype=D))
case("dora_conv2d", PeftConv2d(3, 4, 3, 2, 1, 2, 4, True), torch.randn(2, 3, 7, 7, dtype=D))

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "goldens", "lora.safetensors")
write_safetensors(path, OUT)
print(f"wrote {len(OUT)} tensors to {os.path.normpath(path)}")
