// Adagrad (Duchi et al., 2011) as torch.optim.Adagrad: each element's step is divided by the
// root of the sum of its squared gradients so far, with learning-rate decay and L2 weight decay:
//   g += weight_decay p;  lr_t = lr / (1 + (t - 1) lr_decay);  s += g^2;  p -= lr_t g / (sqrt(s) + eps)
// s starts at initial_accumulator_value.
#pragma once
#include "ligm/optim/optimizer.hpp"

namespace ligm::optim {

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0, weight_decay = 0, initial_accumulator_value = 0, eps = 1e-10;
};

template <class T = float>
class Adagrad : public Optimizer<T, AdagradOptions> {
 public:
  using Base = Optimizer<T, AdagradOptions>;
  Adagrad(std::vector<Tensor<T>> params, AdagradOptions o = {}) : Base(std::move(params), o) { validate(o); }
  Adagrad(std::vector<typename Base::Group> groups, AdagradOptions o = {}) : Base(std::move(groups), o) { validate(o); }
  const char* name() const override { return "Adagrad"; }

 protected:
  void init_state(const Tensor<T>& p, typename Base::State& st, const AdagradOptions& o) override {
    if (!st.buffers.count("sum")) st.buffers.emplace("sum", full_like(p, T(o.initial_accumulator_value)));
  }
  void update(Tensor<T>& p, const Tensor<T>& grad, typename Base::State& st, const AdagradOptions& o) override {
    Tensor<T> g = grad;
    if (o.weight_decay != 0) g = add(g, mul(p, T(o.weight_decay)));
    const double lr = o.lr / (1 + double(st.step - 1) * o.lr_decay);
    auto& state_sum = Base::buffer(st, "sum", p);
    state_sum.add_(mul(g, g));
    p.add_(div(g, add(sqrt(state_sum), T(o.eps))), T(-lr));
  }

 private:
  static void validate(const AdagradOptions& o) {
    check(o.lr >= 0 && o.lr_decay >= 0 && o.weight_decay >= 0 && o.initial_accumulator_value >= 0 && o.eps >= 0,
          "Adagrad", "lr, lr_decay, weight_decay, initial_accumulator_value and eps must be >= 0");
  }
};

}  // namespace ligm::optim
