#!/usr/bin/env python3
"""Checks docs/ops.md against the tests: every row's gradcheck file calls check_grad on the
op, and every golden case named exists in tests/goldens/ops.safetensors and golden_cases.hpp.

Usage: tools/check_ops_table.py <source root>
Prints a doctest-style summary line, exits 1 on any mismatch.
"""
import json
import os
import re
import struct
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
with open(os.path.join(root, "tests", "goldens", "ops.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
golden_cases = {k[:-4] for k in header if k.endswith(".out")}
golden_cpp = open(os.path.join(root, "tests", "golden_cases.hpp")).read()
cpp_cases = set(re.findall(r'm\["([a-z0-9_]+)"\]', golden_cpp))
cpp_cases |= set(re.findall(r'"(matmul_[a-z0-9_]+)"', golden_cpp))

rows, errors, named = 0, [], set()
for line in open(os.path.join(root, "docs", "ops.md")):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 7 or cells[0] in ("op", "---"):
        continue
    rows += 1
    op, _, _, _, _, grad_file, golden = cells
    path = os.path.join(root, "tests", grad_file)
    if not os.path.exists(path):
        errors.append(f"{op}: gradcheck file {grad_file} does not exist")
        continue
    text = open(path).read()
    token = op.split()[0]
    # The op must appear in a TEST_CASE that runs check_grad.
    blocks = [b for b in text.split("TEST_CASE(")[1:] if "check_grad(" in b]
    if not any(re.search(r"\b" + re.escape(token) + r"\(", b) for b in blocks):
        errors.append(f"{op}: no check_grad call on {token} in {grad_file}")
    if golden.startswith("—"):
        continue
    for case in [c.strip() for c in golden.split(",")]:
        named.add(case)
        if case not in golden_cases:
            errors.append(f"{op}: golden case {case} missing from ops.safetensors")
        if case not in cpp_cases:
            errors.append(f"{op}: golden case {case} missing from golden_cases.hpp")
for case in sorted(golden_cases - named):
    errors.append(f"golden case {case} is not listed in docs/ops.md")

for e in errors:
    print("ops table:", e)
ok = not errors
print(f"ops table: {rows} rows checked, {len(golden_cases)} golden cases")
print(f"[doctest] test cases: 1 | {int(ok)} passed | {int(not ok)} failed | 0 skipped")
sys.exit(0 if ok else 1)
