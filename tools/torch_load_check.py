#!/usr/bin/python3
"""PyTorch loads ligm checkpoints and must reproduce ligm's logits.

  /usr/bin/python3 tools/torch_load_check.py DIR      (DIR written by build/tests/torch_export DIR)

For each DIR/<arch>.ckpt: read the safetensors file with nothing but json and numpy, take the
"model.*" tensors (PyTorch's key names), load them strictly into the PyTorch architecture
(torch.nn.Sequential, torchvision's resnet18 with the CIFAR stem, timm's VisionTransformer, a
nanoGPT-style GPT), run the probe input in eval mode and compare with the logits ligm saved.
Needs python3-torch and python3-torchvision; the ViT needs timm (skipped without it).
Exit status 0 if every model matches, 1 if one does not, 77 if PyTorch is missing.
"""
import glob
import json
import os
import struct
import sys

try:
    import numpy as np
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_reference as ref
except ImportError as e:
    print(f"torch_load_check: skipped ({e})")
    sys.exit(77)

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for k, v in header.items():
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=DTYPES[v["dtype"]]).reshape(v["shape"]).copy())
    return out, meta


def build(arch, cfg):
    if arch == "mlp":
        return ref.mlp(784, cfg["hidden"], 10, bn=cfg["batch_norm"])
    if arch == "small_cnn":
        return ref.small_cnn(1, 10, [32, 64], 128, 28)
    if arch == "resnet18_cifar":
        return ref.resnet18_cifar(1, 10)
    if arch == "vit":
        return ref.vit(img_size=28, patch_size=cfg["patch_size"], in_chans=1, num_classes=10,
                       embed_dim=cfg["embed_dim"], depth=cfg["depth"], num_heads=cfg["num_heads"])
    if arch == "gpt":
        return ref.GPT(cfg["vocab_size"], cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"])
    raise ValueError(f"unknown arch {arch}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    failures = 0
    for ckpt in sorted(glob.glob(os.path.join(sys.argv[1], "*.ckpt"))):
        tensors, meta = read_safetensors(ckpt)
        arch = meta["arch"]
        try:
            model = build(arch, json.loads(meta["config"]))
        except ImportError as e:
            print(f"{arch:16s} skipped ({e})")
            continue
        sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(sd, strict=True)  # every key PyTorch has, and no other
        model.eval()
        probe, _ = read_safetensors(ckpt.replace(".ckpt", ".probe.safetensors"))
        with torch.no_grad():
            logits = model(probe["input"])
        err = (logits - probe["logits"]).abs().max().item()
        scale = probe["logits"].abs().max().item()
        ok = err <= 1e-4 * max(1.0, scale)
        failures += not ok
        print(f"{arch:16s} {len(sd):4d} tensors loaded strictly; logits {tuple(logits.shape)}, "
              f"max |torch - ligm| = {err:.2e} (max |logit| {scale:.2f}): {'ok' if ok else 'MISMATCH'}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
