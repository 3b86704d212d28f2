// RMSprop (Hinton's lecture 6e) as torch.optim.RMSprop: a running mean of squared gradients
// divides each step; optionally centred (less the square of the running mean gradient), with
// momentum and L2 weight decay:
//   g += weight_decay p;  s = alpha s + (1 - alpha) g^2;  [centred: m = alpha m + (1 - alpha) g,
//   s~ = s - m^2];  d = g / (sqrt(s~) + eps);  [momentum: b = momentum b + d, d = b];  p -= lr d
#pragma once
#include "ligm/optim/optimizer.hpp"

namespace ligm::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0;
  bool centered = false;
};

template <class T = float>
class RMSprop : public Optimizer<T, RMSpropOptions> {
 public:
  using Base = Optimizer<T, RMSpropOptions>;
  RMSprop(std::vector<Tensor<T>> params, RMSpropOptions o = {}) : Base(std::move(params), o) { validate(o); }
  RMSprop(std::vector<typename Base::Group> groups, RMSpropOptions o = {}) : Base(std::move(groups), o) { validate(o); }
  const char* name() const override { return "RMSprop"; }

 protected:
  void update(Tensor<T>& p, const Tensor<T>& grad, typename Base::State& st, const RMSpropOptions& o) override {
    Tensor<T> g = grad;
    if (o.weight_decay != 0) g = add(g, mul(p, T(o.weight_decay)));
    auto& square_avg = Base::buffer(st, "square_avg", p);
    square_avg.mul_(T(o.alpha)).add_(mul(g, g), T(1 - o.alpha));
    Tensor<T> avg;
    if (o.centered) {
      auto& grad_avg = Base::buffer(st, "grad_avg", p);
      grad_avg.mul_(T(o.alpha)).add_(g, T(1 - o.alpha));
      avg = sqrt(sub(square_avg, mul(grad_avg, grad_avg)));
    } else {
      avg = sqrt(square_avg);
    }
    const Tensor<T> step = div(g, add(avg, T(o.eps)));
    if (o.momentum > 0) {
      auto& buf = Base::buffer(st, "momentum_buffer", p);
      buf.mul_(T(o.momentum)).add_(step);
      p.add_(buf, T(-o.lr));
    } else {
      p.add_(step, T(-o.lr));
    }
  }

 private:
  static void validate(const RMSpropOptions& o) {
    check(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0 && o.momentum >= 0, "RMSprop",
          "lr, eps, weight_decay and momentum must be >= 0");
    check(o.alpha >= 0 && o.alpha <= 1, "RMSprop", "alpha must be in [0, 1], got ", o.alpha);
  }
};

}  // namespace ligm::optim
