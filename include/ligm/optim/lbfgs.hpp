// L-BFGS (Liu and Nocedal, 1989) as torch.optim.LBFGS: a quasi-Newton method that keeps the
// last `history_size` steps s and gradient changes y and turns the gradient into a direction
// with the two-loop recursion, for small full-batch problems (a logistic-regression probe, a
// curve fit). One step(closure) runs up to max_iter iterations; the closure re-evaluates the
// model: it clears the gradients, computes the loss, calls backward() and returns the loss.
//
//   optim::LBFGS<double> opt(model.parameters(), {.lr = 1, .max_iter = 50, .line_search_fn = "strong_wolfe"});
//   auto closure = [&] { opt.zero_grad(); auto loss = criterion(model(x), y); loss.backward(); return double(loss.item()); };
//   for (int k = 0; k < 10; ++k) opt.step(closure);
//
// Without a line search each iteration moves by lr along the direction (the first by
// lr * min(1, 1 / |g|_1)); with "strong_wolfe" a line search (cubic interpolation, the strong
// Wolfe conditions c1 = 1e-4, c2 = 0.9, at most 25 evaluations) chooses the step. The
// arithmetic and every stopping rule are PyTorch's (checked against PyTorch 1.13 in float64,
// tests/test_nn_golden.cpp); scalars are computed in double. All parameters are treated as one
// flat vector (one group, as PyTorch), on one device.
#pragma once
#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ligm/ops/movement.hpp"
#include "ligm/ops/reduce.hpp"

namespace ligm::optim {

struct LBFGSOptions {
  double lr = 1;
  int max_iter = 20;
  int max_eval = 0;  // 0: max_iter * 5 / 4
  double tolerance_grad = 1e-7;
  double tolerance_change = 1e-9;
  int history_size = 100;
  std::string line_search_fn = "";  // "" or "strong_wolfe"
};

template <class T = float>
class LBFGS {
 public:
  using Closure = std::function<double()>;
  struct Group {
    std::vector<Tensor<T>> params;
    LBFGSOptions options;
  };

  LBFGS(std::vector<Tensor<T>> params, LBFGSOptions o = {}) : groups_{{std::move(params), o}} {
    check(!groups_[0].params.empty(), "LBFGS", "no parameters");
    for (const auto& p : groups_[0].params) {
      check(p.defined(), "LBFGS", "a parameter is an undefined tensor");
      check(p.device() == groups_[0].params[0].device(), "LBFGS", "all parameters must be on one device, got ",
            p.device().str(), " and ", groups_[0].params[0].device().str());
    }
    check(o.lr > 0 && o.max_iter > 0 && o.history_size > 0 && o.max_eval >= 0, "LBFGS",
          "lr, max_iter and history_size must be positive, max_eval >= 0");
    check(o.line_search_fn.empty() || o.line_search_fn == "strong_wolfe", "LBFGS",
          "line_search_fn must be \"\" or \"strong_wolfe\", got \"", o.line_search_fn, "\"");
    if (groups_[0].options.max_eval == 0) groups_[0].options.max_eval = o.max_iter * 5 / 4;
  }
  const char* name() const { return "LBFGS"; }
  // One group, as PyTorch's; a schedule may change its lr.
  std::vector<Group>& param_groups() { return groups_; }
  void zero_grad() {
    for (auto& p : groups_[0].params) p.set_grad({});
  }
  std::int64_t func_evals() const { return func_evals_; }  // closure calls so far
  std::int64_t n_iter() const { return n_iter_; }          // iterations so far

  // Up to max_iter iterations; returns the loss the first closure call gave.
  double step(const Closure& closure) {
    const LBFGSOptions& o = groups_[0].options;
    const double orig_loss = evaluate(closure);
    double loss = orig_loss;
    int current_evals = 1;
    ++func_evals_;
    NoGradGuard no_grad;
    Tensor<T> flat_grad = gather_flat_grad();
    if (abs_max(flat_grad) <= o.tolerance_grad) return orig_loss;

    for (int iter = 1; iter <= o.max_iter; ++iter) {
      ++n_iter_;
      if (n_iter_ == 1) {
        d_ = neg(flat_grad);
        old_dirs_.clear();
        old_stps_.clear();
        ro_.clear();
        h_diag_ = 1;
      } else {
        const Tensor<T> y = sub(flat_grad, prev_flat_grad_);
        const Tensor<T> s = mul(d_, T(t_));
        const double ys = dot(y, s);
        if (ys > 1e-10) {  // keep the pair only where the curvature condition holds
          if (int(old_dirs_.size()) == o.history_size) {
            old_dirs_.pop_front();
            old_stps_.pop_front();
            ro_.pop_front();
          }
          old_dirs_.push_back(y);
          old_stps_.push_back(s);
          ro_.push_back(1.0 / ys);
          h_diag_ = ys / dot(y, y);
        }
        // The two-loop recursion: d = -H g with H the L-BFGS inverse-Hessian estimate.
        const std::size_t m = old_dirs_.size();
        std::vector<double> al(m);
        Tensor<T> q = neg(flat_grad);
        for (std::size_t i = m; i-- > 0;) {
          al[i] = dot(old_stps_[i], q) * ro_[i];
          q = sub(q, mul(old_dirs_[i], T(al[i])));
        }
        Tensor<T> r = mul(q, T(h_diag_));
        for (std::size_t i = 0; i < m; ++i) {
          const double be_i = dot(old_dirs_[i], r) * ro_[i];
          r = add(r, mul(old_stps_[i], T(al[i] - be_i)));
        }
        d_ = r;
      }
      prev_flat_grad_ = flat_grad.clone();
      const double prev_loss = loss;
      t_ = n_iter_ == 1 ? std::min(1.0, 1.0 / abs_sum(flat_grad)) * o.lr : o.lr;
      const double gtd = dot(flat_grad, d_);
      if (gtd > -o.tolerance_change) break;  // not a descent direction

      int ls_evals = 0;
      bool opt_cond = false;
      if (o.line_search_fn == "strong_wolfe") {
        const std::vector<Tensor<T>> x0 = clone_params();
        auto [f_new, g_new, t_new, evals] = strong_wolfe(closure, x0, t_, d_, loss, flat_grad, gtd);
        loss = f_new;
        flat_grad = g_new;
        t_ = t_new;
        ls_evals = evals;
        add_to_params(t_, d_);
        opt_cond = abs_max(flat_grad) <= o.tolerance_grad;
      } else {
        add_to_params(t_, d_);
        if (iter != o.max_iter) {
          loss = evaluate(closure);
          flat_grad = gather_flat_grad();
          opt_cond = abs_max(flat_grad) <= o.tolerance_grad;
          ls_evals = 1;
        }
      }
      current_evals += ls_evals;
      func_evals_ += ls_evals;
      if (iter == o.max_iter || current_evals >= o.max_eval || opt_cond) break;
      if (abs_max(d_) * std::abs(t_) <= o.tolerance_change) break;  // |d t|_max, t >= 0
      if (std::abs(loss - prev_loss) < o.tolerance_change) break;
    }
    return orig_loss;
  }

 private:
  struct Evaluation {
    double f;
    Tensor<T> g;
    double t;
    int evals;
  };

  static double dot(const Tensor<T>& a, const Tensor<T>& b) { return double(sum(mul(a, b)).item()); }
  static double abs_max(const Tensor<T>& a) { return double(amax(abs(a)).item()); }
  static double abs_sum(const Tensor<T>& a) { return double(sum(abs(a)).item()); }

  // The closure with grad mode on, whatever the caller's.
  static double evaluate(const Closure& closure) {
    EnableGradGuard grad;
    return closure();
  }
  // Every parameter's gradient as one flat vector (zeros where a parameter has none).
  Tensor<T> gather_flat_grad() const {
    std::vector<Tensor<T>> parts;
    for (const auto& p : groups_[0].params)
      parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : zeros<T>({p.numel()}, p.device()));
    return cat(parts, 0);
  }
  void add_to_params(double step, const Tensor<T>& update) {
    std::int64_t offset = 0;
    for (auto& p : groups_[0].params) {
      Tensor<T> handle = p;
      handle.add_(update.narrow(0, offset, p.numel()).reshape(p.shape()), T(step));
      offset += p.numel();
    }
  }
  std::vector<Tensor<T>> clone_params() const {
    std::vector<Tensor<T>> out;
    for (const auto& p : groups_[0].params) out.push_back(p.detach().clone());
    return out;
  }
  void set_params(const std::vector<Tensor<T>>& values) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      Tensor<T> handle = groups_[0].params[i];
      handle.copy_(values[i]);
    }
  }
  // Loss and gradient at x0 + t d; the parameters are put back to x0.
  std::pair<double, Tensor<T>> directional_evaluate(const Closure& closure, const std::vector<Tensor<T>>& x0, double t,
                                                    const Tensor<T>& d) {
    add_to_params(t, d);
    const double f = evaluate(closure);
    Tensor<T> g = gather_flat_grad();
    set_params(x0);
    return {f, g};
  }

  // The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), kept within bounds
  // (by default the interval between x1 and x2); the bounds' middle if the cubic has none.
  static double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2, double lo, double hi) {
    const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
    const double d2_square = d1 * d1 - g1 * g2;
    if (d2_square < 0) return (lo + hi) / 2;
    const double d2 = std::sqrt(d2_square);
    const double min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                                    : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
    return std::min(std::max(min_pos, lo), hi);
  }
  static double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2) {
    return cubic_interpolate(x1, f1, g1, x2, f2, g2, std::min(x1, x2), std::max(x1, x2));
  }

  // A trial step of the line search: its length, the loss and gradient there, and the
  // derivative along d.
  struct Trial {
    double t, f, gtd;
    Tensor<T> g;
  };

  // A step t along d satisfying the strong Wolfe conditions: first a bracket (growing the step
  // by cubic extrapolation), then zooming into it. Returns the loss, gradient and step chosen.
  Evaluation strong_wolfe(const Closure& closure, const std::vector<Tensor<T>>& x0, double t, const Tensor<T>& d,
                          double f, const Tensor<T>& g, double gtd) {
    constexpr double c1 = 1e-4, c2 = 0.9, tolerance_change = 1e-9;
    constexpr int max_ls = 25;
    const double d_norm = abs_max(d);
    int evals = 0, ls_iter = 0;
    auto trial = [&](double step) {
      auto [f_step, g_step] = directional_evaluate(closure, x0, step, d);
      ++evals;
      const double gtd_step = dot(g_step, d);
      return Trial{step, f_step, gtd_step, g_step};
    };
    auto above_armijo = [&](const Trial& p) { return p.f > f + c1 * p.t * gtd; };  // no sufficient decrease
    auto curvature = [&](const Trial& p) { return std::abs(p.gtd) <= -c2 * gtd; };        // strong Wolfe
    Trial prev{0, f, gtd, g}, now = trial(t);
    bool done = false;
    std::vector<Trial> bracket;  // one point that satisfies both conditions, or two around one
    while (ls_iter < max_ls) {
      const bool too_far = above_armijo(now) || (ls_iter > 1 && now.f >= prev.f);
      if (!too_far && curvature(now)) {
        bracket = {now};
        done = true;
        break;
      }
      if (too_far || now.gtd >= 0) {
        bracket = {prev, now};
        break;
      }
      const double next = cubic_interpolate(prev.t, prev.f, prev.gtd, now.t, now.f, now.gtd,
                                            now.t + 0.01 * (now.t - prev.t), now.t * 10);
      prev = now;
      now = trial(next);
      ++ls_iter;
    }
    if (ls_iter == max_ls) bracket = {Trial{0, f, gtd, g}, now};

    // Zoom: shrink the bracket until a point satisfies both conditions.
    bool insufficient_progress = false;
    std::size_t low = bracket[0].f <= bracket.back().f ? 0 : 1, high = 1 - low;
    while (!done && ls_iter < max_ls) {
      const double lo = std::min(bracket[0].t, bracket[1].t), hi = std::max(bracket[0].t, bracket[1].t);
      if ((hi - lo) * d_norm < tolerance_change) break;
      double next = cubic_interpolate(bracket[0].t, bracket[0].f, bracket[0].gtd, bracket[1].t, bracket[1].f,
                                      bracket[1].gtd);
      const double eps = 0.1 * (hi - lo);
      if (std::min(hi - next, next - lo) < eps) {  // too close to an end: move it inside
        if (insufficient_progress || next >= hi || next <= lo) {
          next = std::abs(next - hi) < std::abs(next - lo) ? hi - eps : lo + eps;
          insufficient_progress = false;
        } else {
          insufficient_progress = true;
        }
      } else {
        insufficient_progress = false;
      }
      now = trial(next);
      ++ls_iter;
      if (above_armijo(now) || now.f >= bracket[low].f) {
        bracket[high] = now;
        low = bracket[0].f <= bracket[1].f ? 0 : 1;
        high = 1 - low;
      } else {
        if (curvature(now)) {
          done = true;
        } else if (now.gtd * (bracket[high].t - bracket[low].t) >= 0) {
          bracket[high] = bracket[low];  // the old low becomes the high end
        }
        bracket[low] = now;
      }
    }
    const Trial& best = bracket[low];
    return {best.f, best.g, best.t, evals};
  }

  std::vector<Group> groups_;
  std::int64_t func_evals_ = 0, n_iter_ = 0;
  // Carried from one step() to the next, as PyTorch's state.
  Tensor<T> d_, prev_flat_grad_;
  double t_ = 0, h_diag_ = 1;
  std::deque<Tensor<T>> old_dirs_, old_stps_;
  std::deque<double> ro_;
};

}  // namespace ligm::optim
