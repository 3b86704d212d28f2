#!/usr/bin/python3
"""Writes tests/goldens/nn.safetensors: PyTorch modules and optimizers, for tests/test_nn_golden.cpp.

Run with Debian's PyTorch (python3-torch 1.13):  /usr/bin/python3 tools/make_goldens_nn.py

Each module case stores, in float64:
  <case>.sd.<key>       the module's state_dict (the C++ test loads it: keys must match)
  <case>.in             the input (int64 indices for embedding)
  <case>.out, .cot      the output and a random cotangent
  <case>.grad.in        d(sum(out * cot)) / d(input)
  <case>.grad.<param>   d(sum(out * cot)) / d(parameter), by state_dict name
  <case>.after.<key>    the buffers after the forward (running statistics)
Each optimizer case starts from opt.p0 and applies the gradients opt.g1..opt.g6:
  opt.<case>.p<k>       the parameter after step k
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import randomize, write_safetensors  # noqa: E402

torch.manual_seed(1128)
D = torch.float64
OUT = {}


def module_case(name, m, x, train=True):
    m = m.double()
    randomize(m)
    m.train(train)
    for k, v in m.state_dict().items():
        OUT[f"{name}.sd.{k}"] = v.detach().clone().to(D)
    is_index = x.dtype == torch.int64
    x = x.clone() if is_index else x.clone().to(D).requires_grad_(True)
    out = m(x)
    cot = torch.randn_like(out)
    params = dict(m.named_parameters())
    wanted = ([] if is_index else [x]) + list(params.values())
    grads = torch.autograd.grad(out, wanted, cot, allow_unused=True)
    OUT[f"{name}.in"] = x.detach()
    OUT[f"{name}.out"] = out.detach()
    OUT[f"{name}.cot"] = cot
    if not is_index:
        OUT[f"{name}.grad.in"] = grads[0]
        grads = grads[1:]
    for (k, p), g in zip(params.items(), grads):
        OUT[f"{name}.grad.{k}"] = torch.zeros_like(p) if g is None else g
    for k, v in m.state_dict().items():
        if k not in params:
            OUT[f"{name}.after.{k}"] = v.detach().clone().to(D)


def rn(*s):
    return torch.randn(*s, dtype=D)


module_case("linear", nn.Linear(5, 3), rn(4, 5))
module_case("linear_nobias", nn.Linear(5, 3, bias=False), rn(2, 3, 5))
module_case("conv2d", nn.Conv2d(3, 4, 3, stride=2, padding=1), rn(2, 3, 7, 7))
module_case("conv2d_groups", nn.Conv2d(4, 6, (3, 2), padding=(1, 0), dilation=(1, 2), groups=2, bias=False),
            rn(1, 4, 6, 7))
module_case("conv1d", nn.Conv1d(2, 3, 3, padding=1), rn(2, 2, 6))
module_case("conv_transpose2d", nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), rn(1, 3, 4, 4))
module_case("batchnorm2d_train", nn.BatchNorm2d(3), rn(4, 3, 5, 5))
module_case("batchnorm1d_train_3d", nn.BatchNorm1d(3, momentum=0.3), rn(4, 3, 6))
module_case("batchnorm1d_eval", nn.BatchNorm1d(3), rn(6, 3), train=False)
module_case("layernorm", nn.LayerNorm([3, 4]), rn(2, 5, 3, 4))
module_case("groupnorm", nn.GroupNorm(2, 4), rn(2, 4, 3, 3))
module_case("embedding", nn.Embedding(7, 3, padding_idx=2), torch.tensor([[1, 2, 6, 1], [0, 2, 3, 5]]))
module_case("maxpool2d", nn.MaxPool2d(3, stride=2, padding=1), rn(2, 2, 7, 6))
module_case("avgpool2d", nn.AvgPool2d(2), rn(2, 2, 6, 6))
module_case("adaptiveavgpool2d", nn.AdaptiveAvgPool2d((2, 3)), rn(2, 2, 5, 7))
module_case("gelu_tanh", nn.GELU(approximate="tanh"), rn(3, 4))
module_case("silu", nn.SiLU(), rn(3, 4))
module_case("leakyrelu", nn.LeakyReLU(0.1), rn(3, 4))
module_case("softplus", nn.Softplus(2.0, 1.0), rn(3, 4))
module_case("tanh", nn.Tanh(), rn(3, 4))
module_case("sigmoid", nn.Sigmoid(), rn(3, 4))
module_case("sequential_cnn",
            nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 5)),
            rn(2, 1, 6, 6))



class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


module_case("mha", SelfAttention(), rn(2, 5, 8))
module_case("transformer_prenorm",
            nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True),
            rn(2, 5, 8))

# --- optimizers ----------------------------------------------------------------------------
p0 = rn(4, 3)
grads = [rn(4, 3) for _ in range(6)]
OUT["opt.p0"] = p0.clone()
for k, g in enumerate(grads, 1):
    OUT[f"opt.g{k}"] = g.clone()
CONFIGS = {
    "sgd": lambda p: torch.optim.SGD([p], lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
    "adam": lambda p: torch.optim.Adam([p], lr=0.01, weight_decay=0.1),
    "adamw": lambda p: torch.optim.AdamW([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    "rmsprop": lambda p: torch.optim.RMSprop([p], lr=0.01),
    "rmsprop_centered_momentum": lambda p: torch.optim.RMSprop([p], lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1,
                                                              momentum=0.8, centered=True),
    "adagrad": lambda p: torch.optim.Adagrad([p], lr=0.1),
    "adagrad_decay": lambda p: torch.optim.Adagrad([p], lr=0.1, lr_decay=0.05, weight_decay=0.1,
                                                   initial_accumulator_value=0.3, eps=1e-8),
}
for name, make in CONFIGS.items():
    p = p0.clone().requires_grad_(True)
    opt = make(p)
    for k, g in enumerate(grads, 1):
        p.grad = g.clone()
        opt.step()
        OUT[f"opt.{name}.p{k}"] = p.detach().clone()

# --- learning-rate schedules: the lr at steps 0..19 ---------------------------------------
SCHEDULES = {
    "step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5, 11], gamma=0.1),
    "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20),
}
for name, make in SCHEDULES.items():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = make(opt)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    OUT[f"sched.{name}"] = torch.tensor(lrs, dtype=D)

# --- ReduceLROnPlateau: the lr after each step(metric) --------------------------------------
METRICS = [1.0, 0.9, 0.95, 0.9, 0.9, 0.91, 0.85, 0.86, 0.86, 0.86, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.79995, 0.8,
           0.8, 0.8]
OUT["plateau.metrics"] = torch.tensor(METRICS, dtype=D)
PLATEAUS = {
    "min_rel": dict(mode="min", factor=0.5, patience=2, cooldown=1, min_lr=0.02),
    "max_abs": dict(mode="max", factor=0.3, patience=1, threshold=0.01, threshold_mode="abs"),
}
for name, kw in PLATEAUS.items():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    lrs = []
    for m in METRICS:
        sched.step(-m if kw["mode"] == "max" else m)
        lrs.append(opt.param_groups[0]["lr"])
    OUT[f"plateau.{name}"] = torch.tensor(lrs, dtype=D)

# --- 2-D sin-cos positions, as MAE's get_2d_sincos_pos_embed (numpy) ---------------------
def sincos_1d(dim, pos):
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, grid_h, grid_w, cls_token):
    grid = np.meshgrid(np.arange(grid_w, dtype=np.float64), np.arange(grid_h, dtype=np.float64))
    grid = np.stack(grid, axis=0).reshape(2, 1, grid_h, grid_w)
    emb = np.concatenate([sincos_1d(dim // 2, grid[0]), sincos_1d(dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    return emb


OUT["sincos.2x3x8.cls"] = torch.from_numpy(sincos_2d(8, 2, 3, True))
OUT["sincos.4x4x16"] = torch.from_numpy(sincos_2d(16, 4, 4, False))

# --- modules added later (here, after every other draw, so the cases above keep their values) ---
module_case("elu", nn.ELU(alpha=0.7), rn(3, 4))
module_case("softmax", nn.Softmax(dim=1), rn(2, 5, 3))
module_case("log_softmax", nn.LogSoftmax(dim=-1), rn(3, 6))
module_case("upsample_nearest", nn.Upsample(scale_factor=2, mode="nearest"), rn(2, 3, 4, 5))
module_case("upsample_bilinear", nn.Upsample(size=(7, 6), mode="bilinear", align_corners=False), rn(2, 3, 4, 5))
module_case("unflatten", nn.Unflatten(1, (2, 3, 2)), rn(4, 12))

# --- L-BFGS: parameters (flat), returned loss and closure calls after each of 3 step() calls ---
# lbfgs.<case>.p<k>, .loss<k>, .evals<k>; the problems' data: lbfgs.X, lbfgs.y, lbfgs.w0.
X = rn(40, 5)
y_lr = (X @ torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5], dtype=D) + 0.3 * rn(40) > 0).to(D)
OUT["lbfgs.X"], OUT["lbfgs.y"] = X, y_lr
OUT["lbfgs.w0"] = torch.zeros(6, dtype=D)


def logreg_problem():
    w = torch.zeros(5, dtype=D, requires_grad=True)
    b = torch.zeros(1, dtype=D, requires_grad=True)

    def loss_fn():
        return F.binary_cross_entropy_with_logits(X @ w + b, y_lr) + 1e-2 * (w * w).sum()
    return [w, b], loss_fn


def rosenbrock_problem():
    x = torch.tensor([-1.5, 2.0], dtype=D, requires_grad=True)

    def loss_fn():
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
    return [x], loss_fn


LBFGS_CASES = {
    "logreg": (logreg_problem, dict(lr=1, max_iter=20, history_size=5)),
    "logreg_wolfe": (logreg_problem, dict(lr=1, max_iter=10, history_size=3, line_search_fn="strong_wolfe")),
    "rosen_wolfe": (rosenbrock_problem, dict(lr=1, max_iter=30, history_size=10, line_search_fn="strong_wolfe")),
    "rosen_wolfe_h2": (rosenbrock_problem, dict(lr=1, max_iter=25, history_size=2, line_search_fn="strong_wolfe")),
}
for name, (make_problem, kw) in LBFGS_CASES.items():
    params, loss_fn = make_problem()
    opt = torch.optim.LBFGS(params, **kw)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss
    for k in range(1, 4):
        loss = opt.step(closure)
        OUT[f"lbfgs.{name}.p{k}"] = torch.cat([p.detach().reshape(-1) for p in params]).clone()
        OUT[f"lbfgs.{name}.loss{k}"] = torch.tensor([float(loss)], dtype=D)
        OUT[f"lbfgs.{name}.evals{k}"] = torch.tensor([opt.state[params[0]]["func_evals"]], dtype=D)

if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "goldens", "nn.safetensors")
    write_safetensors(path, OUT)
    print(f"wrote {len(OUT)} tensors to {os.path.relpath(path, root)}")
