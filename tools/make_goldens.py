#!/usr/bin/python3
"""Writes tests/goldens/ops.safetensors: forward values and gradients from PyTorch.

Run with Debian's PyTorch (python3-torch 1.13):  /usr/bin/python3 tools/make_goldens.py [--at-zero | --large]

Each case stores, in float64 unless an input is an index tensor:
  <case>.in<i>    the inputs (float inputs require grad unless listed as constant)
  <case>.out      the op's output
  <case>.cot      a random cotangent with the output's shape
  <case>.grad<i>  d(sum(out * cot)) / d(in<i>) for each float input that requires grad
The C++ test (tests/test_golden.cpp) runs the same op on the same inputs and compares.
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(20261128)
D = torch.float64
CASES = {}


def rn(*shape):
    return torch.randn(*shape, dtype=D)


def pos(*shape):
    return torch.rand(*shape, dtype=D) + 0.5


def idx(high, *shape):
    return torch.randint(0, high, shape, dtype=torch.int64)


# --at-zero: every float input zero (index inputs kept), written to ops_at_zero.safetensors: the
# values and gradients at kinks and removable singularities (relu, abs and clamp at 0, norms
# and attention of zero vectors, losses at zero logits), PyTorch's conventions there.
AT_ZERO = "--at-zero" in sys.argv
# --large: every float input times 100 (probabilities for binary_cross_entropy kept), written to
# ops_large.safetensors: overflow and saturation (exp, softmax, logsumexp, sigmoid, softplus,
# the losses at large logits), where a formula that is exact on paper can overflow.
AT_LARGE = "--large" in sys.argv


def case(name, fn, *inputs, const=()):
    ins = []
    for i, t in enumerate(inputs):
        t = t.clone()
        if AT_ZERO and t.is_floating_point():
            t = torch.zeros_like(t)
        if AT_LARGE and t.is_floating_point() and name != "binary_cross_entropy":
            t = t * 100
        if t.is_floating_point() and i not in const:
            t.requires_grad_(True)
        ins.append(t)
    out = fn(*ins)
    if isinstance(out, (tuple, list)):
        out = out[0]
    store = {f"{name}.in{i}": t.detach() for i, t in enumerate(ins)}
    store[f"{name}.out"] = out.detach().to(D)
    wanted = [t for t in ins if t.requires_grad]
    if out.requires_grad and wanted:
        cot = torch.randn_like(out)
        grads = torch.autograd.grad(out, wanted, cot, allow_unused=True)
        store[f"{name}.cot"] = cot
        k = 0
        for i, t in enumerate(ins):
            if t.requires_grad:
                g = grads[k]
                k += 1
                store[f"{name}.grad{i}"] = torch.zeros_like(t) if g is None else g
    assert name not in CASES, name
    CASES[name] = store


# --- unary ------------------------------------------------------------------------------
case("neg", torch.neg, rn(3, 4))
case("abs", torch.abs, rn(3, 4))
case("exp", torch.exp, rn(3, 4))
case("log", torch.log, pos(3, 4))
case("log1p", torch.log1p, pos(3, 4))
case("sqrt", torch.sqrt, pos(3, 4))
case("rsqrt", torch.rsqrt, pos(3, 4))
case("reciprocal", torch.reciprocal, pos(3, 4))
case("square", torch.square, rn(3, 4))
case("pow_scalar", lambda x: torch.pow(x, 2.5), pos(3, 4))
case("clamp", lambda x: torch.clamp(x, -0.5, 0.7), rn(4, 5))
case("sin", torch.sin, rn(3, 4))
case("cos", torch.cos, rn(3, 4))
case("tanh", torch.tanh, rn(3, 4))
case("sigmoid", torch.sigmoid, rn(3, 4))
case("relu", F.relu, rn(3, 4))
case("leaky_relu", lambda x: F.leaky_relu(x, 0.2), rn(3, 4))
case("elu", lambda x: F.elu(x, 1.3), rn(3, 4))
case("gelu", F.gelu, rn(3, 4))
case("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), rn(3, 4))
case("silu", F.silu, rn(3, 4))
case("softplus", lambda x: F.softplus(x, beta=2.0, threshold=3.0), rn(4, 5) * 2)
case("erf", torch.erf, rn(3, 4))

# --- binary with broadcasting -------------------------------------------------------------
case("add_bcast", torch.add, rn(2, 3, 4), rn(3, 1))
case("sub_bcast", torch.sub, rn(4), rn(2, 3, 4))
case("mul_bcast", torch.mul, rn(2, 1, 4), rn(3, 1))
case("div_bcast", torch.div, rn(2, 3, 4), pos(1, 4))
case("pow_tensor", torch.pow, pos(3, 4), rn(4))
case("maximum", torch.maximum, rn(3, 4), rn(1, 4))
case("minimum", torch.minimum, rn(3, 4), rn(3, 1))
case("where", lambda c, a, b: torch.where(c > 0, a, b), rn(3, 4), rn(3, 4), rn(1, 4), const=(0,))

# --- reductions ---------------------------------------------------------------------------
case("sum_all", torch.sum, rn(3, 4))
case("sum_dims_keep", lambda x: x.sum(dim=(0, 2), keepdim=True), rn(2, 3, 4))
case("mean_dim", lambda x: x.mean(dim=1), rn(2, 3, 4))
case("amax_dims", lambda x: torch.amax(x, dim=(1, 2)), rn(2, 3, 4))
case("amin_all", torch.amin, rn(3, 4))
case("max_dim", lambda x: torch.max(x, dim=1), rn(3, 5))
case("min_dim_keep", lambda x: torch.min(x, dim=0, keepdim=True), rn(3, 5))
case("var_unbiased", lambda x: torch.var(x, dim=1), rn(3, 5))
case("var_biased_keep", lambda x: torch.var(x, dim=(0, 2), unbiased=False, keepdim=True), rn(2, 3, 4))
case("std", lambda x: torch.std(x, dim=0), rn(4, 3))
case("logsumexp", lambda x: torch.logsumexp(x, dim=1), rn(3, 5) * 3)
case("norm2", lambda x: torch.norm(x, dim=1), rn(3, 5))
case("norm1", lambda x: torch.norm(x, p=1, dim=0), rn(3, 5))
case("norm3", lambda x: torch.norm(x, p=3), rn(3, 5))

# --- movement -----------------------------------------------------------------------------
case("reshape", lambda x: x.reshape(4, 6) * torch.arange(24, dtype=D).reshape(4, 6), rn(2, 3, 4))
case("permute", lambda x: x.permute(2, 0, 1), rn(2, 3, 4))
case("transpose_contig", lambda x: x.transpose(0, 1).contiguous().reshape(-1), rn(3, 4))
case("expand", lambda x: x.expand(2, 3, 4), rn(3, 1))
case("squeeze_unsqueeze", lambda x: x.squeeze(1).unsqueeze(0), rn(3, 1, 4))
case("narrow", lambda x: x.narrow(1, 1, 2), rn(3, 4))
case("slice_step", lambda x: x[:, 1::2], rn(3, 7))
case("select", lambda x: x[:, 2], rn(3, 4, 2))
case("index_select", lambda x, i: torch.index_select(x, 1, i), rn(3, 5), torch.tensor([4, 0, 4, 2]))
case("gather", lambda x, i: torch.gather(x, 1, i), rn(3, 5), idx(5, 3, 4))
case("scatter_add", lambda b, i, s: b.scatter_add(1, i, s), rn(3, 5), idx(5, 3, 4), rn(3, 4))
case("index_add", lambda b, s: b.index_add(0, torch.tensor([1, 1, 0]), s), rn(2, 3), rn(3, 3))
case("masked_fill", lambda x, m: x.masked_fill(m > 0, 2.5), rn(3, 4), rn(1, 4), const=(1,))
case("cat", lambda a, b, c: torch.cat([a, b, c], dim=1), rn(2, 3), rn(2, 1), rn(2, 4))
case("stack", lambda a, b: torch.stack([a, b], dim=1), rn(2, 3), rn(2, 3))
case("split", lambda x: torch.cat([p * (k + 1) for k, p in enumerate(torch.split(x, 2, dim=1))], 1), rn(3, 5))
case("chunk", lambda x: torch.cat([p * (k + 1) for k, p in enumerate(torch.chunk(x, 3, dim=0))], 0), rn(7, 2))
case("flip", lambda x: torch.flip(x, [0, 2]), rn(2, 3, 4))
case("pad", lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), rn(2, 3, 4))
case("roll", lambda x: torch.roll(x, shifts=(1, -2), dims=(0, 1)), rn(3, 5))

# --- matmul -------------------------------------------------------------------------------
case("matmul_2d", torch.matmul, rn(3, 4), rn(4, 5))
case("matmul_1d_1d", torch.matmul, rn(4), rn(4))
case("matmul_1d_2d", torch.matmul, rn(4), rn(4, 3))
case("matmul_2d_1d", torch.matmul, rn(3, 4), rn(4))
case("matmul_bcast", torch.matmul, rn(2, 1, 3, 4), rn(5, 4, 2))
case("matmul_nd_2d", torch.matmul, rn(2, 3, 4), rn(4, 5))
case("matmul_transposed", lambda a, b: a.t() @ b.t(), rn(4, 3), rn(5, 4))
case("bmm", torch.bmm, rn(2, 3, 4), rn(2, 4, 5))
case("linear", F.linear, rn(2, 3, 4), rn(5, 4), rn(5))

# --- softmax ------------------------------------------------------------------------------
case("softmax", lambda x: F.softmax(x, dim=1), rn(3, 5, 2))
case("log_softmax", lambda x: F.log_softmax(x, dim=-1), rn(3, 5))

# --- losses -------------------------------------------------------------------------------
tgt = idx(5, 6)
case("cross_entropy", lambda x, t: F.cross_entropy(x, t), rn(6, 5), tgt)
case("cross_entropy_smooth", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), rn(6, 5), tgt)
tgt_ign = tgt.clone()
tgt_ign[2] = -100
case("cross_entropy_ignore_weight", lambda x, t, w: F.cross_entropy(x, t, weight=w), rn(6, 5), tgt_ign, pos(5), const=(2,))
case("cross_entropy_all_options", lambda x, t, w: F.cross_entropy(x, t, weight=w, ignore_index=3, label_smoothing=0.2),
     rn(6, 5), tgt, pos(5), const=(2,))
case("cross_entropy_sum", lambda x, t: F.cross_entropy(x, t, reduction="sum"), rn(6, 5), tgt)
case("cross_entropy_none_4d", lambda x, t: F.cross_entropy(x, t, reduction="none"), rn(2, 4, 3, 3), idx(4, 2, 3, 3))
case("cross_entropy_soft", lambda x, p: F.cross_entropy(x, p), rn(4, 5), F.softmax(rn(4, 5), 1), const=(1,))
case("cross_entropy_soft_smooth", lambda x, p: F.cross_entropy(x, p, label_smoothing=0.3), rn(4, 5), F.softmax(rn(4, 5), 1), const=(1,))
case("nll_loss", lambda x, t: F.nll_loss(x, t), rn(6, 5), tgt)
case("mse_loss", F.mse_loss, rn(3, 4), rn(3, 4))
case("l1_loss", lambda a, b: F.l1_loss(a, b, reduction="sum"), rn(3, 4), rn(3, 4))
case("smooth_l1_loss", lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), rn(3, 4), rn(3, 4))
case("huber_loss", lambda a, b: F.huber_loss(a, b, delta=0.7), rn(3, 4), rn(3, 4))
case("bce_with_logits", lambda x, y, pw: F.binary_cross_entropy_with_logits(x, y, pos_weight=pw),
     rn(4, 3) * 3, torch.rand(4, 3, dtype=D), pos(3), const=(1, 2))
case("bce_with_logits_weight", lambda x, y, w: F.binary_cross_entropy_with_logits(x, y, weight=w, reduction="sum"),
     rn(4, 3), torch.rand(4, 3, dtype=D), pos(4, 3), const=(1, 2))
case("kl_div_batchmean", lambda x, t: F.kl_div(x, t, reduction="batchmean"), F.log_softmax(rn(3, 4), 1),
     torch.cat([F.softmax(rn(2, 4), 1), torch.tensor([[0.5, 0.5, 0.0, 0.0]], dtype=D)]), const=(1,))
case("kl_div_log_target", lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True), F.log_softmax(rn(3, 4), 1),
     F.log_softmax(rn(3, 4), 1))
case("cosine_similarity", lambda a, b: F.cosine_similarity(a, b, dim=1), rn(3, 5), rn(3, 5))

# --- convolution, pooling, interpolation --------------------------------------------------
case("conv2d", lambda x, w, b: F.conv2d(x, w, b), rn(2, 3, 6, 5), rn(4, 3, 3, 3), rn(4))
case("conv2d_stride_pad_dil", lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
     rn(2, 3, 7, 6), rn(4, 3, 3, 2))
case("conv2d_groups", lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2), rn(2, 4, 5, 5), rn(6, 2, 3, 3), rn(6))
case("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), rn(2, 3, 9), rn(4, 3, 3), rn(4))
case("conv_transpose2d", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
     rn(2, 3, 4, 3), rn(3, 2, 3, 3), rn(2))
case("conv_transpose2d_groups_dil", lambda x, w: F.conv_transpose2d(x, w, groups=2, dilation=2),
     rn(1, 4, 3, 4), rn(4, 3, 2, 3))
case("max_pool2d", lambda x: F.max_pool2d(x, 2), rn(2, 3, 6, 5))
case("max_pool2d_pad_ceil", lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), rn(1, 2, 7, 6))
case("avg_pool2d", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), rn(2, 2, 7, 6))
case("avg_pool2d_exclude_pad_ceil", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                                                            count_include_pad=False), rn(1, 2, 6, 6))
case("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), rn(2, 3, 7, 5))
case("interpolate_nearest", lambda x: F.interpolate(x, size=(5, 7), mode="nearest"), rn(1, 2, 3, 4))
case("interpolate_bilinear", lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=False), rn(1, 2, 3, 4))
case("interpolate_nearest_scale", lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest"), rn(1, 2, 3, 5))
case("interpolate_bilinear_scale", lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"), rn(1, 2, 3, 5))
case("interpolate_bilinear_ac", lambda x: F.interpolate(x, size=(6, 3), mode="bilinear", align_corners=True), rn(1, 2, 3, 4))

# --- embedding, norms, attention, sort ----------------------------------------------------
case("embedding", lambda i, w: F.embedding(i, w), idx(6, 2, 3), rn(6, 4))
case("embedding_padding", lambda i, w: F.embedding(i, w, padding_idx=1), torch.tensor([[1, 2, 1], [0, 1, 5]]), rn(6, 4))
case("batch_norm_train", lambda x, w, b: F.batch_norm(x, torch.zeros(3, dtype=D), torch.ones(3, dtype=D), w, b, training=True),
     rn(4, 3, 2, 2), rn(3), rn(3))
def bn_running(x, rm, rv):
    m, v = rm.clone(), rv.clone()
    F.batch_norm(x, m, v, training=True, momentum=0.3)
    return torch.cat([m, v])
case("batch_norm_running_stats", bn_running, rn(5, 3, 2), rn(3), pos(3), const=(0, 1, 2))
case("batch_norm_eval", lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, training=False),
     rn(4, 3, 5), rn(3), rn(3), rn(3), pos(3), const=(3, 4))
case("layer_norm", lambda x, w, b: F.layer_norm(x, (4,), w, b), rn(2, 3, 4), rn(4), rn(4))
case("layer_norm_2d", lambda x: F.layer_norm(x, (3, 4)), rn(2, 3, 4))
case("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b), rn(2, 4, 3, 2), rn(4), rn(4))
case("rms_norm", lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w, rn(2, 3, 4), rn(4))


def sdpa(q, k, v, mask=None, causal=False):
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        L, S = s.shape[-2], s.shape[-1]
        s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), float("-inf"))
    if mask is not None:
        s = s + mask
    return torch.softmax(s, -1) @ v


case("sdpa", lambda q, k, v: sdpa(q, k, v), rn(2, 3, 4, 8), rn(2, 3, 5, 8), rn(2, 3, 5, 6))
case("sdpa_causal", lambda q, k, v: sdpa(q, k, v, causal=True), rn(2, 4, 8), rn(2, 4, 8), rn(2, 4, 8))
case("sdpa_mask", lambda q, k, v, m: sdpa(q, k, v, mask=m), rn(2, 3, 4), rn(2, 5, 4), rn(2, 5, 4), rn(3, 5), const=(3,))
case("sort", lambda x: torch.sort(x, dim=1, descending=True), rn(3, 6))
case("topk", lambda x: torch.topk(x, 3, dim=0), rn(5, 4))


def packed_attention(qkv, heads, causal=False):
    """ligm's packed_attention: q, k, v of H heads side by side in each token's row."""
    b, n, c = qkv.shape
    p = qkv.reshape(b, n, 3, heads, c // (3 * heads)).permute(2, 0, 3, 1, 4)
    return sdpa(p[0], p[1], p[2], causal=causal).transpose(1, 2).reshape(b, n, c // 3)


case("packed_attention", lambda x: packed_attention(x, 2), rn(2, 4, 18))
case("packed_attention_causal", lambda x: packed_attention(x, 3, causal=True), rn(2, 5, 18))
case("batch_norm_relu_train",
     lambda x, w, b: F.relu(F.batch_norm(x, torch.zeros(3, dtype=D), torch.ones(3, dtype=D), w, b, training=True)),
     rn(4, 3, 2, 5), rn(3), rn(3))
case("batch_norm_relu_eval", lambda x, w, b, rm, rv: F.relu(F.batch_norm(x, rm, rv, w, b, training=False)),
     rn(4, 3, 2, 5), rn(3), rn(3), rn(3), pos(3), const=(3, 4))
case("batch_norm_add_relu_train",
     lambda x, r, w, b: F.relu(F.batch_norm(x, torch.zeros(3, dtype=D), torch.ones(3, dtype=D), w, b, training=True)
                               + r),
     rn(4, 3, 2, 5), rn(4, 3, 2, 5), rn(3), rn(3))
case("batch_norm_add_relu_eval", lambda x, r, w, b, rm, rv: F.relu(F.batch_norm(x, rm, rv, w, b, training=False) + r),
     rn(4, 3, 2, 5), rn(4, 3, 2, 5), rn(3), rn(3), rn(3), pos(3), const=(4, 5))


def with_nonfinite(t):
    """t with a NaN, +inf and -inf at its first three positions."""
    t = t.clone()
    t.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), float("-inf")], dtype=t.dtype)
    return t


case("nan_to_num", lambda x: torch.nan_to_num(x, nan=0.5, posinf=3.0, neginf=-2.0), with_nonfinite(rn(3, 4)))



def signs(*shape):
    return torch.randint(0, 2, shape).to(D) * 2 - 1


case("binary_cross_entropy", lambda x, y, w: F.binary_cross_entropy(x, y, weight=w),
     torch.rand(4, 3, dtype=D) * 0.9 + 0.05, torch.rand(4, 3, dtype=D), pos(4, 3), const=(2,))
case("multi_margin_loss", lambda x, y: F.multi_margin_loss(x, y), rn(5, 4), idx(4, 5))
case("multi_margin_loss_p2_weight", lambda x, y, w: F.multi_margin_loss(x, y, p=2, margin=0.7, weight=w,
                                                                        reduction="sum"),
     rn(5, 4), idx(4, 5), pos(4), const=(2,))
case("hinge_embedding_loss", lambda x, y: F.hinge_embedding_loss(x, y, margin=0.8), rn(4, 5), signs(4, 5),
     const=(1,))
case("margin_ranking_loss", lambda a, b, y: F.margin_ranking_loss(a, b, y, margin=0.3), rn(6), rn(6), signs(6),
     const=(2,))
case("triplet_margin_loss", lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=0.5), rn(4, 6), rn(4, 6), rn(4, 6))
case("triplet_margin_loss_swap_p1", lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=2.0, p=1, swap=True,
                                                                          reduction="none"),
     rn(4, 6), rn(4, 6), rn(4, 6))
case("cosine_embedding_loss", lambda a, b, y: F.cosine_embedding_loss(a, b, y, margin=-0.2), rn(5, 4), rn(5, 4),
     signs(5), const=(2,))
case("pairwise_distance", lambda a, b: F.pairwise_distance(a, b, p=3.0), rn(3, 5), rn(3, 5))


def randomize(m):
    """Non-trivial affine parameters, biases, class tokens, positions and running statistics,
    so that loading them matters (the module and model goldens use it)."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("weight") and p.dim() == 1:
                p.copy_(torch.rand_like(p) + 0.5)
            elif p.dim() == 1 or name in ("cls_token", "pos_embed"):
                p.copy_(torch.randn_like(p) * 0.3)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        dtype = {torch.float64: "F64", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    header["__metadata__"] = {"generator": "tools/make_goldens.py", "torch": torch.__version__}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "tests", "goldens", "ops_at_zero.safetensors" if AT_ZERO else "ops_large.safetensors" if AT_LARGE else "ops.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    flat = {k: v for store in CASES.values() for k, v in store.items()}
    write_safetensors(out, flat)
    print(f"wrote {len(CASES)} cases ({len(flat)} tensors) to {os.path.relpath(out, root)}")
