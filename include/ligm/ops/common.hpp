// Helpers shared by the ops: backend lookup, argument checks, broadcasting reduction.
#pragma once
#include <string_view>
#include <vector>

#include "ligm/autograd/engine.hpp"
#include "ligm/autograd/node.hpp"
#include "ligm/backend/registry.hpp"
#include "ligm/core/tensor.hpp"

namespace ligm {
namespace ops_detail {

template <class T>
Backend<T>& be(const Tensor<T>& t) {
  return backend_for<T>(t.device());
}

template <class T>
const Tensor<T>& defined_or_fail(const Tensor<T>& t, std::string_view op, const char* what) {
  if (!t.defined()) fail(op, what, " is an undefined tensor");
  return t;
}

template <class T, class U>
void same_device(const Tensor<T>& a, const Tensor<U>& b, std::string_view op) {
  defined_or_fail(a, op, "an argument");
  defined_or_fail(b, op, "an argument");
  check(a.device() == b.device(), op, "expected tensors on the same device, got ",
        a.describe(), " and ", b.describe());
}

template <class T>
void floating_only(std::string_view op) {
  if constexpr (!is_floating_v<T>) fail(op, "needs a floating-point tensor, got ", dtype_name<T>());
}

// In-place writes are not recorded: refuse them on tensors that take part in autograd.
template <class T>
void check_inplace(const Tensor<T>& t, std::string_view op) {
  defined_or_fail(t, op, "the destination");
  check(!(is_grad_enabled() && t.requires_grad()), op,
        "in-place operation on a tensor that requires grad (", t.describe(),
        "); use the out-of-place op or wrap the update in a NoGradGuard");
  t.storage()->bump_version();
}

// Broadcast shape of two operands; the error names their dtype and device too (the message
// is only built when it is needed: this runs on every binary op).
template <class A, class B>
Shape broadcast_operands(const Tensor<A>& a, const Tensor<B>& b, std::string_view op) {
  Shape out;
  if (try_broadcast(a.shape(), b.shape(), out)) return out;
  return broadcast_shapes(a.shape(), b.shape(), op,
                          std::string("; ") + dtype_name<A>() + ", " + a.device().str());
}

// A view of t broadcast to `shape` (stride 0 along expanded dims); no copy.
template <class T>
Ref<const T> broadcast_ref(const Tensor<T>& t, const Shape& shape) {
  const std::size_t n = shape.size(), k = t.shape().size();
  Ref<const T> r{t.data_ptr(), shape, Shape(n, 0)};
  for (std::size_t i = 0; i < k; ++i) {
    const std::size_t d = n - k + i;
    r.strides[d] = t.shape()[i] == 1 && shape[d] != 1 ? 0 : t.strides()[i];
  }
  return r;
}

// What the matmuls and convolutions tell profiler::count_flops (the profiler's GFLOP/s column,
// profiler::FlopCounter): 2 m n k for `batch` products of [m, k] by [k, n]; a convolution
// pass, 2 N C_out H_out W_out (C_in / groups) kh kw.
inline void count_gemm_flops(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t batch = 1) {
  profiler::count_flops(2.0 * double(m) * double(n) * double(k) * double(batch));
}
inline void count_conv_flops(const Conv2dGeometry& g, int passes = 1) {
  profiler::count_flops(2.0 * double(g.n) * double(g.c_out) * double(g.h_out) * double(g.w_out) *
                        double(g.c_in / g.groups) * double(g.kh) * double(g.kw) * passes);
}

}  // namespace ops_detail

// Sums `grad` down to `shape` (the adjoint of broadcasting `shape` to grad's shape).
template <class T>
Tensor<T> sum_to(const Tensor<T>& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const std::size_t n = grad.shape().size(), k = shape.size();
  Shape keep(n, 1);
  for (std::size_t i = 0; i < k; ++i) keep[n - k + i] = shape[i];
  auto out = Tensor<T>::empty(keep, grad.device());
  ops_detail::be(grad).reduce(ReduceOp::Sum, grad.cref(), out.ref());
  return make_view(out, shape, contiguous_strides(shape), 0);
}

}  // namespace ligm
