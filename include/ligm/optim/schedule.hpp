// Learning-rate schedules, ReduceLROnPlateau and weight EMA.
//
// A schedule is a factor of each group's base learning rate as a function of a step count;
// LRScheduler applies it. Call step() once per optimizer step or once per epoch — the count
// means whichever you choose (PyTorch's convention: construct, then step() after each period).
//
//   optim::LRScheduler sched(opt, optim::cosine_with_warmup(500, 10000));
//   for (...) { ...; opt.step(); sched.step(); }
#pragma once
#include <cmath>
#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "ligm/optim/optimizer.hpp"

namespace ligm::optim {

using Schedule = std::function<double(std::int64_t step)>;

// gamma^(step / step_size) (torch StepLR).
inline Schedule step_lr(std::int64_t step_size, double gamma = 0.1) {
  check(step_size > 0, "step_lr", "step_size must be positive, got ", step_size);
  return [=](std::int64_t s) { return std::pow(gamma, double(s / step_size)); };
}

// gamma^(number of milestones <= step) (torch MultiStepLR).
inline Schedule multistep_lr(std::vector<std::int64_t> milestones, double gamma = 0.1) {
  return [=](std::int64_t s) {
    int passed = 0;
    for (auto m : milestones) passed += s >= m;
    return std::pow(gamma, passed);
  };
}

// Linear warm-up from 1/warmup to 1 over `warmup` steps, then a cosine from 1 to min_factor
// at `total` steps (and min_factor after).
inline Schedule cosine_with_warmup(std::int64_t warmup, std::int64_t total, double min_factor = 0.0) {
  check(warmup >= 0 && total > warmup, "cosine_with_warmup", "needs 0 <= warmup < total, got ", warmup, ", ",
        total);
  return [=](std::int64_t s) {
    if (s < warmup) return double(s + 1) / double(warmup);
    const double t = std::min(1.0, double(s - warmup) / double(total - warmup));
    return min_factor + (1 - min_factor) * 0.5 * (1 + std::cos(3.14159265358979323846 * t));
  };
}

// torch OneCycleLR (cosine annealing, two phases) as a factor of max_lr: from 1/div_factor up
// to 1 over pct_start of the steps, then down to 1/(div_factor * final_div_factor).
inline Schedule one_cycle(std::int64_t total_steps, double pct_start = 0.3, double div_factor = 25,
                          double final_div_factor = 1e4) {
  check(total_steps > 1, "one_cycle", "total_steps must be > 1, got ", total_steps);
  return [=](std::int64_t s) {
    const double initial = 1 / div_factor, final = initial / final_div_factor;
    const double end1 = pct_start * double(total_steps) - 1, end2 = double(total_steps - 1);
    auto anneal = [](double from, double to, double pct) {
      return to + (from - to) / 2 * (std::cos(3.14159265358979323846 * pct) + 1);
    };
    if (double(s) <= end1) return anneal(initial, 1.0, double(s) / end1);
    return anneal(1.0, final, std::min(1.0, (double(s) - end1) / (end2 - end1)));
  };
}

// Sets every parameter group's lr to base_lr * schedule(step). The base rates are the groups'
// rates when the scheduler is made; step 0 is applied at once.
template <class Opt>
class LRScheduler {
 public:
  LRScheduler(Opt& opt, Schedule schedule) : opt_(opt), schedule_(std::move(schedule)) {
    for (auto& g : opt_.param_groups()) base_.push_back(g.options.lr);
    apply();
  }
  void step() {
    ++step_;
    apply();
  }
  std::int64_t last_step() const { return step_; }
  // For checkpoints: restore the count, and the rates follow.
  void set_step(std::int64_t s) {
    step_ = s;
    apply();
  }
  std::vector<double> get_last_lr() const {
    std::vector<double> lr;
    for (auto& g : opt_.param_groups()) lr.push_back(g.options.lr);
    return lr;
  }

 private:
  void apply() {
    const double f = schedule_(step_);
    auto& groups = opt_.param_groups();
    for (std::size_t i = 0; i < groups.size() && i < base_.size(); ++i) groups[i].options.lr = base_[i] * f;
  }
  Opt& opt_;
  Schedule schedule_;
  std::vector<double> base_;
  std::int64_t step_ = 0;
};

// torch.optim.lr_scheduler.ReduceLROnPlateau: multiplies every group's lr by `factor` (not
// below min_lr) once a metric has not improved for more than `patience` calls of step(metric),
// then waits `cooldown` calls before counting again. Improving means below best * (1 -
// threshold) ("min", "rel"), below best - threshold ("min", "abs"), or above best * (1 +
// threshold) / best + threshold in "max" mode. A change smaller than eps is not made.
//
//   optim::ReduceLROnPlateau plateau(opt, {.factor = 0.5, .patience = 3});
//   for (epoch ...) { train(); plateau.step(validation_loss); }
struct PlateauOptions {
  std::string mode = "min";  // "min" or "max"
  double factor = 0.1;
  std::int64_t patience = 10;
  double threshold = 1e-4;
  std::string threshold_mode = "rel";  // "rel" or "abs"
  std::int64_t cooldown = 0;
  double min_lr = 0;
  double eps = 1e-8;
};

template <class Opt>
class ReduceLROnPlateau {
 public:
  // What step() counts, for checkpoints (set_state puts it back).
  struct State {
    double best = 0;
    std::int64_t num_bad_epochs = 0, cooldown_counter = 0, last_epoch = 0;
  };

  ReduceLROnPlateau(Opt& opt, PlateauOptions o = {}) : opt_(opt), o_(std::move(o)) {
    check(o_.mode == "min" || o_.mode == "max", "ReduceLROnPlateau", "mode must be \"min\" or \"max\", got \"",
          o_.mode, "\"");
    check(o_.threshold_mode == "rel" || o_.threshold_mode == "abs", "ReduceLROnPlateau",
          "threshold_mode must be \"rel\" or \"abs\", got \"", o_.threshold_mode, "\"");
    check(o_.factor < 1 && o_.factor >= 0, "ReduceLROnPlateau", "factor must be in [0, 1), got ", o_.factor);
    check(o_.patience >= 0 && o_.cooldown >= 0 && o_.min_lr >= 0, "ReduceLROnPlateau",
          "patience, cooldown and min_lr must be >= 0");
    state_.best = worst();
  }

  void step(double metric) {
    ++state_.last_epoch;
    if (better(metric)) {
      state_.best = metric;
      state_.num_bad_epochs = 0;
    } else {
      ++state_.num_bad_epochs;
    }
    if (state_.cooldown_counter > 0) {
      --state_.cooldown_counter;
      state_.num_bad_epochs = 0;  // bad epochs in cooldown do not count
    }
    if (state_.num_bad_epochs > o_.patience) {
      for (auto& g : opt_.param_groups()) {
        const double reduced = std::max(g.options.lr * o_.factor, o_.min_lr);
        if (g.options.lr - reduced > o_.eps) g.options.lr = reduced;
      }
      state_.cooldown_counter = o_.cooldown;
      state_.num_bad_epochs = 0;
    }
  }

  std::vector<double> get_last_lr() const {
    std::vector<double> lr;
    for (auto& g : opt_.param_groups()) lr.push_back(g.options.lr);
    return lr;
  }
  const State& state() const { return state_; }
  void set_state(const State& s) { state_ = s; }

 private:
  double worst() const {
    return o_.mode == "min" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  }
  bool better(double a) const {
    const double best = state_.best, t = o_.threshold;
    if (o_.mode == "min") return o_.threshold_mode == "rel" ? a < best * (1 - t) : a < best - t;
    return o_.threshold_mode == "rel" ? a > best * (1 + t) : a > best + t;
  }

  Opt& opt_;
  PlateauOptions o_;
  State state_;
};

// Exponential moving average of weights: target = decay * target + (1 - decay) * source,
// element by element (BYOL and DINO's teacher, consistency models' EMA network). Buffers
// (running statistics) are usually copied instead: pass them with decay 0.
template <class T>
void ema_update_(const std::vector<Tensor<T>>& target, const std::vector<Tensor<T>>& source, double decay) {
  check(target.size() == source.size(), "ema_update_", "target has ", target.size(), " tensors, source ",
        source.size());
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < target.size(); ++i) {
    check(target[i].shape() == source[i].shape(), "ema_update_", "tensor ", i, ": shapes ", target[i].shape(),
          " and ", source[i].shape());
    Tensor<T> t = target[i];
    t.mul_(T(decay)).add_(source[i], T(1 - decay));
  }
}

}  // namespace ligm::optim
