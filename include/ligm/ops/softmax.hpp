// softmax and log_softmax over any dim (fused, max-shifted row kernels on the last dim, forward
// and backward).
#pragma once
#include <vector>

#include "ligm/ops/reduce.hpp"

namespace ligm {
namespace ops_detail {
// softmax or log_softmax over dim, both directions fused row kernels on the last dim (other
// dims are moved there and back). causal > 0 masks as the backend's softmax_rows says: the
// causal attention of scaled_dot_product_attention, dim -1 only.
template <class T>
Tensor<T> softmax_impl(const Tensor<T>& x, std::int64_t dim, bool log, std::int64_t causal = 0) {
  const char* op = log ? "log_softmax" : "softmax";
  floating_only<T>(op);
  defined_or_fail(x, op, "the input");
  if (x.dim() == 0) return softmax_impl(x.reshape({1}), 0, log).reshape({});
  dim = wrap_dim(dim, x.dim(), op);
  Tensor<T> out;
  {
    NoGradGuard g;
    auto moved = x.transpose(dim, -1).contiguous();
    out = Tensor<T>::empty(moved.shape(), x.device());
    const auto cols = moved.shape().back();
    be(x).softmax_rows(moved.data_ptr(), cols ? moved.numel() / cols : 0, cols, log, causal, out.data_ptr());
  }
  // The output in the moved layout (contiguous rows) is what the backward reads.
  auto y = out.transpose(dim, -1);
  return autograd::record(log ? "LogSoftmaxBackward" : "SoftmaxBackward", y, {x},
                          [out = autograd::save(out), dim, log](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            auto gm = g.transpose(dim, -1).contiguous();
                            auto dx = Tensor<T>::empty(out.shape(), out.device());
                            const auto cols = out.shape().back();
                            be(out).softmax_rows_backward(out.data_ptr(), gm.data_ptr(), cols ? out.numel() / cols : 0,
                                                          cols, log, dx.data_ptr());
                            return {dx.transpose(dim, -1)};
                          });
}
}  // namespace ops_detail

template <class T>
Tensor<T> softmax(const Tensor<T>& x, std::int64_t dim) {
  return ops_detail::softmax_impl(x, dim, false);
}

template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, std::int64_t dim) {
  return ops_detail::softmax_impl(x, dim, true);
}

}  // namespace ligm
