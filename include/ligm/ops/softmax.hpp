// softmax and log_softmax over any dim (a fused, max-shifted row kernel on the last dim).
#pragma once
#include <vector>

#include "ligm/ops/reduce.hpp"

namespace ligm {
namespace ops_detail {
template <class T>
Tensor<T> softmax_forward(const Tensor<T>& x, std::int64_t dim, bool log) {
  floating_only<T>(log ? "log_softmax" : "softmax");
  defined_or_fail(x, log ? "log_softmax" : "softmax", "the input");
  if (x.dim() == 0) return softmax_forward(x.reshape({1}), 0, log).reshape({});
  dim = wrap_dim(dim, x.dim(), log ? "log_softmax" : "softmax");
  NoGradGuard g;
  auto moved = x.transpose(dim, -1).contiguous();
  auto out = Tensor<T>::empty(moved.shape(), x.device());
  const auto cols = moved.shape().back();
  be(x).softmax_rows(moved.data_ptr(), cols ? moved.numel() / cols : 0, cols, log, out.data_ptr());
  return out.transpose(dim, -1).detach();
}
}  // namespace ops_detail

template <class T>
Tensor<T> softmax(const Tensor<T>& x, std::int64_t dim) {
  auto y = ops_detail::softmax_forward(x, dim, false);
  return autograd::record("SoftmaxBackward", y, {x},
                          [y = autograd::save(y), dim](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            // dx = y * (g - sum(g * y))
                            const Dims d = y.dim() ? Dims{dim} : Dims{};
                            return {mul(y, sub(g, sum(mul(g, y), d, true)))};
                          });
}

template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, std::int64_t dim) {
  auto y = ops_detail::softmax_forward(x, dim, true);
  return autograd::record("LogSoftmaxBackward", y, {x},
                          [y = autograd::save(y), dim](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            // dx = g - exp(y) * sum(g)
                            const Dims d = y.dim() ? Dims{dim} : Dims{};
                            return {sub(g, mul(exp(y), sum(g, d, true)))};
                          });
}

}  // namespace ligm
