// A stable per-row sort as a bitonic network (Batcher, 1968): rows are padded to a power of
// two P and every step compares fixed pairs, so each step is one data-parallel kernel (one
// thread per element) and needs no block synchronisation. Stability comes from the order
// itself: elements compare by (value, original index), which is a strict total order.
#pragma once
#include <cstdint>

#include "ligm/backend/kernels/elementwise_math.hpp"

namespace ligm::kernels {

// Does (a, ia) come before (b, ib)? Padding (index >= cols) sorts last; NaN is the largest
// value (last ascending, first descending), as in PyTorch; equal values keep index order.
template <class T>
LIGM_HD bool sort_before(T a, std::int64_t ia, T b, std::int64_t ib, std::int64_t cols,
                         bool descending) {
  const bool pad_a = ia >= cols, pad_b = ib >= cols;
  if (pad_a || pad_b) return pad_a == pad_b ? ia < ib : pad_b;
  const bool nan_a = math::is_nan(a), nan_b = math::is_nan(b);
  if (nan_a || nan_b) return nan_a == nan_b ? ia < ib : (descending ? nan_a : nan_b);
  if (a == b) return ia < ib;
  return descending ? b < a : a < b;
}

// keys/idx: [rows, P] scratch. Element i of each row starts as (src[i], i), padding past cols.
template <class T>
struct SortInit {
  const T* src;
  std::int64_t cols, p;
  T* keys;
  std::int64_t* idx;
  LIGM_HD void operator()(std::int64_t t) const {
    const std::int64_t row = t / p, i = t % p;
    keys[t] = i < cols ? src[row * cols + i] : T();
    idx[t] = i;
  }
};

// One step (k, j) of the network: element i meets i ^ j; blocks of size k alternate direction.
template <class T>
struct BitonicStep {
  T* keys;
  std::int64_t* idx;
  std::int64_t cols, p, k, j;
  bool descending;
  LIGM_HD void operator()(std::int64_t t) const {
    const std::int64_t row = t / p, i = t % p, partner = i ^ j;
    if (partner <= i) return;
    const std::int64_t a = row * p + i, b = row * p + partner;
    const bool up = (i & k) == 0;
    const bool swap = up ? sort_before(keys[b], idx[b], keys[a], idx[a], cols, descending)
                         : sort_before(keys[a], idx[a], keys[b], idx[b], cols, descending);
    if (swap) {
      const T tk = keys[a];
      keys[a] = keys[b];
      keys[b] = tk;
      const std::int64_t ti = idx[a];
      idx[a] = idx[b];
      idx[b] = ti;
    }
  }
};

template <class T>
struct SortWrite {
  const T* keys;
  const std::int64_t* idx;
  std::int64_t cols, p;
  T* values;
  std::int64_t* indices;
  LIGM_HD void operator()(std::int64_t t) const {
    const std::int64_t row = t / cols, c = t % cols;
    values[t] = keys[row * p + c];
    indices[t] = idx[row * p + c];
  }
};

// The whole sort of a contiguous [rows, cols] buffer: launch(n, body) runs body(i) for every
// i < n (a kernel on the GPU, a loop in the host tests); keys/idx are [rows, P] scratch with
// P = sort_padded_cols(cols).
inline std::int64_t sort_padded_cols(std::int64_t cols) {
  std::int64_t p = 1;
  while (p < cols) p *= 2;
  return p;
}

template <class T, class Launch>
void bitonic_sort_rows(const T* src, std::int64_t rows, std::int64_t cols, bool descending,
                       T* values, std::int64_t* indices, T* keys, std::int64_t* idx,
                       const Launch& launch) {
  const std::int64_t p = sort_padded_cols(cols);
  launch(rows * p, SortInit<T>{src, cols, p, keys, idx});
  for (std::int64_t k = 2; k <= p; k *= 2)
    for (std::int64_t j = k / 2; j > 0; j /= 2)
      launch(rows * p, BitonicStep<T>{keys, idx, cols, p, k, j, descending});
  launch(rows * cols, SortWrite<T>{keys, idx, cols, p, values, indices});
}

}  // namespace ligm::kernels
