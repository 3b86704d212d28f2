// LARS (You et al., "Large Batch Training of Convolutional Networks", 2017): SGD with
// momentum whose step for each weight tensor is scaled by a trust ratio
//   eta * ||w|| / (||g|| + weight_decay * ||w||),
// applied to (g + weight_decay * w). As in SimCLR/BYOL practice, 1-d tensors (biases, norm
// scales) skip both the adaptation and the weight decay when exclude_1d is set.
#pragma once
#include <cmath>

#include "ligm/optim/optimizer.hpp"

namespace ligm::optim {

struct LARSOptions {
  double lr = 0.1;
  double momentum = 0.9, weight_decay = 0, eta = 0.001, eps = 1e-8;
  bool exclude_1d = true;
};

template <class T = float>
class LARS : public Optimizer<T, LARSOptions> {
 public:
  using Base = Optimizer<T, LARSOptions>;
  LARS(std::vector<Tensor<T>> params, LARSOptions o = {}) : Base(std::move(params), o) { validate(o); }
  LARS(std::vector<typename Base::Group> groups, LARSOptions o = {}) : Base(std::move(groups), o) { validate(o); }
  const char* name() const override { return "LARS"; }

 protected:
  void update(Tensor<T>& p, const Tensor<T>& grad, typename Base::State& st, const LARSOptions& o) override {
    Tensor<T> d = grad;
    if (!(o.exclude_1d && p.dim() <= 1)) {
      const double w_norm = double(norm(p, 2.0).item()), g_norm = double(norm(grad, 2.0).item());
      const double trust = (w_norm > 0 && g_norm > 0) ? o.eta * w_norm / (g_norm + o.weight_decay * w_norm + o.eps) : 1.0;
      if (o.weight_decay != 0) d = add(d, mul(p, T(o.weight_decay)));
      d = mul(d, T(trust));
    }
    auto it = st.buffers.find("momentum_buffer");
    if (it == st.buffers.end()) it = st.buffers.emplace("momentum_buffer", zeros_like(p)).first;
    it->second.mul_(T(o.momentum)).add_(d);
    p.add_(it->second, T(-o.lr));
  }

 private:
  static void validate(const LARSOptions& o) {
    check(o.lr >= 0 && o.momentum >= 0 && o.weight_decay >= 0 && o.eta > 0, "LARS",
          "lr, momentum and weight_decay must be >= 0 and eta > 0");
  }
};

}  // namespace ligm::optim
