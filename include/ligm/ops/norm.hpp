// Functional normalizations: batch_norm (training and eval, running statistics), layer_norm,
// group_norm, rms_norm. Each reshapes its input so that every normalised group is a row and
// calls one fused op (normalize_rows: forward and backward kernels of kernels/norm.hpp); the
// affine weight and bias are ordinary broadcasting ops.
#pragma once
#include <limits>
#include <optional>
#include <vector>

#include "ligm/ops/reduce.hpp"

namespace ligm {
namespace ops_detail {
// Shape [1, C, 1, ...] that broadcasts a per-channel vector over x.
inline Shape channel_shape(const Shape& x, std::int64_t c) {
  Shape s(x.size(), 1);
  s[1] = c;
  return s;
}

// xhat = (x - mean) * rstd over each row of a 2-d x (no centring for RMS), differentiable in x;
// mean and rstd come back detached, for running statistics.
template <class T>
struct Normalized {
  Tensor<T> xhat, mean, rstd;
};

template <class T>
Normalized<T> normalize_rows(const Tensor<T>& x2d, bool center, double eps) {
  const std::int64_t rows = x2d.shape()[0], cols = x2d.shape()[1];
  Normalized<T> r;
  Tensor<T> x;
  {
    NoGradGuard no_grad;
    x = x2d.contiguous().detach();
    r.xhat = Tensor<T>::empty(x.shape(), x.device());
    r.mean = Tensor<T>::empty({rows}, x.device());
    r.rstd = Tensor<T>::empty({rows}, x.device());
  }
  be(x).normalize_rows(x.data_ptr(), rows, cols, center, eps, r.xhat.data_ptr(), r.mean.data_ptr(),
                       r.rstd.data_ptr());
  r.xhat = autograd::record(
      "NormalizeBackward", r.xhat, {x2d},
      [xhat = autograd::save(r.xhat), rstd = r.rstd, center](const Tensor<T>& g, const NeedsGrad&)
          -> std::vector<Tensor<T>> {
        auto gc = g.contiguous();
        auto dx = Tensor<T>::empty(xhat.shape(), xhat.device());
        be(xhat).normalize_rows_backward(xhat.data_ptr(), rstd.data_ptr(), gc.data_ptr(),
                                         xhat.shape()[0], xhat.shape()[1], center, dx.data_ptr());
        return {dx};
      });
  return r;
}
}  // namespace ops_detail

// x [N, C, ...]. In training, normalises with the batch statistics and updates running_mean
// and running_var in place (unbiased variance, as in PyTorch); in eval, uses them.
template <class T>
Tensor<T> batch_norm(const Tensor<T>& x, Tensor<T> running_mean, Tensor<T> running_var,
                     const Tensor<T>& weight = {}, const Tensor<T>& bias = {}, bool training = false,
                     double momentum = 0.1, double eps = 1e-5) {
  const char* op = "batch_norm";
  ops_detail::floating_only<T>(op);
  check(x.dim() >= 2, op, "expects an input with at least 2 dims [N, C, ...], got ", x.describe());
  const std::int64_t C = x.shape()[1];
  for (const Tensor<T>* t : std::initializer_list<const Tensor<T>*>{&running_mean, &running_var, &weight, &bias})
    if (t->defined())
      check(t->shape() == Shape{C}, op, "expected per-channel tensors of shape [", C, "], got ",
            t->shape(), " for input ", x.shape());
  const Shape cs = ops_detail::channel_shape(x.shape(), C);
  Tensor<T> y;
  if (training) {
    const std::int64_t n = x.numel() / std::max<std::int64_t>(C, 1);
    check(n > 1, op, "expected more than 1 value per channel when training, got input ", x.shape());
    // Channels as rows: [N, C, ...] -> [C, N * ...].
    const Shape moved_shape = x.transpose(0, 1).shape();
    auto r = ops_detail::normalize_rows(x.transpose(0, 1).reshape({C, n}), true, eps);
    y = r.xhat.reshape(moved_shape).transpose(0, 1);
    if (running_mean.defined() || running_var.defined()) {
      NoGradGuard g;
      const T m = T(momentum);
      if (running_mean.defined()) {
        running_mean.mul_(T(1) - m);
        running_mean.add_(r.mean, m);
      }
      if (running_var.defined()) {  // the unbiased batch variance, from rstd = 1/sqrt(var + eps)
        auto var_b = sub(reciprocal(square(r.rstd)), T(eps));
        running_var.mul_(T(1) - m);
        running_var.add_(var_b, m * T(n) / T(n - 1));
      }
    }
  } else {
    check(running_mean.defined() && running_var.defined(), op,
          "running_mean and running_var are needed in eval mode");
    y = mul(sub(x, running_mean.reshape(cs)), rsqrt(add(running_var.reshape(cs), T(eps))));
  }
  if (weight.defined()) y = mul(y, weight.reshape(cs));
  if (bias.defined()) y = add(y, bias.reshape(cs));
  return y;
}

// Normalises over the trailing dims given by normalized_shape.
template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Shape& normalized_shape, const Tensor<T>& weight = {},
                     const Tensor<T>& bias = {}, double eps = 1e-5) {
  const char* op = "layer_norm";
  ops_detail::floating_only<T>(op);
  const auto k = static_cast<std::int64_t>(normalized_shape.size());
  check(k >= 1 && k <= x.dim() && Shape(x.shape().end() - k, x.shape().end()) == normalized_shape,
        op, "normalized_shape ", normalized_shape, " does not match the trailing dims of input ", x.shape());
  for (const Tensor<T>* t : std::initializer_list<const Tensor<T>*>{&weight, &bias})
    if (t->defined())
      check(t->shape() == normalized_shape, op, "weight/bias of shape ", t->shape(),
            " must equal normalized_shape ", normalized_shape);
  const std::int64_t cols = numel_of(normalized_shape);
  auto y = ops_detail::normalize_rows(x.reshape({x.numel() / std::max<std::int64_t>(cols, 1), cols}), true, eps)
               .xhat.reshape(x.shape());
  if (weight.defined()) y = mul(y, weight);
  if (bias.defined()) y = add(y, bias);
  return y;
}

// x [N, C, ...] split into num_groups groups of channels, each normalised.
template <class T>
Tensor<T> group_norm(const Tensor<T>& x, std::int64_t num_groups, const Tensor<T>& weight = {},
                     const Tensor<T>& bias = {}, double eps = 1e-5) {
  const char* op = "group_norm";
  ops_detail::floating_only<T>(op);
  check(x.dim() >= 2, op, "expects an input with at least 2 dims [N, C, ...], got ", x.describe());
  const std::int64_t N = x.shape()[0], C = x.shape()[1];
  check(num_groups > 0 && C % num_groups == 0, op, "channels ", C,
        " are not divisible by num_groups ", num_groups);
  auto y = ops_detail::normalize_rows(x.reshape({N * num_groups, -1}), true, eps).xhat.reshape(x.shape());
  const Shape cs = ops_detail::channel_shape(x.shape(), C);
  if (weight.defined()) y = mul(y, weight.reshape(cs));
  if (bias.defined()) y = add(y, bias.reshape(cs));
  return y;
}

// x * rsqrt(mean(x^2) + eps) * weight over the trailing normalized_shape dims. eps defaults
// to the dtype's machine epsilon, as in torch.nn.functional.rms_norm.
template <class T>
Tensor<T> rms_norm(const Tensor<T>& x, const Shape& normalized_shape, const Tensor<T>& weight = {},
                   std::optional<double> eps = std::nullopt) {
  const char* op = "rms_norm";
  ops_detail::floating_only<T>(op);
  const auto k = static_cast<std::int64_t>(normalized_shape.size());
  check(k >= 1 && k <= x.dim() && Shape(x.shape().end() - k, x.shape().end()) == normalized_shape,
        op, "normalized_shape ", normalized_shape, " does not match the trailing dims of input ", x.shape());
  const double e = eps.value_or(std::numeric_limits<T>::epsilon());
  const std::int64_t cols = numel_of(normalized_shape);
  auto y = ops_detail::normalize_rows(x.reshape({x.numel() / std::max<std::int64_t>(cols, 1), cols}), false, e)
               .xhat.reshape(x.shape());
  if (weight.defined()) y = mul(y, weight);
  return y;
}

}  // namespace ligm
