// Reductions over any set of dims, with keepdim: sum, mean, amax/amin, max/min with indices,
// argmax/argmin, var/std, logsumexp, norm.
#pragma once
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "ligm/ops/movement.hpp"

namespace ligm {
namespace ops_detail {

struct ReducePlan {
  Shape keep;         // input rank, 1 in reduced dims
  Shape out;          // keep, or keep without the reduced dims
  std::int64_t count; // elements folded into each output
};

// dims empty = all dims.
inline ReducePlan plan_reduce(const Shape& in, Dims dims, bool keepdim, const char* op) {
  const auto nd = static_cast<std::int64_t>(in.size());
  std::vector<bool> reduced(in.size(), dims.empty());
  for (auto d : dims) {
    d = wrap_dim(d, nd, op);
    if (nd) {
      check(!reduced[d], op, "dim ", d, " appears twice in the reduction dims");
      reduced[d] = true;
    }
  }
  ReducePlan p{in, {}, 1};
  for (std::size_t d = 0; d < in.size(); ++d) {
    if (!reduced[d]) {
      p.out.push_back(in[d]);
      continue;
    }
    p.count *= in[d];
    p.keep[d] = 1;
    if (keepdim) p.out.push_back(1);
  }
  return p;
}

template <class T>
Tensor<T> reduce_raw(ReduceOp op, const Tensor<T>& x, const ReducePlan& p) {
  auto out = Tensor<T>::empty(p.keep, x.device());
  be(x).reduce(op, x.cref(), out.ref());
  return make_view(out, p.out, contiguous_strides(p.out), 0);
}

// Gradient of a reduction broadcast back to the input shape.
template <class T>
Tensor<T> expand_back(const Tensor<T>& g, const ReducePlan& p, const Shape& in) {
  return g.reshape(p.keep).expand(in);
}

}  // namespace ops_detail

template <class T>
Tensor<T> sum(const Tensor<T>& x, const Dims& dims = {}, bool keepdim = false) {
  ops_detail::defined_or_fail(x, "sum", "the input");
  const auto p = ops_detail::plan_reduce(x.shape(), dims, keepdim, "sum");
  auto out = ops_detail::reduce_raw(ReduceOp::Sum, x, p);
  return autograd::record("SumBackward", out, {x},
                          [p, in = x.shape()](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            return {ops_detail::expand_back(g, p, in)};
                          });
}

template <class T>
Tensor<T> mean(const Tensor<T>& x, const Dims& dims = {}, bool keepdim = false) {
  ops_detail::floating_only<T>("mean");
  const auto p = ops_detail::plan_reduce(x.shape(), dims, keepdim, "mean");
  return div(sum(x, dims, keepdim), scalar_tensor<T>(T(p.count), x.device()));
}

namespace ops_detail {
// amax/amin: the gradient is shared evenly among tied extrema, as in PyTorch.
template <class T>
Tensor<T> extremum(bool is_max, const Tensor<T>& x, const Dims& dims, bool keepdim) {
  const char* name = is_max ? "amax" : "amin";
  defined_or_fail(x, name, "the input");
  const auto p = plan_reduce(x.shape(), dims, keepdim, name);
  check(x.numel() > 0 && p.count > 0, name, "cannot reduce an empty tensor of shape ", x.shape());
  auto out = reduce_raw(is_max ? ReduceOp::Max : ReduceOp::Min, x, p);
  return autograd::record(is_max ? "AmaxBackward" : "AminBackward", out, {x},
                          [p, x = autograd::save(x), y = autograd::save(out)](const Tensor<T>& g, const NeedsGrad&)
                              -> std::vector<Tensor<T>> {
                            auto hit = eq(x, y.reshape(p.keep)).template to<T>();
                            auto ties = reduce_raw(ReduceOp::Sum, hit, ReducePlan{p.keep, p.keep, p.count});
                            return {mul(div(hit, ties), g.reshape(p.keep))};
                          });
}
}  // namespace ops_detail

template <class T>
Tensor<T> amax(const Tensor<T>& x, const Dims& dims = {}, bool keepdim = false) {
  return ops_detail::extremum(true, x, dims, keepdim);
}
template <class T>
Tensor<T> amin(const Tensor<T>& x, const Dims& dims = {}, bool keepdim = false) {
  return ops_detail::extremum(false, x, dims, keepdim);
}
// max()/min() of all elements.
template <class T> Tensor<T> max(const Tensor<T>& x) { return amax(x); }
template <class T> Tensor<T> min(const Tensor<T>& x) { return amin(x); }

namespace ops_detail {
template <class T>
std::pair<Tensor<T>, Tensor<std::int64_t>> max_min_dim(bool is_max, const Tensor<T>& x,
                                                       std::int64_t dim, bool keepdim) {
  const char* name = is_max ? "max" : "min";
  defined_or_fail(x, name, "the input");
  dim = wrap_dim(dim, x.dim(), name);
  const auto p = plan_reduce(x.shape(), {dim}, keepdim, name);
  check(p.count > 0, name, "cannot reduce dim ", dim, " of size 0 (shape ", x.shape(), ")");
  Tensor<T> values = Tensor<T>::empty(p.keep, x.device());
  Tensor<std::int64_t> idx = Tensor<std::int64_t>::empty(p.keep, x.device());
  if (x.dim() == 0) {
    values.copy_(x.detach());
    idx.fill_(0);
  } else {
    be(x).arg_reduce(is_max, x.cref(), dim, values.ref(), idx.ref());
  }
  Tensor<T> v = make_view(values, p.out, contiguous_strides(p.out), 0);
  Tensor<std::int64_t> i = make_view(idx, p.out, contiguous_strides(p.out), 0);
  autograd::record(is_max ? "MaxBackward" : "MinBackward", v, {x},
                   [p, dim, idx, in = x.shape()](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                     if (in.empty()) return {g.reshape(in)};
                     return {scatter_add(zeros<T>(in, g.device()), dim, idx, g.reshape(p.keep))};
                   });
  return {v, i};
}

template <class T>
Tensor<std::int64_t> arg_extremum(bool is_max, const Tensor<T>& x, std::optional<std::int64_t> dim,
                                  bool keepdim) {
  NoGradGuard g;
  if (!dim) return max_min_dim(is_max, x.reshape({-1}), 0, false).second;
  return max_min_dim(is_max, x, *dim, keepdim).second;
}
}  // namespace ops_detail

// (values, indices) along one dim; the first index wins ties.
template <class T>
std::pair<Tensor<T>, Tensor<std::int64_t>> max(const Tensor<T>& x, std::int64_t dim, bool keepdim = false) {
  return ops_detail::max_min_dim(true, x, dim, keepdim);
}
template <class T>
std::pair<Tensor<T>, Tensor<std::int64_t>> min(const Tensor<T>& x, std::int64_t dim, bool keepdim = false) {
  return ops_detail::max_min_dim(false, x, dim, keepdim);
}
template <class T>
Tensor<std::int64_t> argmax(const Tensor<T>& x, std::optional<std::int64_t> dim = std::nullopt, bool keepdim = false) {
  return ops_detail::arg_extremum(true, x, dim, keepdim);
}
template <class T>
Tensor<std::int64_t> argmin(const Tensor<T>& x, std::optional<std::int64_t> dim = std::nullopt, bool keepdim = false) {
  return ops_detail::arg_extremum(false, x, dim, keepdim);
}

// any/all over dims (torch.any, torch.all): whether some / every element is true (nonzero
// for numbers). Over no elements any is false and all is true.
namespace ops_detail {
template <class T>
Tensor<bool> any_all(bool is_any, const Tensor<T>& x, const Dims& dims, bool keepdim) {
  const char* name = is_any ? "any" : "all";
  defined_or_fail(x, name, "the input");
  if constexpr (!std::is_same_v<T, bool>) {
    NoGradGuard no_grad;
    return any_all(is_any, ne(x, T(0)), dims, keepdim);
  } else {
    const auto p = plan_reduce(x.shape(), dims, keepdim, name);
    if (p.count == 0 || x.numel() == 0) return full<bool>(p.out, !is_any, x.device());
    return reduce_raw(is_any ? ReduceOp::Max : ReduceOp::Min, x, p);
  }
}
}  // namespace ops_detail

template <class T>
Tensor<bool> any(const Tensor<T>& x, const Dims& dims = {}, bool keepdim = false) {
  return ops_detail::any_all(true, x, dims, keepdim);
}
template <class T>
Tensor<bool> all(const Tensor<T>& x, const Dims& dims = {}, bool keepdim = false) {
  return ops_detail::any_all(false, x, dims, keepdim);
}

// Variance with Bessel's correction when unbiased (correction = 1).
template <class T>
Tensor<T> var(const Tensor<T>& x, const Dims& dims = {}, bool unbiased = true, bool keepdim = false) {
  ops_detail::floating_only<T>("var");
  const auto p = ops_detail::plan_reduce(x.shape(), dims, keepdim, "var");
  auto centered = sub(x, mean(x, dims, true));
  const double denom = std::max<double>(0.0, double(p.count) - (unbiased ? 1.0 : 0.0));
  return div(sum(mul(centered, centered), dims, keepdim), scalar_tensor<T>(T(denom), x.device()));
}

// Standard deviation (torch.std; named stddev so that `using namespace ligm` keeps std:: usable).
// sqrt of var, whose derivative is taken as 0 where the deviation is 0 (PyTorch's; sqrt's
// would be 0 / 0 there).
template <class T>
Tensor<T> stddev(const Tensor<T>& x, const Dims& dims = {}, bool unbiased = true, bool keepdim = false) {
  const Tensor<T> v = var(x, dims, unbiased, keepdim);
  Tensor<T> s;
  {
    NoGradGuard no_grad;
    s = sqrt(v);
  }
  return autograd::record("StdBackward", s, {v},
                          [s = autograd::save(s)](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            return {where(eq(s, T(0)), scalar_tensor<T>(0, g.device()), div(g, mul(s, T(2))))};
                          });
}

template <class T>
Tensor<T> logsumexp(const Tensor<T>& x, const Dims& dims = {}, bool keepdim = false) {
  ops_detail::floating_only<T>("logsumexp");
  Tensor<T> m;
  {
    NoGradGuard g;  // the shift is a constant: it cancels in the value and the gradient
    m = amax(x, dims, true);
    m = where(eq(abs(m), std::numeric_limits<T>::infinity()), zeros_like(m), m);
  }
  auto lse = add(log(sum(exp(sub(x, m)), dims, true)), m);
  const auto p = ops_detail::plan_reduce(x.shape(), dims, keepdim, "logsumexp");
  return lse.reshape(p.out);
}

// p-norm over dims (p = 2 by default; 1, inf and other p > 0 supported). The gradient of the
// 2-norm at 0 is taken as 0, as in PyTorch.
template <class T>
Tensor<T> norm(const Tensor<T>& x, double p = 2, const Dims& dims = {}, bool keepdim = false) {
  ops_detail::floating_only<T>("norm");
  check(p > 0, "norm", "p must be positive, got ", p);
  if (p == 1) return sum(abs(x), dims, keepdim);
  if (std::isinf(p)) return amax(abs(x), dims, keepdim);
  const auto plan = ops_detail::plan_reduce(x.shape(), dims, keepdim, "norm");
  if (p != 2) {  // (sum |x|^p)^(1/p); the gradient sgn(x) |x|^(p-1) (g / y^(p-1)), 0 where y is 0
    Tensor<T> y;
    {
      NoGradGuard g;
      y = pow(sum(pow(abs(x), p), dims, keepdim), 1.0 / p);
    }
    return autograd::record("NormBackward", y, {x},
                            [plan, p, x = autograd::save(x), y = autograd::save(y)](const Tensor<T>& g, const NeedsGrad&)
                                -> std::vector<Tensor<T>> {
                              const auto zero = scalar_tensor<T>(0, g.device());
                              auto yk = y.reshape(plan.keep);
                              auto scale = where(eq(yk, T(0)), zero, div(g.reshape(plan.keep), pow(yk, p - 1)));
                              auto scaled = where(eq(x, T(0)), zero, mul(sign(x), pow(abs(x), p - 1)));
                              return {mul(scaled, scale)};
                            });
  }
  Tensor<T> out;
  {
    NoGradGuard g;
    out = sqrt(sum(mul(x, x), dims, keepdim));
  }
  out = out.detach();
  return autograd::record("NormBackward", out, {x},
                          [plan, x = autograd::save(x), y = autograd::save(out)](const Tensor<T>& g, const NeedsGrad&)
                              -> std::vector<Tensor<T>> {
                            auto yk = y.reshape(plan.keep);
                            auto safe = where(eq(yk, T(0)), ones_like(yk), yk);
                            return {mul(x, div(g.reshape(plan.keep), safe))};
                          });
}

}  // namespace ligm
