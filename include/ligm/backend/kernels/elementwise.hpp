// Thread bodies of the elementwise kernels: fill, copy and cast, unary (and its backward),
// binary, compare and where. Each is a small struct whose operator()(i) handles output element
// i; a CUDA launcher runs it for every i (backend/cuda/launch.hpp), the host tests do the same
// in a loop. The math itself is elementwise_math.hpp, shared with the CPU backend.
#pragma once
#include <cstdint>

#include "ligm/backend/kernels/elementwise_math.hpp"
#include "ligm/backend/kernels/indexer.hpp"

namespace ligm::kernels {

template <class T>
struct Fill {
  Indexer<1> ix;
  T* dst;
  T value;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[1];
    ix.offsets(i, o);
    dst[o[0]] = value;
  }
};

// dst = static_cast<U>(src), both strided: copy when U == T, cast otherwise.
template <class T, class U>
struct Convert {
  Indexer<2> ix;  // operand 0: dst, 1: src
  const T* src;
  U* dst;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[2];
    ix.offsets(i, o);
    dst[o[0]] = static_cast<U>(src[o[1]]);
  }
};

template <class T>
struct Unary {
  Indexer<2> ix;  // y, x
  const T* x;
  T* y;
  UnaryOp op;
  UnaryParams p;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[2];
    ix.offsets(i, o);
    y[o[0]] = math::unary_forward(op, p, x[o[1]]);
  }
};

// dx = op'(x, y) * g, all contiguous.
template <class T>
struct UnaryBackward {
  const T* x;
  const T* y;
  const T* g;
  T* dx;
  UnaryOp op;
  UnaryParams p;
  LIGM_HD void operator()(std::int64_t i) const {
    dx[i] = math::unary_backward(op, p, x[i], y[i], g[i]);
  }
};

template <class T>
struct Binary {
  Indexer<3> ix;  // out, a, b
  const T* a;
  const T* b;
  T* out;
  BinaryOp op;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[3];
    ix.offsets(i, o);
    out[o[0]] = math::binary_forward(op, a[o[1]], b[o[2]]);
  }
};

template <class T>
struct Compare {
  Indexer<3> ix;  // out, a, b
  const T* a;
  const T* b;
  bool* out;
  CompareOp op;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[3];
    ix.offsets(i, o);
    out[o[0]] = math::compare(op, a[o[1]], b[o[2]]);
  }
};

template <class T>
struct Where {
  Indexer<4> ix;  // out, cond, a, b
  const bool* cond;
  const T* a;
  const T* b;
  T* out;
  LIGM_HD void operator()(std::int64_t i) const {
    std::int64_t o[4];
    ix.offsets(i, o);
    out[o[0]] = cond[o[1]] ? a[o[2]] : b[o[3]];
  }
};

}  // namespace ligm::kernels
