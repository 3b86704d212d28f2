// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), with
// PyTorch's arithmetic: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
#pragma once
#include <cmath>

#include "ligm/optim/optimizer.hpp"

namespace ligm::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};

// AdamW's options: Adam's with torch.optim.AdamW's default weight decay.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
};

template <class T, bool Decoupled, class Options>
class AdamBase : public Optimizer<T, Options> {
 public:
  using Base = Optimizer<T, Options>;
  AdamBase(std::vector<Tensor<T>> params, Options o) : Base(std::move(params), o) { validate(o); }
  AdamBase(std::vector<typename Base::Group> groups, Options o) : Base(std::move(groups), o) { validate(o); }

 protected:
  void update(Tensor<T>& p, const Tensor<T>& grad, typename Base::State& st, const Options& o) override {
    auto& m = Base::buffer(st, "exp_avg", p);
    auto& v = Base::buffer(st, "exp_avg_sq", p);
    const double bc1 = 1 - std::pow(o.beta1, double(st.step));
    const double bc2 = 1 - std::pow(o.beta2, double(st.step));
    if (p.is_contiguous() && m.is_contiguous() && v.is_contiguous()) {
      // One fused pass (backend adam_step) over the parameter and its two moments.
      const Tensor<T> g = grad.contiguous();
      for (const Tensor<T>* t : {&p, &m, &v}) t->storage()->bump_version();
      ops_detail::be(p).adam_step(p.numel(), p.data_ptr(), g.data_ptr(), m.data_ptr(), v.data_ptr(),
                                  {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, bc1, bc2, Decoupled});
      return;
    }
    // The same step as elementwise ops, for parameters that are strided views.
    Tensor<T> g = grad;
    if (o.weight_decay != 0) {
      if (Decoupled) {
        p.mul_(T(1 - o.lr * o.weight_decay));
      } else {
        g = add(g, mul(p, T(o.weight_decay)));
      }
    }
    m.mul_(T(o.beta1)).add_(g, T(1 - o.beta1));
    v.mul_(T(o.beta2)).add_(mul(g, g), T(1 - o.beta2));
    auto denom = add(div(sqrt(v), T(std::sqrt(bc2))), T(o.eps));
    p.add_(div(m, denom), T(-o.lr / bc1));
  }

 private:
  static void validate(const Options& o) {
    check(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0, "Adam", "lr, eps and weight_decay must be >= 0");
    check(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "Adam", "betas must be in [0, 1), got (",
          o.beta1, ", ", o.beta2, ")");
  }
};

template <class T = float>
class Adam : public AdamBase<T, false, AdamOptions> {
 public:
  using AdamBase<T, false, AdamOptions>::AdamBase;
  Adam(std::vector<Tensor<T>> params, AdamOptions o = {}) : AdamBase<T, false, AdamOptions>(std::move(params), o) {}
  const char* name() const override { return "Adam"; }
};

template <class T = float>
class AdamW : public AdamBase<T, true, AdamWOptions> {
 public:
  using AdamBase<T, true, AdamWOptions>::AdamBase;
  AdamW(std::vector<Tensor<T>> params, AdamWOptions o = {}) : AdamBase<T, true, AdamWOptions>(std::move(params), o) {}
  const char* name() const override { return "AdamW"; }
};

}  // namespace ligm::optim
