// Losses: cross_entropy (class indices or probabilities; label smoothing, ignore_index, class
// weights), nll_loss, mse, l1, smooth_l1, huber, binary_cross_entropy (and with logits), kl_div,
// the margin losses (multi_margin, hinge_embedding, margin_ranking, triplet_margin,
// cosine_embedding), cosine_similarity and pairwise_distance. Cross-entropy with class indices is one fused op with its own backward
// (kernels/loss.hpp); the others are composed of differentiable ops, so their backward is
// theirs.
#pragma once
#include <string>
#include <string_view>
#include <utility>

#include "ligm/ops/softmax.hpp"

namespace ligm {
namespace ops_detail {
// Checks class-index targets against [N, C, d1, ...] (or [C]) scores and optional [C] class
// weights, naming the op; returns C.
template <class T>
std::int64_t check_class_targets(const Tensor<T>& scores, const Tensor<std::int64_t>& target,
                                 const Tensor<T>& weight, std::int64_t ignore_index, const char* op) {
  same_device(scores, target, op);
  check(scores.dim() >= 1, op, "input must have at least 1 dim, got ", scores.describe());
  const bool batched = scores.dim() >= 2;
  const std::int64_t C = scores.shape()[batched ? 1 : 0];
  Shape expect_target = scores.shape();
  expect_target.erase(expect_target.begin() + (batched ? 1 : 0));
  check(target.shape() == expect_target, op, "target of shape ", target.shape(),
        " does not match input of shape ", scores.shape(), " (expected ", expect_target, ")");
  for (auto t : target.to_vector())
    check(t == ignore_index || (t >= 0 && t < C), op, "target ", t, " is out of bounds for ", C,
          " classes (input ", scores.shape(), ")");
  if (weight.defined()) {
    same_device(scores, weight, op);
    check(weight.shape() == Shape{C}, op, "weight of shape ", weight.shape(), " does not match ",
          C, " classes");
  }
  return C;
}

// [N, C, d1, ...] -> [rows, C] with the class dim last ([C] -> [1, C]).
template <class T>
Tensor<T> classes_last(const Tensor<T>& scores, std::int64_t rows, std::int64_t C) {
  if (scores.dim() == 2) return scores;  // already [N, C]: no view nodes in the graph
  Tensor<T> lp = scores.unsqueeze(0);
  if (scores.dim() >= 2) {  // [N, C, d1, ...] -> [N, d1, ..., C]
    Dims order{0};
    for (std::int64_t d = 2; d < scores.dim(); ++d) order.push_back(d);
    order.push_back(1);
    lp = scores.permute(order);
  }
  return lp.reshape({rows, C});
}

// Per-row cross-entropy of [rows, C] logits (the fused kernel of kernels/loss.hpp), with its
// backward. Class weights are constants, as in PyTorch.
template <class T>
Tensor<T> cross_entropy_rows(const Tensor<T>& logits, const Tensor<std::int64_t>& target,
                             const Tensor<T>& weight, std::int64_t ignore_index, double smoothing) {
  const std::int64_t rows = logits.shape()[0], C = logits.shape()[1];
  Tensor<T> x, lse, loss;
  {
    NoGradGuard no_grad;
    x = logits.contiguous().detach();
    lse = Tensor<T>::empty({rows}, logits.device());
    loss = Tensor<T>::empty({rows}, logits.device());
  }
  be(x).cross_entropy_forward(x.data_ptr(), rows, C, target.data_ptr(),
                              weight.defined() ? weight.data_ptr() : nullptr, ignore_index,
                              smoothing, loss.data_ptr(), lse.data_ptr());
  return autograd::record(
      "CrossEntropyBackward", loss, {logits},
      [x = autograd::save(x), lse, target, weight, ignore_index, smoothing](
          const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
        const std::int64_t n = x.shape()[0], c = x.shape()[1];
        auto gc = g.contiguous();
        auto grad = Tensor<T>::empty(x.shape(), x.device());
        Tensor<T> total = weight.defined() ? sum(weight) : Tensor<T>();
        be(x).cross_entropy_backward(x.data_ptr(), lse.data_ptr(), n, c, target.data_ptr(),
                                     weight.defined() ? weight.data_ptr() : nullptr,
                                     total.defined() ? total.data_ptr() : nullptr, ignore_index,
                                     smoothing, gc.data_ptr(), grad.data_ptr());
        return {grad};
      });
}
template <class T>
Tensor<T> reduce_loss(const Tensor<T>& loss, std::string_view reduction, const char* op) {
  if (reduction == "mean") return mean(loss);
  if (reduction == "sum") return sum(loss);
  if (reduction == "none") return loss;
  fail(op, "reduction must be \"mean\", \"sum\" or \"none\", got \"", reduction, "\"");
}
}  // namespace ops_detail

template <class T>
struct NllOptions {
  Tensor<T> weight = {};  // [C] class weights, optional
  std::int64_t ignore_index = -100;
  std::string reduction = "mean";
};

// log_probs [N, C] or [N, C, d1, ...]; target [N] or [N, d1, ...] class indices.
template <class T>
Tensor<T> nll_loss(const Tensor<T>& log_probs, const Tensor<std::int64_t>& target,
                   const NllOptions<T>& opt = {}) {
  const char* op = "nll_loss";
  const std::int64_t C = ops_detail::check_class_targets(log_probs, target, opt.weight, opt.ignore_index, op);
  auto lp = ops_detail::classes_last(log_probs, target.numel(), C);
  auto flat_t = target.reshape({-1});
  auto valid = ne(flat_t, opt.ignore_index);
  auto safe_t = where(valid, flat_t, std::int64_t(0));
  auto picked = gather(lp, 1, safe_t.unsqueeze(1)).squeeze(1);
  auto w = valid.template to<T>();
  if (opt.weight.defined()) w = mul(w, index_select(opt.weight, 0, safe_t));
  auto loss = neg(mul(picked, w));
  if (opt.reduction == "none") return loss.reshape(target.shape());
  if (opt.reduction == "sum") return sum(loss);
  check(opt.reduction == "mean", op, "reduction must be \"mean\", \"sum\" or \"none\", got \"",
        opt.reduction, "\"");
  return div(sum(loss), sum(w));
}

template <class T>
struct CrossEntropyOptions {
  Tensor<T> weight = {};
  std::int64_t ignore_index = -100;
  std::string reduction = "mean";
  double label_smoothing = 0.0;
};

// logits [N, C] or [N, C, d1, ...]; target holds class indices. One fused kernel per row
// (log-sum-exp, the picked logit, the smoothing term) and its backward (softmax minus the
// smoothed one-hot), instead of log_softmax + gather + reductions.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<std::int64_t>& target,
                        const CrossEntropyOptions<T>& opt = {}) {
  const char* op = "cross_entropy";
  ops_detail::floating_only<T>(op);
  check(opt.label_smoothing >= 0 && opt.label_smoothing <= 1, op,
        "label_smoothing must be in [0, 1], got ", opt.label_smoothing);
  check(opt.reduction == "mean" || opt.reduction == "sum" || opt.reduction == "none", op,
        "reduction must be \"mean\", \"sum\" or \"none\", got \"", opt.reduction, "\"");
  const std::int64_t C = ops_detail::check_class_targets(logits, target, opt.weight, opt.ignore_index, op);
  const auto flat_t = target.reshape({-1}).contiguous();
  const Tensor<T> weight = opt.weight.defined() ? opt.weight.detach().contiguous() : Tensor<T>();
  auto loss = ops_detail::cross_entropy_rows(ops_detail::classes_last(logits, flat_t.numel(), C),
                                             flat_t, weight, opt.ignore_index, opt.label_smoothing);
  if (opt.reduction == "none") return loss.reshape(target.shape());
  if (opt.reduction == "sum") return sum(loss);
  // mean: over the weights of the targets that count (PyTorch's rule, smoothing included).
  Tensor<T> denom;
  {
    NoGradGuard no_grad;
    auto valid = ne(flat_t, opt.ignore_index);
    auto w = valid.template to<T>();
    if (weight.defined()) w = mul(w, index_select(weight, 0, where(valid, flat_t, std::int64_t(0))));
    denom = sum(w);
  }
  return div(sum(loss), denom);
}

// Soft targets: `target` holds class probabilities with the logits' shape.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<T>& target,
                        const CrossEntropyOptions<T>& opt = {}) {
  const char* op = "cross_entropy";
  check(logits.shape() == target.shape(), op, "probability target of shape ", target.shape(),
        " must match the logits' shape ", logits.shape());
  const std::int64_t class_dim = logits.dim() >= 2 ? 1 : 0;
  const std::int64_t C = logits.shape()[class_dim];
  auto logp = log_softmax(logits, class_dim);
  Tensor<T> t = target;
  if (opt.label_smoothing > 0)
    t = add(mul(target, T(1 - opt.label_smoothing)), scalar_tensor<T>(T(opt.label_smoothing / C), target.device()));
  auto prod = mul(logp, t);
  if (opt.weight.defined()) {
    Shape ws(static_cast<std::size_t>(logits.dim()), 1);
    ws[class_dim] = C;
    prod = mul(prod, opt.weight.reshape(ws));
  }
  auto loss = neg(sum(prod, {class_dim}));
  if (opt.reduction == "mean") return div(sum(loss), scalar_tensor<T>(T(logits.numel() / std::max<std::int64_t>(C, 1)), logits.device()));
  return ops_detail::reduce_loss(loss, opt.reduction, op);
}

template <class T>
Tensor<T> mse_loss(const Tensor<T>& input, const Tensor<T>& target, std::string_view reduction = "mean") {
  auto d = sub(input, target);
  return ops_detail::reduce_loss(mul(d, d), reduction, "mse_loss");
}

template <class T>
Tensor<T> l1_loss(const Tensor<T>& input, const Tensor<T>& target, std::string_view reduction = "mean") {
  return ops_detail::reduce_loss(abs(sub(input, target)), reduction, "l1_loss");
}

// 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere.
template <class T>
Tensor<T> smooth_l1_loss(const Tensor<T>& input, const Tensor<T>& target,
                         std::string_view reduction = "mean", double beta = 1.0) {
  check(beta >= 0, "smooth_l1_loss", "beta must be non-negative, got ", beta);
  auto d = abs(sub(input, target));
  if (beta == 0) return ops_detail::reduce_loss(d, reduction, "smooth_l1_loss");
  auto quad = div(mul(d, d), T(2 * beta));
  auto lin = sub(d, T(0.5 * beta));
  return ops_detail::reduce_loss(where(lt(d, T(beta)), quad, lin), reduction, "smooth_l1_loss");
}

// 0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere.
template <class T>
Tensor<T> huber_loss(const Tensor<T>& input, const Tensor<T>& target,
                     std::string_view reduction = "mean", double delta = 1.0) {
  check(delta > 0, "huber_loss", "delta must be positive, got ", delta);
  auto d = abs(sub(input, target));
  auto quad = mul(mul(d, d), T(0.5));
  auto lin = mul(sub(d, T(0.5 * delta)), T(delta));
  return ops_detail::reduce_loss(where(lt(d, T(delta)), quad, lin), reduction, "huber_loss");
}

template <class T>
struct BceWithLogitsOptions {
  Tensor<T> weight = {};      // broadcast to the input
  Tensor<T> pos_weight = {};  // [C], broadcast along the last dim
  std::string reduction = "mean";
};

// (1 - y) x + (1 + (pw - 1) y) softplus(-x), times weight, with softplus(-x) = -log sigmoid(x)
// computed stably as log1p(exp(-|x|)) + max(-x, 0). Its own backward (PyTorch's): dL/dx =
// (1 - y) - (1 + (pw - 1) y) sigmoid(-x), smooth at x = 0, where the kinks of |x| and max(-x, 0)
// cancel in value but not in their one-sided derivatives (a composite's gradient there would be
// 1 - y instead of sigmoid(0) - y: wrong for every zero-initialised probe).
template <class T>
Tensor<T> binary_cross_entropy_with_logits(const Tensor<T>& input, const Tensor<T>& target,
                                           const BceWithLogitsOptions<T>& opt = {}) {
  const char* op = "binary_cross_entropy_with_logits";
  ops_detail::floating_only<T>(op);
  check(input.shape() == target.shape(), op, "target of shape ", target.shape(), " must match input of shape ",
        input.shape());
  const Tensor<T>&w = opt.weight, &pw = opt.pos_weight;
  if (w.defined()) broadcast_shapes(input.shape(), w.shape(), op);
  if (pw.defined()) broadcast_shapes(input.shape(), pw.shape(), op);
  // The unweighted loss and softplus(-x), from the saved x, y and pos_weight.
  auto parts = [](const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& pos_weight) {
    const Tensor<T> sp = add(log1p(exp(neg(abs(x)))), relu(neg(x)));
    const Tensor<T> scaled = pos_weight.defined() ? mul(add(mul(sub(pos_weight, T(1)), y), T(1)), sp) : sp;
    return std::pair{add(mul(sub(T(1), y), x), scaled), sp};
  };
  Tensor<T> loss;
  {
    NoGradGuard no_grad;
    loss = parts(input, target, pw).first;
    if (w.defined()) loss = mul(loss, w);
  }
  loss = autograd::record(
      "BinaryCrossEntropyWithLogitsBackward", loss, {input, target, w, pw},
      [x = autograd::save(input), y = autograd::save(target), w = autograd::save(w), pw = autograd::save(pw),
       parts](const Tensor<T>& g, const NeedsGrad& n) -> std::vector<Tensor<T>> {
        const Tensor<T> gw = w.defined() ? mul(g, w) : g;  // the gradient of the unweighted loss
        Tensor<T> dx, dy, dw, dpw;
        if (n[0]) {
          const Tensor<T> sig_neg = sigmoid(neg(x));
          const Tensor<T> scaled = pw.defined() ? mul(add(mul(sub(pw, T(1)), y), T(1)), sig_neg) : sig_neg;
          dx = sum_to(mul(gw, sub(sub(T(1), y), scaled)), x.shape());
        }
        if (n[1] || n[2] || n[3]) {
          const auto [unweighted, sp] = parts(x, y, pw);
          if (n[1]) dy = sum_to(mul(gw, pw.defined() ? sub(mul(sub(pw, T(1)), sp), x) : neg(x)), y.shape());
          if (n[2]) dw = sum_to(mul(g, unweighted), w.shape());
          if (n[3]) dpw = sum_to(mul(gw, mul(y, sp)), pw.shape());
        }
        return {dx, dy, dw, dpw};
      });
  return ops_detail::reduce_loss(loss, opt.reduction, op);
}

// input holds probabilities in [0, 1]: -(y log x + (1 - y) log(1 - x)), each log clamped at
// -100 as PyTorch does (so x = 0 or 1 gives a finite loss); weight broadcast to the input.
// PyTorch's backward: dx = (x - y) / max(x (1 - x), 1e-12), dy = log(1 - x) - log(x).
template <class T>
Tensor<T> binary_cross_entropy(const Tensor<T>& input, const Tensor<T>& target, const Tensor<T>& weight = {},
                               std::string_view reduction = "mean") {
  const char* op = "binary_cross_entropy";
  ops_detail::floating_only<T>(op);
  check(input.shape() == target.shape(), op, "target of shape ", target.shape(), " must match input of shape ",
        input.shape());
  if (weight.defined()) broadcast_shapes(input.shape(), weight.shape(), op);
  auto unweighted = [](const Tensor<T>& x, const Tensor<T>& y) {
    return neg(add(mul(y, clamp(log(x), -100.0)), mul(sub(T(1), y), clamp(log(sub(T(1), x)), -100.0))));
  };
  Tensor<T> loss;
  {
    NoGradGuard no_grad;
    check(!any(logical_not(logical_and(ge(input, T(0)), le(input, T(1))))).item(), op,
          "all elements of the input must be between 0 and 1 (input ", input.describe(), ")");
    loss = unweighted(input, target);
    if (weight.defined()) loss = mul(loss, weight);
  }
  loss = autograd::record(
      "BinaryCrossEntropyBackward", loss, {input, target, weight},
      [x = autograd::save(input), y = autograd::save(target), w = autograd::save(weight), unweighted](
          const Tensor<T>& g, const NeedsGrad& n) -> std::vector<Tensor<T>> {
        const Tensor<T> gw = w.defined() ? mul(g, w) : g;
        Tensor<T> dx, dy, dw;
        if (n[0]) dx = sum_to(mul(gw, div(sub(x, y), clamp(mul(x, sub(T(1), x)), 1e-12))), x.shape());
        if (n[1]) dy = sum_to(mul(gw, sub(log1p(neg(x)), log(x))), y.shape());
        if (n[2]) dw = sum_to(mul(g, unweighted(x, y)), w.shape());
        return {dx, dy, dw};
      });
  return ops_detail::reduce_loss(loss, reduction, op);
}

// The multi-class hinge loss (torch's multi_margin_loss): for input [N, C] (or [C]) and class
// indices y, sum over i != y of max(0, margin - x[y] + x[i])^p, times weight[y], over C; p is 1
// or 2.
template <class T>
Tensor<T> multi_margin_loss(const Tensor<T>& input, const Tensor<std::int64_t>& target, int p = 1,
                            double margin = 1.0, const Tensor<T>& weight = {}, std::string_view reduction = "mean") {
  const char* op = "multi_margin_loss";
  check(p == 1 || p == 2, op, "p must be 1 or 2, got ", p);
  check(input.dim() == 1 || input.dim() == 2, op, "input must be [C] or [N, C], got ", input.describe());
  const Tensor<T> x = input.dim() == 1 ? input.unsqueeze(0) : input;
  const Tensor<std::int64_t> y = input.dim() == 1 ? target.reshape({1}) : target;
  const std::int64_t C = ops_detail::check_class_targets(x, y, weight, -1, op);
  check(C > 0, op, "needs at least one class, got ", input.describe());
  const auto picked = gather(x, 1, y.unsqueeze(1));  // [N, 1]
  auto z = clamp(add(sub(T(margin), picked), x), 0.0);
  if (p == 2) z = mul(z, z);
  if (weight.defined()) z = mul(z, index_select(weight, 0, y).unsqueeze(1));
  const auto own = eq(arange<std::int64_t>(0, double(C), 1, x.device()).unsqueeze(0), y.unsqueeze(1));
  auto loss = div(sum(where(own, scalar_tensor<T>(0, x.device()), z), {1}), T(C));
  if (input.dim() == 1) loss = loss.reshape({});
  return ops_detail::reduce_loss(loss, reduction, op);
}

// torch's hinge_embedding_loss: x where y = 1, max(0, margin - x) where y = -1 (y holds +-1).
template <class T>
Tensor<T> hinge_embedding_loss(const Tensor<T>& input, const Tensor<T>& target, double margin = 1.0,
                               std::string_view reduction = "mean") {
  const auto zero = scalar_tensor<T>(0, input.device());
  auto loss = add(where(ne(target, T(1)), clamp(sub(T(margin), input), 0.0), zero),
                  where(ne(target, T(-1)), input, zero));
  return ops_detail::reduce_loss(loss, reduction, "hinge_embedding_loss");
}

// torch's margin_ranking_loss: max(0, -y (x1 - x2) + margin), y holding +-1.
template <class T>
Tensor<T> margin_ranking_loss(const Tensor<T>& x1, const Tensor<T>& x2, const Tensor<T>& target, double margin = 0.0,
                              std::string_view reduction = "mean") {
  auto loss = clamp(add(mul(neg(target), sub(x1, x2)), T(margin)), 0.0);
  return ops_detail::reduce_loss(loss, reduction, "margin_ranking_loss");
}

// torch's pairwise_distance: the p-norm of x1 - x2 + eps along the last dim.
template <class T>
Tensor<T> pairwise_distance(const Tensor<T>& x1, const Tensor<T>& x2, double p = 2.0, double eps = 1e-6,
                            bool keepdim = false) {
  return norm(add(sub(x1, x2), T(eps)), p, {-1}, keepdim);
}

// torch's triplet_margin_loss: max(d(a, p) - d(a, n) + margin, 0) with d the pairwise distance;
// with swap, d(a, n) is replaced by d(p, n) where that is smaller.
template <class T>
Tensor<T> triplet_margin_loss(const Tensor<T>& anchor, const Tensor<T>& positive, const Tensor<T>& negative,
                              double margin = 1.0, double p = 2.0, double eps = 1e-6, bool swap = false,
                              std::string_view reduction = "mean") {
  const char* op = "triplet_margin_loss";
  check(anchor.shape() == positive.shape() && anchor.shape() == negative.shape(), op, "anchor ", anchor.shape(),
        ", positive ", positive.shape(), " and negative ", negative.shape(), " must have one shape");
  const auto d_ap = pairwise_distance(anchor, positive, p, eps);
  auto d_an = pairwise_distance(anchor, negative, p, eps);
  if (swap) d_an = minimum(d_an, pairwise_distance(positive, negative, p, eps));
  return ops_detail::reduce_loss(clamp(add(sub(d_ap, d_an), T(margin)), 0.0), reduction, op);
}

// torch's cosine_embedding_loss for [N, D] pairs (or [D]): 1 - cos where y = 1,
// max(0, cos - margin) where y = -1, cos with PyTorch's 1e-12 added to each squared norm.
template <class T>
Tensor<T> cosine_embedding_loss(const Tensor<T>& x1, const Tensor<T>& x2, const Tensor<T>& target,
                                double margin = 0.0, std::string_view reduction = "mean") {
  const char* op = "cosine_embedding_loss";
  check(x1.shape() == x2.shape() && (x1.dim() == 1 || x1.dim() == 2), op, "inputs must be two [N, D] or [D] tensors, got ",
        x1.shape(), " and ", x2.shape());
  const std::int64_t dim = x1.dim() - 1;
  const auto dot = sum(mul(x1, x2), {dim});
  const auto mag1 = add(sum(mul(x1, x1), {dim}), T(1e-12)), mag2 = add(sum(mul(x2, x2), {dim}), T(1e-12));
  const auto cos = div(dot, sqrt(mul(mag1, mag2)));
  const auto zero = scalar_tensor<T>(0, x1.device());
  auto loss = add(where(eq(target, T(1)), sub(T(1), cos), zero),
                  where(eq(target, T(-1)), clamp(sub(cos, T(margin)), 0.0), zero));
  return ops_detail::reduce_loss(loss, reduction, op);
}

// input holds log-probabilities; target probabilities (or log-probabilities if log_target).
// reduction: "mean" (over elements), "batchmean" (over dim 0), "sum", "none".
template <class T>
Tensor<T> kl_div(const Tensor<T>& input, const Tensor<T>& target, std::string_view reduction = "mean",
                 bool log_target = false) {
  Tensor<T> pointwise;
  if (log_target) {
    pointwise = mul(exp(target), sub(target, input));
  } else {
    // target * (log target - input), with 0 log 0 = 0.
    auto pos = gt(target, T(0));
    auto safe = where(pos, target, ones_like(target));
    pointwise = where(pos, mul(target, sub(log(safe), input)), mul(target, neg(input)));
  }
  if (reduction == "batchmean") {
    check(input.dim() >= 1, "kl_div", "batchmean needs a batch dim, got shape ", input.shape());
    return div(sum(pointwise), T(input.shape()[0]));
  }
  return ops_detail::reduce_loss(pointwise, reduction, "kl_div");
}

// sum(x1 * x2) / sqrt(max(|x1|^2 |x2|^2, eps^2)) along dim.
template <class T>
Tensor<T> cosine_similarity(const Tensor<T>& x1, const Tensor<T>& x2, std::int64_t dim = 1,
                            double eps = 1e-8) {
  const Shape shape = broadcast_shapes(x1.shape(), x2.shape(), "cosine_similarity");
  auto a = x1.expand(shape), b = x2.expand(shape);
  auto w12 = sum(mul(a, b), {dim});
  auto w1 = sum(mul(a, a), {dim});
  auto w2 = sum(mul(b, b), {dim});
  auto n12 = sqrt(clamp(mul(w1, w2), eps * eps));
  return div(w12, n12);
}

}  // namespace ligm
