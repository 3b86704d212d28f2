// Curvature Tuning (Hu, Gamba & Balestriero, arXiv 2502.07783), steering: swap every ReLU
// module of a built model for one shared CT unit (nn::CTU), set its beta, and put the ReLUs
// back — training-free, through the framework's module surgery (Module::replace_all).
//
//   methods::curvature::Steering<float> ct(model);      // every nn::ReLU -> one shared CTU, beta 1
//   for (double beta : {0.7, 0.8, 0.9}) { ct.set_beta(beta); evaluate(model); }
//   ct.restore();                                        // the original ReLU modules again
//
// Only ReLU *modules* are found; a ReLU applied as a function inside a forward() is not (the
// spec's pitfall P6), and a module called at two sites makes both sites share the unit.
// beta = 1 is ReLU bit for bit (the CTU fast path). The unit's parameters require no gradient:
// steering adds no trainable parameter and never changes the model's weights or statistics.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ligm/nn/nn.hpp"

namespace ligm::methods::curvature {

template <class T = float>
class Steering {
 public:
  explicit Steering(nn::Module<T>& model, double beta = 1.0, double c = 0.5)
      : model_(model), unit_(std::make_shared<nn::CTU<T>>(beta, c)) {
    unit_->requires_grad_(false);
    const auto params = model.parameters();
    if (!params.empty()) unit_->to(params.front().device());
    model_.template replace_all<nn::ReLU<T>>([&](const std::string& path, std::shared_ptr<nn::ReLU<T>> relu) {
      originals_.emplace_back(path, relu);
      return unit_;
    });
  }
  Steering(const Steering&) = delete;
  Steering& operator=(const Steering&) = delete;
  ~Steering() { restore(); }

  void set_beta(double beta) { unit_->set_beta(beta); }
  void set_c(double c) { unit_->set_c(c); }
  double beta() const { return double(unit_->beta().item()); }
  // How many ReLU modules were swapped.
  std::size_t sites() const { return originals_.size(); }
  const std::vector<std::pair<std::string, std::shared_ptr<nn::ReLU<T>>>>& replaced() const { return originals_; }
  nn::CTU<T>& unit() { return *unit_; }
  // Puts the original ReLU modules back (idempotent; the destructor calls it).
  void restore() {
    for (auto& [path, relu] : originals_) model_.replace_module(path, relu);
    originals_.clear();
  }

 private:
  nn::Module<T>& model_;
  std::shared_ptr<nn::CTU<T>> unit_;
  std::vector<std::pair<std::string, std::shared_ptr<nn::ReLU<T>>>> originals_;
};

// Trainable CT: replaces every ReLU module of `model` by its own CTU with one (beta, c) per
// channel (dim 1 of a 4-d activation, the last dim otherwise), found by running `sample`
// through the model once. A module called at several sites keeps one unit (they must agree on
// the channel count). Initialised as the paper's code: beta = sigmoid(1.386) ~ 0.8, c = 0.5.
// Returns the units (their rho_beta, rho_c are the parameters to train; freeze the rest).
template <class T>
std::vector<std::shared_ptr<nn::CTU<T>>> make_trainable(nn::Module<T>& model, const Tensor<T>& sample,
                                                        double beta = 0.8, double c = 0.5) {
  std::map<nn::Module<T>*, std::pair<std::int64_t, std::int64_t>> sites;  // module -> (channels, dim)
  std::vector<std::pair<nn::Module<T>*, int>> hooks;
  for (auto& [name, m] : model.named_modules()) {
    if (!dynamic_cast<nn::ReLU<T>*>(m)) continue;
    hooks.emplace_back(m, m->register_forward_hook([&sites](nn::Module<T>& mod, const Tensor<T>&, const Tensor<T>& y) {
      check(y.dim() >= 1, "make_trainable", "a ReLU output without a channel dim: ", y.describe());
      const std::int64_t dim = y.dim() == 4 ? 1 : y.dim() - 1;
      const std::pair<std::int64_t, std::int64_t> site{y.shape()[dim], dim};
      auto [it, fresh] = sites.emplace(&mod, site);
      check(fresh || it->second == site, "make_trainable", "a ReLU module called at two sites with ",
            it->second.first, " and ", site.first, " channels cannot share per-channel parameters");
    }));
  }
  {
    NoGradGuard no_grad;
    const bool was = model.is_training();
    model.eval();
    model(sample);
    model.train(was);
  }
  for (auto& [m, id] : hooks) m->remove_forward_hook(id);
  std::map<nn::Module<T>*, std::shared_ptr<nn::CTU<T>>> units;
  const auto params = model.parameters();
  model.template replace_all<nn::ReLU<T>>([&](const std::string& path, std::shared_ptr<nn::ReLU<T>> relu) {
    auto it = sites.find(relu.get());
    check(it != sites.end(), "make_trainable", "the ReLU at \"", path, "\" did not run on the sample input");
    auto& unit = units[relu.get()];
    if (!unit) {
      unit = std::make_shared<nn::CTU<T>>(beta, c, it->second.first, it->second.second);
      if (!params.empty()) unit->to(params.front().device());
    }
    return unit;
  });
  std::vector<std::shared_ptr<nn::CTU<T>>> out;
  for (auto& [m, u] : units) out.push_back(u);
  return out;
}

}  // namespace ligm::methods::curvature
