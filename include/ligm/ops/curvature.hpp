// ctu: the Curvature Tuning unit (Hu, Gamba & Balestriero, arXiv 2502.07783), a smooth
// replacement for ReLU with a curvature knob beta in [0, 1] and a mixing coefficient c in [0, 1]:
//
//   CTU(x) = c x sigmoid(beta x / s) + (1 - c) s softplus(x / s),   s = 1 - beta + 1e-6
//
// beta = 1 is ReLU bit for bit (a fast path); lowering beta smooths the unit, and with it the
// network's decision boundary. Forward and backward (x, beta, c) in one kernel each, in the
// numerically stable form (backend/kernels/curvature.hpp), on the CPU and CUDA.
#pragma once

#include "ligm/ops/reduce.hpp"

namespace ligm {

// x of any shape; beta and c each hold one value (shared by all elements) or one per channel
// along `dim` of x (x.shape()[dim] values; dim 1 for NCHW, -1 for [B, D] or [B, L, D]).
// Gradients flow to x, beta and c (beta's and c's summed over the elements that share them).
template <class T>
Tensor<T> ctu(const Tensor<T>& x, const Tensor<T>& beta, const Tensor<T>& c, std::int64_t dim = 1) {
  const char* op = "ctu";
  ops_detail::floating_only<T>(op);
  ops_detail::same_device(x, beta, op);
  ops_detail::same_device(x, c, op);
  check(beta.numel() == c.numel(), op, "beta and c must have the same number of values, got shapes ",
        beta.shape(), " and ", c.shape(), " (", dtype_name<T>(), ", ", x.device().str(), ")");
  std::int64_t channels = beta.numel(), inner = 1;
  if (channels != 1) {
    check(x.dim() > 0, op, "per-channel beta and c need an input with a channel dim, got ", x.describe());
    dim = wrap_dim(dim, x.dim(), op);
    check(x.shape()[dim] == channels, op, "beta and c have ", channels, " values, but dim ", dim, " of x ",
          x.shape(), " has ", x.shape()[dim], " (", dtype_name<T>(), ", ", x.device().str(), ")");
    for (std::int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.shape()[d];
  }
  inner = std::max<std::int64_t>(inner, 1);  // (an empty trailing dim: no element anyway)
  Tensor<T> xc, bc, cc, y;
  {
    NoGradGuard no_grad;
    xc = x.contiguous().detach();
    bc = beta.contiguous().detach();
    cc = c.contiguous().detach();
    y = Tensor<T>::empty(x.shape(), x.device());
  }
  const std::int64_t n = xc.numel();
  if (n > 0)
    ops_detail::be(xc).ctu_forward(n, {xc.data_ptr(), bc.data_ptr(), cc.data_ptr(), inner, channels, y.data_ptr()});
  return autograd::record(
      "CtuBackward", y, {x, beta, c},
      [xc = autograd::save(xc), bc = autograd::save(bc), cc = autograd::save(cc), inner, channels,
       bshape = beta.shape(), cshape = c.shape()](
          const Tensor<T>& g, const NeedsGrad& need) -> std::vector<Tensor<T>> {
        const std::int64_t n = xc.numel();
        auto gc = g.contiguous();
        auto dx = Tensor<T>::empty(xc.shape(), xc.device());
        Tensor<T> db, dc;
        if (need[1]) db = Tensor<T>::empty(xc.shape(), xc.device());
        if (need[2]) dc = Tensor<T>::empty(xc.shape(), xc.device());
        if (n > 0)
          ops_detail::be(xc).ctu_backward(n, {xc.data_ptr(), bc.data_ptr(), cc.data_ptr(), inner, channels, gc.data_ptr(),
                                              dx.data_ptr(), db.defined() ? db.data_ptr() : nullptr,
                                              dc.defined() ? dc.data_ptr() : nullptr});
        // Per element -> per channel: view as [outer, channels, inner] and sum the outer dims.
        auto per_channel = [&](const Tensor<T>& d, const Shape& shape) {
          if (!d.defined()) return Tensor<T>();
          if (n == 0) return zeros<T>(shape, d.device());
          return sum(d.reshape({-1, channels, inner}), {0, 2}).reshape(shape);
        };
        return {dx, per_channel(db, bshape), per_channel(dc, cshape)};
      });
}

}  // namespace ligm
