// Thread bodies of the indexing kernels. Indices were range-checked by the op on the host.
#pragma once
#include <cstdint>

#include "ligm/backend/backend.hpp"  // Ref
#include "ligm/backend/kernels/atomic.hpp"
#include "ligm/backend/kernels/indexer.hpp"

namespace ligm::kernels {

// dst[o, i, j] = src[o, index[i], j]; one thread per dst element.
template <class T>
struct IndexSelect {
  const T* src;
  std::int64_t src_dim, inner, n_index;
  const std::int64_t* index;
  T* dst;
  LIGM_HD void operator()(std::int64_t i) const {
    const std::int64_t j = i % inner, row = i / inner;
    const std::int64_t o = row / n_index, k = index[row % n_index];
    dst[i] = src[(o * src_dim + k) * inner + j];
  }
};

// dst[o, index[i], j] += src[o, i, j]; one thread per src element.
template <class T>
struct IndexAdd {
  T* dst;
  std::int64_t dst_dim, inner, n_index;
  const std::int64_t* index;
  const T* src;
  LIGM_HD void operator()(std::int64_t i) const {
    const std::int64_t j = i % inner, row = i / inner;
    const std::int64_t o = row / n_index, k = index[row % n_index];
    atomic_add(dst + (o * dst_dim + k) * inner + j, src[i]);
  }
};

// out[..] = src[.., index[..] along dim, ..]; one thread per out element.
template <class T>
struct Gather {
  Indexer<3> ix;  // over out's shape: out, index, src (dim's stride zeroed)
  std::int64_t step;
  const T* src;
  const std::int64_t* index;
  T* out;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[3];
    ix.offsets(i, o);
    out[o[0]] = src[o[2] + index[o[1]] * step];
  }
};

// dst[.., index[..] along dim, ..] += src[..]; one thread per src element.
template <class T>
struct ScatterAdd {
  Indexer<3> ix;  // over src's shape: src, index, dst (dim's stride zeroed)
  std::int64_t step;
  const T* src;
  const std::int64_t* index;
  T* dst;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[3];
    ix.offsets(i, o);
    atomic_add(dst + o[2] + index[o[1]] * step, src[o[0]]);
  }
};

template <class T>
Gather<T> make_gather(const Ref<const T>& src, std::int64_t dim, const Ref<const std::int64_t>& index,
                      const Ref<T>& out) {
  Shape src_strides = src.strides;
  const std::int64_t step = src_strides[dim];
  src_strides[dim] = 0;
  return {make_indexer<3>(out.shape, {&out.strides, &index.strides, &src_strides}, "gather"), step,
          src.data, index.data, out.data};
}

template <class T>
ScatterAdd<T> make_scatter_add(const Ref<T>& dst, std::int64_t dim,
                               const Ref<const std::int64_t>& index, const Ref<const T>& src) {
  Shape dst_strides = dst.strides;
  const std::int64_t step = dst_strides[dim];
  dst_strides[dim] = 0;
  return {make_indexer<3>(src.shape, {&src.strides, &index.strides, &dst_strides}, "scatter_add"),
          step, src.data, index.data, dst.data};
}

}  // namespace ligm::kernels
