// Optimizer: parameter groups with their own options, per-parameter state, update masks,
// state_dict, zero_grad. SGD, Adam, AdamW, RMSprop, Adagrad, LARS only write `update`.
//
// Update masks: set_update_mask(p, mask) makes the elements where mask is 0 immovable — after
// every step they hold exactly their old values, and so do their optimizer state (momentum,
// Adam moments): weight decay, momentum and Adam cannot move them. The general mechanism
// behind freezing parts of a tensor (Eidetic learning, fine-tuning a few rows, adapters).
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "ligm/autograd/profiler.hpp"
#include "ligm/ops/copy.hpp"
#include "ligm/ops/elementwise.hpp"
#include "ligm/ops/reduce.hpp"

namespace ligm::optim {

template <class T>
using StateDict = std::map<std::string, Tensor<T>>;

template <class T, class Options>
class Optimizer {
 public:
  struct Group {
    std::vector<Tensor<T>> params;
    Options options;
  };
  // A parameter's optimizer state: named buffers (momentum, exp_avg, ...) and its step count.
  struct State {
    std::map<std::string, Tensor<T>> buffers;
    std::int64_t step = 0;
  };

  Optimizer(std::vector<Tensor<T>> params, Options defaults) : defaults_(defaults) {
    add_param_group({std::move(params), defaults});
  }
  Optimizer(std::vector<Group> groups, Options defaults) : defaults_(defaults) {
    for (auto& g : groups) add_param_group(std::move(g));
  }
  virtual ~Optimizer() = default;

  void add_param_group(Group g) {
    for (const auto& p : g.params) {
      // (not name(): this also runs inside the base constructor)
      check(p.defined(), "optimizer", "a parameter is an undefined tensor");
      for (const auto& other : groups_)
        for (const auto& q : other.params)
          check(!p.is_same(q), "optimizer", "a parameter appears in two groups");
    }
    groups_.push_back(std::move(g));
  }
  std::vector<Group>& param_groups() { return groups_; }
  const Options& defaults() const { return defaults_; }

  // Sets every gradient to undefined (PyTorch's default set_to_none=True).
  void zero_grad() {
    for (auto& g : groups_)
      for (auto& p : g.params) p.set_grad({});
  }

  // One update of every parameter that has a gradient.
  void step() {
    profiler::Scope scope([this] { return std::string(name()) + ".step"; });
    NoGradGuard no_grad;
    for (auto& g : groups_)
      for (auto& p : g.params) {
        if (!p.grad().defined()) continue;
        State& st = state_[p.impl().get()];
        if (st.step == 0) init_state(p, st, g.options);
        const Tensor<bool>* mask = find_mask(p);
        if (!mask) {
          ++st.step;
          update(p, p.grad(), st, g.options);
          continue;
        }
        // Masked: remember the frozen values, update, put them back (bit for bit).
        const Tensor<T> old_p = p.clone();
        std::map<std::string, Tensor<T>> old_buffers;
        for (auto& [k, b] : st.buffers) old_buffers[k] = b.clone();
        ++st.step;
        update(p, p.grad(), st, g.options);
        Tensor<T> handle = p;
        handle.copy_(where(*mask, p, old_p));
        for (auto& [k, b] : st.buffers) {
          auto it = old_buffers.find(k);
          b.copy_(where(*mask, b, it != old_buffers.end() ? it->second : zeros_like(b)));
        }
      }
  }

  // mask: same shape as p (or broadcastable to it); true/1 = may change.
  void set_update_mask(const Tensor<T>& p, const Tensor<bool>& mask) {
    check(broadcast_shapes(mask.shape(), p.shape(), "set_update_mask") == p.shape(), "set_update_mask",
          "mask of shape ", mask.shape(), " does not broadcast to the parameter's ", p.shape());
    masks_[p.impl().get()] = mask.to(p.device());
  }
  void clear_update_mask(const Tensor<T>& p) { masks_.erase(p.impl().get()); }
  // Forgets all momentum/moment buffers and step counts (a fresh optimizer, same groups).
  void reset_state() { state_.clear(); }
  const State* state_of(const Tensor<T>& p) const {
    auto it = state_.find(p.impl().get());
    return it == state_.end() ? nullptr : &it->second;
  }

  // "state.<i>.<buffer>" and "state.<i>.step" for parameter i (counted across groups, in
  // order), and "param_groups.<g>.lr" for each group: enough to resume exactly.
  StateDict<T> state_dict() const {
    StateDict<T> sd;
    std::int64_t i = 0;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      sd["param_groups." + std::to_string(gi) + ".lr"] = scalar_tensor<T>(T(groups_[gi].options.lr));
      for (const auto& p : groups_[gi].params) {
        auto it = state_.find(p.impl().get());
        if (it != state_.end()) {
          const std::string prefix = "state." + std::to_string(i) + ".";
          sd[prefix + "step"] = scalar_tensor<T>(T(it->second.step));
          for (auto& [k, b] : it->second.buffers) sd[prefix + k] = b.detach().clone();
        }
        ++i;
      }
    }
    return sd;
  }
  // All or nothing: a state dict that does not fit (a missing group, a buffer of the wrong
  // shape, a step that is not a count) is an error that leaves the optimizer as it was.
  void load_state_dict(const StateDict<T>& sd) {
    std::map<const void*, State> state;
    std::vector<double> lrs;
    std::int64_t i = 0;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      auto lr = sd.find("param_groups." + std::to_string(gi) + ".lr");
      check(lr != sd.end(), name(), "load_state_dict: no entry for param group ", gi);
      lrs.push_back(double(lr->second.item()));
      for (const auto& p : groups_[gi].params) {
        const std::string prefix = "state." + std::to_string(i) + ".";
        auto step = sd.find(prefix + "step");
        if (step != sd.end()) {
          State& st = state[p.impl().get()];
          const double count = double(step->second.item());
          check(count >= 0 && count < 0x1p62 && count == std::floor(count), name(),
                "load_state_dict: ", prefix, "step is ", count, ", not a step count");
          st.step = std::int64_t(count);
          for (auto it = sd.lower_bound(prefix); it != sd.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
            const std::string key = it->first.substr(prefix.size());
            if (key == "step") continue;
            check(it->second.shape() == p.shape(), name(), "load_state_dict: ", it->first, " has shape ",
                  it->second.shape(), ", the parameter ", p.shape());
            st.buffers[key] = it->second.detach().to(p.device()).clone();
          }
        }
        ++i;
      }
    }
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) groups_[gi].options.lr = lrs[gi];
    state_ = std::move(state);
  }

  virtual const char* name() const = 0;

 protected:
  // Updates p in place from its gradient; st.step is already incremented (1 on the first call).
  virtual void update(Tensor<T>& p, const Tensor<T>& grad, State& st, const Options& o) = 0;
  // Before a parameter's first update: state whose start is not zero (Adagrad's accumulator),
  // made here so that an update mask keeps frozen elements at that start.
  virtual void init_state(const Tensor<T>& /*p*/, State& /*st*/, const Options& /*o*/) {}
  // The buffer named key, zeros like p when it does not exist yet.
  static Tensor<T>& buffer(State& st, const char* key, const Tensor<T>& p) {
    auto it = st.buffers.find(key);
    if (it == st.buffers.end()) it = st.buffers.emplace(key, zeros_like(p)).first;
    return it->second;
  }

 private:
  const Tensor<bool>* find_mask(const Tensor<T>& p) const {
    auto it = masks_.find(p.impl().get());
    return it == masks_.end() ? nullptr : &it->second;
  }

  Options defaults_;
  std::vector<Group> groups_;
  std::map<const void*, State> state_;
  std::map<const void*, Tensor<bool>> masks_;
};

// Scales the gradients so that their global norm is at most max_norm; returns the norm
// before clipping (torch.nn.utils.clip_grad_norm_).
template <class T>
double clip_grad_norm_(const std::vector<Tensor<T>>& params, double max_norm, double norm_type = 2.0) {
  NoGradGuard no_grad;
  double total = 0;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    const double n = double(norm(p.grad(), norm_type).item());
    total = std::isinf(norm_type) ? std::max(total, n) : total + std::pow(n, norm_type);
  }
  if (!std::isinf(norm_type)) total = std::pow(total, 1.0 / norm_type);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for (const auto& p : params)
      if (p.grad().defined()) {
        Tensor<T> g = p.grad();
        g.mul_(T(coef));
      }
  return total;
}

// Clamps every gradient element into [-clip_value, clip_value], in place
// (torch.nn.utils.clip_grad_value_).
template <class T>
void clip_grad_value_(const std::vector<Tensor<T>>& params, double clip_value) {
  check(clip_value >= 0, "clip_grad_value_", "clip_value must be >= 0, got ", clip_value);
  NoGradGuard no_grad;
  for (const auto& p : params)
    if (p.grad().defined()) {
      Tensor<T> g = p.grad();
      g.copy_(clamp(g, -clip_value, clip_value));
    }
}

}  // namespace ligm::optim
