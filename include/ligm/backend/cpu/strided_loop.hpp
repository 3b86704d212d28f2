// Row-major iteration over an n-d index space with K strided operands.
//
// strided_for(shape, {&strides0, &strides1}, fn) calls fn(i, {off0, off1}) for every linear
// index i in [0, numel), where off_k is the element offset of index i in operand k. The
// range is split across threads; the innermost dim runs as a plain loop.
#pragma once
#include <array>
#include <cstdint>

#include "ligm/backend/cpu/parallel.hpp"
#include "ligm/core/shape.hpp"

namespace ligm::cpu {

template <std::size_t K, class F>
void strided_range(const Shape& shape, const std::array<const Shape*, K>& strides,
                   std::int64_t begin, std::int64_t end, const F& fn) {
  const std::size_t nd = shape.size();
  if (nd == 0) {
    if (begin < end) fn(std::int64_t(0), std::array<std::int64_t, K>{});
    return;
  }
  // Unravel `begin` into a multi-index and starting offsets.
  Shape idx(nd);
  std::int64_t rem = begin;
  for (std::size_t d = nd; d-- > 0;) {
    idx[d] = shape[d] ? rem % shape[d] : 0;
    rem = shape[d] ? rem / shape[d] : 0;
  }
  std::array<std::int64_t, K> off{};
  auto recompute = [&] {
    for (std::size_t k = 0; k < K; ++k) {
      std::int64_t o = 0;
      for (std::size_t d = 0; d < nd; ++d) o += idx[d] * (*strides[k])[d];
      off[k] = o;
    }
  };
  recompute();
  const std::int64_t last = shape[nd - 1];
  std::array<std::int64_t, K> inner_stride;
  for (std::size_t k = 0; k < K; ++k) inner_stride[k] = (*strides[k])[nd - 1];
  std::int64_t i = begin;
  while (i < end) {
    const std::int64_t run = std::min(last - idx[nd - 1], end - i);
    std::array<std::int64_t, K> o = off;
    for (std::int64_t j = 0; j < run; ++j) {
      fn(i + j, o);
      for (std::size_t k = 0; k < K; ++k) o[k] += inner_stride[k];
    }
    i += run;
    idx[nd - 1] += run;
    for (std::size_t d = nd - 1; d > 0 && idx[d] == shape[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
    }
    recompute();
  }
}

template <std::size_t K, class F>
void strided_for(const Shape& shape, const std::array<const Shape*, K>& strides, const F& fn,
                 std::int64_t grain = 32768) {
  parallel_for(0, numel_of(shape), grain, [&](std::int64_t lo, std::int64_t hi) {
    strided_range<K>(shape, strides, lo, hi, fn);
  });
}

}  // namespace ligm::cpu
