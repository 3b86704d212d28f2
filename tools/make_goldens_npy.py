#!/usr/bin/python3
"""Writes tests/goldens/npy/*.npy with NumPy itself, for tests/test_io.cpp (files NumPy wrote
must load in ligm with their values; their values are in the file names' docstrings below).

  /usr/bin/python3 tools/make_goldens_npy.py
"""
import os

import numpy as np

root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "goldens", "npy")
os.makedirs(root, exist_ok=True)
a = np.arange(6, dtype=np.float64).reshape(2, 3) / 4  # [[0, .25, .5], [.75, 1, 1.25]]
np.save(os.path.join(root, "f8_2x3.npy"), a)
np.save(os.path.join(root, "f4_2x3.npy"), a.astype(np.float32))
np.save(os.path.join(root, "f8_2x3_fortran.npy"), np.asfortranarray(a))
np.save(os.path.join(root, "i8_scalar.npy"), np.array(-7, dtype=np.int64))
np.save(os.path.join(root, "i4_4.npy"), np.array([1, -2, 3, -4], dtype=np.int32))
np.save(os.path.join(root, "u1_2x2.npy"), np.array([[0, 255], [7, 128]], dtype=np.uint8))
np.save(os.path.join(root, "b1_3.npy"), np.array([True, False, True]))
np.save(os.path.join(root, "f4_empty_0x3.npy"), np.zeros((0, 3), dtype=np.float32))
with open(os.path.join(root, "f8_2x3_v2.npy"), "wb") as f:  # format version 2.0 (4-byte header length)
    np.lib.format.write_array(f, a, version=(2, 0))
print("wrote", len(os.listdir(root)), "files to tests/goldens/npy")
