// Reductions: the accumulator type, the combine rule (NaN propagates through max and min, as
// in PyTorch), and the thread bodies of a reduction with one thread per output (used when
// each output folds few elements; the CUDA unit has a block-per-output kernel for long ones)
// and of max/argmax along one dim.
#pragma once
#include <cstdint>
#include <type_traits>

#include "ligm/backend/backend.hpp"  // Ref
#include "ligm/backend/kernels/elementwise_math.hpp"
#include "ligm/backend/kernels/indexer.hpp"

namespace ligm::kernels {

template <class Acc>
LIGM_HD Acc reduce_combine(ReduceOp op, Acc acc, Acc v) {
  if (op == ReduceOp::Sum) return Acc(acc + v);
  if (op == ReduceOp::Max) return (v > acc || math::is_nan(v)) ? v : acc;
  return (v < acc || math::is_nan(v)) ? v : acc;
}

// out[keep(i)] = fold of src[base(i) + red(r)] over r < n_red.
template <class T>
struct ReducePerThread {
  Indexer<2> keep;  // over out's shape: out offset, src base offset
  Indexer<1> red;   // over the reduced dims of src
  std::int64_t n_red;
  const T* src;
  T* out;
  ReduceOp op;
  LIGM_HD void operator()(std::int64_t i) const {
    using Acc = ReduceAcc<T>;
    std::int64_t o[2], r[1];
    keep.offsets(i, o);
    red.offsets(0, r);
    Acc acc = op == ReduceOp::Sum ? Acc(0) : Acc(src[o[1] + r[0]]);
    for (std::int64_t j = 0; j < n_red; ++j) {
      red.offsets(j, r);
      acc = reduce_combine(op, acc, Acc(src[o[1] + r[0]]));
    }
    out[o[0]] = T(acc);
  }
};

// Max or min along one dim; the first index wins ties, the first NaN wins outright.
template <class T>
struct ArgReduce {
  Indexer<3> ix;  // over values' shape: values, indices, src base (dim's stride zeroed)
  std::int64_t len, step;
  const T* src;
  T* values;
  std::int64_t* indices;
  bool is_max;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[3];
    ix.offsets(i, o);
    const T* base = src + o[2];
    T best = base[0];
    std::int64_t best_i = 0;
    for (std::int64_t j = 1; j < len; ++j) {
      const T v = base[j * step];
      if (math::is_nan(best)) break;
      if (math::is_nan(v)) {
        best = v;
        best_i = j;
        break;
      }
      if (is_max ? v > best : v < best) {
        best = v;
        best_i = j;
      }
    }
    values[o[0]] = best;
    indices[o[1]] = best_i;
  }
};

// src's dims split for a reduction into out (same rank, size 1 in the reduced dims): the
// reduced dims' sizes and strides, and src's strides with the reduced ones zeroed (walked by
// output element). Shared by the CPU and CUDA backends.
struct ReductionDims {
  Shape red_shape, red_strides, keep_src_strides;
};
inline ReductionDims split_reduction(const Shape& src_shape, const Shape& src_strides, const Shape& out_shape) {
  ReductionDims r;
  r.keep_src_strides.resize(src_shape.size());
  for (std::size_t d = 0; d < src_shape.size(); ++d) {
    const bool reduced = out_shape[d] == 1 && src_shape[d] != 1;
    r.keep_src_strides[d] = reduced ? 0 : src_strides[d];
    if (reduced) {
      r.red_shape.push_back(src_shape[d]);
      r.red_strides.push_back(src_strides[d]);
    }
  }
  return r;
}

// The reduction of src into out, as a thread body.
template <class T>
ReducePerThread<T> make_reduction(ReduceOp op, const Ref<const T>& src, const Ref<T>& out) {
  const ReductionDims r = split_reduction(src.shape, src.strides, out.shape);
  return {make_indexer<2>(out.shape, {&out.strides, &r.keep_src_strides}, "reduce"),
          make_indexer<1>(r.red_shape, {&r.red_strides}, "reduce"), numel_of(r.red_shape), src.data,
          out.data, op};
}

template <class T>
ArgReduce<T> make_arg_reduction(bool is_max, const Ref<const T>& src, std::int64_t dim,
                                const Ref<T>& values, const Ref<std::int64_t>& indices) {
  Shape keep_strides = src.strides;
  keep_strides[dim] = 0;
  return {make_indexer<3>(values.shape, {&values.strides, &indices.strides, &keep_strides},
                          is_max ? "max" : "min"),
          src.shape[dim], src.strides[dim], src.data, values.data, indices.data, is_max};
}

}  // namespace ligm::kernels
