// Functional normalizations: batch_norm (training and eval, running statistics), layer_norm,
// group_norm, rms_norm. Each is one fused op over rows (normalize_rows: the forward and backward
// kernels of kernels/norm.hpp): batch_norm's rows are the channels, normalised in place in the
// NCHW layout together with their weight and bias; the others' rows are groups of trailing
// elements. layer_norm's and rms_norm's affine weight and bias (per column of those rows) go
// into the same passes where the backend takes them (Backend::normalizes_columns: the CPU's),
// and are ordinary broadcasting ops elsewhere, as group_norm's always are.
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

// y = (x - mean) * rstd over each row of `layout` (kernels/norm.hpp; no centring for RMS), times
// the per-row weight plus the per-row bias when given, plus `residual` (x's shape) when given,
// then the ReLU with `relu`; differentiable in x, weight, bias and residual.
// x must hold the layout densely (a contiguous tensor); mean and rstd come back detached, for
// running statistics.
template <class T>
struct Normalized {
  Tensor<T> y, mean, rstd;
};

// col_weight and col_bias: the per-column affine (rows of one run; see kernels::NormalizeRows),
// only where be(x).normalizes_columns().
template <class T>
Normalized<T> normalize_rows(const Tensor<T>& x_in, std::int64_t rows, kernels::RowLayout layout, bool center,
                             double eps, const Tensor<T>& weight = {}, const Tensor<T>& bias = {},
                             bool relu = false, const Tensor<T>& residual = {}, const Tensor<T>& col_weight = {},
                             const Tensor<T>& col_bias = {}) {
  auto ptr = [](const Tensor<T>& t) -> T* { return t.defined() ? t.data_ptr() : nullptr; };
  auto words = [](const Tensor<T>& t) { return t.defined() ? reinterpret_cast<std::uint16_t*>(t.data_ptr()) : nullptr; };
  Normalized<T> r;
  Tensor<T> x, w, b, res, bits, cw, cb;
  {
    NoGradGuard no_grad;
    x = x_in.contiguous().detach();
    if (weight.defined()) w = weight.contiguous().detach();
    if (bias.defined()) b = bias.contiguous().detach();
    if (col_weight.defined()) cw = col_weight.contiguous().detach();
    if (col_bias.defined()) cb = col_bias.contiguous().detach();
    if (residual.defined()) res = residual.contiguous().detach();
    r.y = Tensor<T>::empty(x.shape(), x.device());
    r.mean = Tensor<T>::empty({rows}, x.device());
    r.rstd = Tensor<T>::empty({rows}, x.device());
    // On the CPU the fused ReLU's mask goes to the backward as bits (kernels::ReluBits), held in
    // a tensor of T for the caching allocator.
    if (relu && x.device().is_cpu()) {
      const std::int64_t words = kernels::ReluBits::words(layout, rows);
      bits = Tensor<T>::empty({(words * std::int64_t(sizeof(std::uint16_t)) + std::int64_t(sizeof(T)) - 1) /
                               std::int64_t(sizeof(T))}, x.device());
    }
  }
  be(x).normalize_rows(rows, {x.data_ptr(), layout, center, eps, ptr(w), ptr(b), r.y.data_ptr(), r.mean.data_ptr(),
                              r.rstd.data_ptr(), relu, ptr(res), words(bits), ptr(cw), ptr(cb)});
  // With the fused ReLU the backward masks g by the output (a detached alias: the output's own
  // node must not hold the output), or on the CPU by the bits.
  Tensor<T> out = relu && !bits.defined() ? r.y.detach() : Tensor<T>();
  r.y = autograd::record(
      relu ? "NormalizeReluBackward" : "NormalizeBackward", r.y, {x_in, weight, bias, residual, col_weight, col_bias},
      [x = autograd::save(x), w = w.defined() ? autograd::save(w) : w, cw = cw.defined() ? autograd::save(cw) : cw,
       col_shape = col_weight.defined() ? col_weight.shape() : col_bias.defined() ? col_bias.shape() : Shape{},
       mean = r.mean, rstd = r.rstd, rows, layout, center, ptr, words, out,
       bits](const Tensor<T>& g, const NeedsGrad& need) -> std::vector<Tensor<T>> {
        auto gc = g.contiguous();
        Tensor<T> dx, dw, db, dres, dcw, dcb;
        if (need[0]) dx = Tensor<T>::empty(x.shape(), x.device());
        if (need[1]) dw = Tensor<T>::empty({rows}, x.device());
        if (need[2]) db = Tensor<T>::empty({rows}, x.device());
        if (need[3]) dres = Tensor<T>::empty(x.shape(), x.device());
        if (need[4]) dcw = Tensor<T>::empty(col_shape, x.device());
        if (need[5]) dcb = Tensor<T>::empty(col_shape, x.device());
        be(x).normalize_rows_backward(
            rows, {x.data_ptr(), mean.data_ptr(), rstd.data_ptr(), ptr(w), gc.data_ptr(), layout, center, ptr(dx),
                   ptr(dw), ptr(db), ptr(out), ptr(dres), words(bits), ptr(cw), ptr(dcw), ptr(dcb)});
        return {dx, dw, db, dres, dcw, dcb};
      });
  return r;
}

// The rows of a [rows, cols] view of x, with the per-column affine if given (where the backend
// normalizes_columns()).
template <class T>
Normalized<T> normalize_matrix_rows(const Tensor<T>& x, std::int64_t cols, bool center, double eps,
                                    const Tensor<T>& col_weight = {}, const Tensor<T>& col_bias = {}) {
  const std::int64_t rows = x.numel() / std::max<std::int64_t>(cols, 1);
  return normalize_rows(x, rows, kernels::RowLayout::matrix(cols), center, eps, {}, {}, false, {}, col_weight, col_bias);
}
}  // namespace ops_detail

namespace ops_detail {
// batch_norm, with `relu` batch_norm_relu, with a residual too batch_norm_add_relu. In training
// each channel is a row, normalised where it lies in [N, C, HW] with its weight and bias (and
// the residual and the ReLU), the running statistics updated in place; in eval the running
// statistics, as broadcasting ops.
template <class T>
Tensor<T> batch_norm_impl(const char* op, const Tensor<T>& x, Tensor<T>& running_mean, Tensor<T>& running_var,
                          const Tensor<T>& weight, const Tensor<T>& bias, bool training, double momentum, double eps,
                          bool relu, const Tensor<T>& residual = {}) {
  floating_only<T>(op);
  check(x.dim() >= 2, op, "expects an input with at least 2 dims [N, C, ...], got ", x.describe());
  if (residual.defined())
    check(residual.shape() == x.shape() && residual.device() == x.device(), op, "expects a residual like the input ",
          x.describe(), ", got ", residual.describe());
  const std::int64_t C = x.shape()[1];
  for (const Tensor<T>* t : std::initializer_list<const Tensor<T>*>{&running_mean, &running_var, &weight, &bias})
    if (t->defined())
      check(t->shape() == Shape{C}, op, "expected per-channel tensors of shape [", C, "], got ",
            t->shape(), " for input ", x.shape());
  if (!training) {
    check(running_mean.defined() && running_var.defined(), op,
          "running_mean and running_var are needed in eval mode");
    const Shape cs = channel_shape(x.shape(), C);
    auto y = mul(sub(x, running_mean.reshape(cs)), rsqrt(add(running_var.reshape(cs), T(eps))));
    if (weight.defined()) y = mul(y, weight.reshape(cs));
    if (bias.defined()) y = add(y, bias.reshape(cs));
    if (residual.defined()) y = add(y, residual);
    return relu ? ligm::relu(y) : y;
  }
  const std::int64_t N = x.shape()[0], n = x.numel() / std::max<std::int64_t>(C, 1);
  check(n > 1, op, "expected more than 1 value per channel when training, got input ", x.shape());
  auto r = normalize_rows(x, C, kernels::RowLayout::channels(N, C, n / std::max<std::int64_t>(N, 1)), true, eps, weight,
                          bias, relu, residual);
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
  return r.y;
}
}  // namespace ops_detail

// x [N, C, ...]. In training, normalises with the batch statistics and updates running_mean
// and running_var in place (unbiased variance, as in PyTorch); in eval, uses them.
template <class T>
Tensor<T> batch_norm(const Tensor<T>& x, Tensor<T> running_mean, Tensor<T> running_var,
                     const Tensor<T>& weight = {}, const Tensor<T>& bias = {}, bool training = false,
                     double momentum = 0.1, double eps = 1e-5) {
  return ops_detail::batch_norm_impl("batch_norm", x, running_mean, running_var, weight, bias, training, momentum, eps,
                                     false);
}

// relu(batch_norm(...)) as one op (ligm's own): in training the ReLU is applied as the
// normalised values are stored and its mask folded into batch norm's backward, so neither pass
// of a separate ReLU runs (ResNet's conv-BN-ReLU); in eval the two ops one after the other.
template <class T>
Tensor<T> batch_norm_relu(const Tensor<T>& x, Tensor<T> running_mean, Tensor<T> running_var,
                          const Tensor<T>& weight = {}, const Tensor<T>& bias = {}, bool training = false,
                          double momentum = 0.1, double eps = 1e-5) {
  return ops_detail::batch_norm_impl("batch_norm_relu", x, running_mean, running_var, weight, bias, training, momentum,
                                     eps, true);
}

// relu(batch_norm(x, ...) + residual) as one op (ligm's own; cuDNN calls it BN + add +
// activation): the end of a residual block, its shortcut added and the ReLU applied as the
// normalised values are stored; in the backward pass the ReLU's mask is folded in and the
// residual's gradient written by the same pass. residual has x's shape. In eval, the ops one
// after the other.
template <class T>
Tensor<T> batch_norm_add_relu(const Tensor<T>& x, const Tensor<T>& residual, Tensor<T> running_mean,
                              Tensor<T> running_var, const Tensor<T>& weight = {}, const Tensor<T>& bias = {},
                              bool training = false, double momentum = 0.1, double eps = 1e-5) {
  check(residual.defined(), "batch_norm_add_relu", "expects a residual, got an undefined tensor");
  return ops_detail::batch_norm_impl("batch_norm_add_relu", x, running_mean, running_var, weight, bias, training,
                                     momentum, eps, true, residual);
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
    if (t->defined()) {
      check(t->shape() == normalized_shape, op, "weight/bias of shape ", t->shape(),
            " must equal normalized_shape ", normalized_shape);
      ops_detail::same_device(x, *t, op);
    }
  const std::int64_t cols = numel_of(normalized_shape);
  if ((weight.defined() || bias.defined()) && ops_detail::be(x).normalizes_columns())
    return ops_detail::normalize_matrix_rows(x, cols, true, eps, weight, bias).y;
  auto y = ops_detail::normalize_matrix_rows(x, cols, true, eps).y.reshape(x.shape());
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
  const std::int64_t rows = C == 0 ? 0 : N * num_groups;  // (num_groups <= C when C > 0: no overflow)
  auto y = ops_detail::normalize_matrix_rows(x, x.numel() / std::max<std::int64_t>(rows, 1), true, eps)
               .y.reshape(x.shape());
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
  if (weight.defined()) ops_detail::same_device(x, weight, op);
  if (weight.defined() && weight.shape() == normalized_shape && ops_detail::be(x).normalizes_columns())
    return ops_detail::normalize_matrix_rows(x, cols, false, e, weight).y;
  auto y = ops_detail::normalize_matrix_rows(x, cols, false, e).y.reshape(x.shape());
  if (weight.defined()) y = mul(y, weight);
  return y;
}

}  // namespace ligm
