// SGD with momentum, dampening, Nesterov and (L2) weight decay, as torch.optim.SGD.
#pragma once
#include "ligm/optim/optimizer.hpp"

namespace ligm::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};

template <class T = float>
class SGD : public Optimizer<T, SGDOptions> {
 public:
  using Base = Optimizer<T, SGDOptions>;
  SGD(std::vector<Tensor<T>> params, SGDOptions o = {}) : Base(std::move(params), o) { validate(o); }
  SGD(std::vector<typename Base::Group> groups, SGDOptions o = {}) : Base(std::move(groups), o) { validate(o); }
  const char* name() const override { return "SGD"; }

 protected:
  void update(Tensor<T>& p, const Tensor<T>& grad, typename Base::State& st, const SGDOptions& o) override {
    Tensor<T> d = grad;
    if (o.weight_decay != 0) d = add(d, mul(p, T(o.weight_decay)));
    if (o.momentum != 0) {
      auto it = st.buffers.find("momentum_buffer");
      if (it == st.buffers.end()) {
        it = st.buffers.emplace("momentum_buffer", d.clone()).first;
      } else {
        it->second.mul_(T(o.momentum)).add_(d, T(1 - o.dampening));
      }
      d = o.nesterov ? add(d, mul(it->second, T(o.momentum))) : it->second;
    }
    p.add_(d, T(-o.lr));
  }

 private:
  static void validate(const SGDOptions& o) {
    check(o.lr >= 0 && o.momentum >= 0 && o.weight_decay >= 0, "SGD", "lr, momentum and weight_decay must be >= 0");
    check(!o.nesterov || (o.momentum > 0 && o.dampening == 0), "SGD",
          "Nesterov momentum needs momentum > 0 and dampening 0");
  }
};

}  // namespace ligm::optim
