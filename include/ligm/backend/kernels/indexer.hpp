// Indexer<K>: from a row-major linear index to the element offsets of K strided operands.
//
// The GPU kernels run one thread per output element; each thread turns its linear index into
// offsets with an Indexer, a small value type passed to the kernel by value. The host builds
// it with make_indexer, which first merges dims that every operand walks as one (so a
// contiguous tensor becomes 1-d and costs one multiply per operand). Plain C++ plus LIGM_HD:
// the same code runs in the kernels and in the host tests that emulate them.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

#include "ligm/backend/kernels/elementwise_math.hpp"  // LIGM_HD
#include "ligm/core/error.hpp"
#include "ligm/core/shape.hpp"

namespace ligm::kernels {

// Dims left after merging; more is rare (a 10-d tensor whose every dim is a separate run).
inline constexpr int kMaxDims = 10;

template <int K>
struct Indexer {
  int ndim = 0;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[K][kMaxDims] = {};

  LIGM_HD void offsets(std::int64_t i, std::int64_t (&off)[K]) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const std::int64_t size = sizes[d];
      const std::int64_t q = d == 0 ? 0 : i / size;
      const std::int64_t r = i - q * size;
      for (int k = 0; k < K; ++k) off[k] += r * strides[k][d];
      i = q;
    }
  }
};

// Builds the indexer of `shape` walked with each of the K stride vectors.
template <int K>
Indexer<K> make_indexer(const Shape& shape, const std::array<const Shape*, K>& strides,
                        std::string_view op) {
  const Collapsed<K> c = collapse_dims<K>(shape, strides);
  check(c.shape.size() <= static_cast<std::size_t>(kMaxDims), op, "a strided operand of shape ",
        shape, " has ", c.shape.size(), " separate dims on cuda (at most ", kMaxDims,
        "); call .contiguous() first");
  Indexer<K> ix;
  ix.ndim = static_cast<int>(c.shape.size());
  for (int d = 0; d < ix.ndim; ++d) {
    ix.sizes[d] = c.shape[d];
    for (int k = 0; k < K; ++k) ix.strides[k][d] = c.strides[k][d];
  }
  return ix;
}

}  // namespace ligm::kernels
