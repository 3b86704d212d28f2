// Row-major iteration over an n-d index space with K strided operands.
//
// strided_rows(shape, {&strides0, &strides1}, row) splits [0, numel) across threads and calls
// row(i, {off0, off1}, n, {step0, step1}) for each run of n consecutive elements along the
// innermost dim: element i + j sits at off_k + j * step_k in operand k. Kernels write a
// tight loop over j, with a unit-stride fast path the compiler vectorises.
//
// strided_for(shape, strides, fn) is the per-element form: fn(i, {off0, off1}).
#pragma once
#include <array>
#include <cstdint>

#include "ligm/backend/cpu/parallel.hpp"
#include "ligm/core/shape.hpp"

namespace ligm::cpu {

template <std::size_t K>
using Offsets = std::array<std::int64_t, K>;

template <std::size_t K, class Row>
void strided_rows_range(const Shape& full_shape, const std::array<const Shape*, K>& full_strides,
                        std::int64_t begin, std::int64_t end, const Row& row) {
  const Collapsed<K> c = collapse_dims<K>(full_shape, full_strides);
  const Shape& shape = c.shape;
  std::array<const Shape*, K> strides;
  for (std::size_t k = 0; k < K; ++k) strides[k] = &c.strides[k];
  const std::size_t nd = shape.size();
  if (begin >= end) return;
  if (nd == 0) {
    row(std::int64_t(0), Offsets<K>{}, std::int64_t(1), Offsets<K>{});
    return;
  }
  // Unravel `begin` into a multi-index and starting offsets.
  Shape idx(nd);
  std::int64_t rem = begin;
  for (std::size_t d = nd; d-- > 0;) {
    idx[d] = shape[d] ? rem % shape[d] : 0;
    rem = shape[d] ? rem / shape[d] : 0;
  }
  Offsets<K> off{}, step{};
  for (std::size_t k = 0; k < K; ++k) step[k] = (*strides[k])[nd - 1];
  auto recompute = [&] {
    for (std::size_t k = 0; k < K; ++k) {
      std::int64_t o = 0;
      for (std::size_t d = 0; d < nd; ++d) o += idx[d] * (*strides[k])[d];
      off[k] = o;
    }
  };
  recompute();
  const std::int64_t last = shape[nd - 1];
  for (std::int64_t i = begin; i < end;) {
    const std::int64_t run = std::min(last - idx[nd - 1], end - i);
    row(i, off, run, step);
    i += run;
    idx[nd - 1] += run;
    for (std::size_t d = nd - 1; d > 0 && idx[d] == shape[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
    }
    recompute();
  }
}

template <std::size_t K, class Row>
void strided_rows(const Shape& shape, const std::array<const Shape*, K>& strides, const Row& row,
                  std::int64_t grain = 32768) {
  parallel_for(0, numel_of(shape), grain, [&](std::int64_t lo, std::int64_t hi) {
    strided_rows_range<K>(shape, strides, lo, hi, row);
  });
}

// Per element, serial over [begin, end).
template <std::size_t K, class F>
void strided_range(const Shape& shape, const std::array<const Shape*, K>& strides,
                   std::int64_t begin, std::int64_t end, const F& fn) {
  strided_rows_range<K>(shape, strides, begin, end,
                        [&](std::int64_t i, Offsets<K> o, std::int64_t n, const Offsets<K>& step) {
                          for (std::int64_t j = 0; j < n; ++j) {
                            fn(i + j, o);
                            for (std::size_t k = 0; k < K; ++k) o[k] += step[k];
                          }
                        });
}

// Per element, in parallel.
template <std::size_t K, class F>
void strided_for(const Shape& shape, const std::array<const Shape*, K>& strides, const F& fn,
                 std::int64_t grain = 32768) {
  parallel_for(0, numel_of(shape), grain, [&](std::int64_t lo, std::int64_t hi) {
    strided_range<K>(shape, strides, lo, hi, fn);
  });
}

}  // namespace ligm::cpu
