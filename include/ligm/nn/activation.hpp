// Activation modules and Dropout: thin modules over the functional ops, so that a model's
// activations can be found and swapped by type (Module::replace_all).
#pragma once
#include <string>

#include "ligm/nn/module.hpp"
#include "ligm/ops/elementwise.hpp"
#include "ligm/ops/nn_misc.hpp"

namespace ligm::nn {

#define LIGM_ACTIVATION(Name, expr)                                              \
  template <class T = float>                                                     \
  class Name : public Module<T> {                                                \
   public:                                                                       \
    Tensor<T> forward(const Tensor<T>& x) override { return expr; }             \
    std::string type_name() const override { return #Name; }                    \
  };
LIGM_ACTIVATION(ReLU, relu(x))
LIGM_ACTIVATION(SiLU, silu(x))
LIGM_ACTIVATION(Tanh, tanh(x))
LIGM_ACTIVATION(Sigmoid, sigmoid(x))
#undef LIGM_ACTIVATION

template <class T = float>
class LeakyReLU : public Module<T> {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor<T> forward(const Tensor<T>& x) override { return leaky_relu(x, negative_slope); }
  std::string type_name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override { return "negative_slope=" + repr_number(negative_slope); }
  double negative_slope;
};

template <class T = float>
class GELU : public Module<T> {
 public:
  explicit GELU(std::string approximate = "none") : approximate(std::move(approximate)) {}
  Tensor<T> forward(const Tensor<T>& x) override { return gelu(x, approximate); }
  std::string type_name() const override { return "GELU"; }
  std::string extra_repr() const override { return "approximate='" + approximate + "'"; }
  std::string approximate;
};

template <class T = float>
class Softplus : public Module<T> {
 public:
  explicit Softplus(double beta = 1.0, double threshold = 20.0) : beta(beta), threshold(threshold) {}
  Tensor<T> forward(const Tensor<T>& x) override { return softplus(x, beta, threshold); }
  std::string type_name() const override { return "Softplus"; }
  std::string extra_repr() const override {
    return "beta=" + repr_number(beta) + ", threshold=" + repr_number(threshold);
  }
  double beta, threshold;
};

// Zeroes elements with probability p in training (scaling the rest by 1/(1-p)); the identity
// in eval.
template <class T = float>
class Dropout : public Module<T> {
 public:
  explicit Dropout(double p = 0.5, Generator& gen = default_generator()) : p(p), gen_(&gen) {
    check(p >= 0 && p <= 1, "Dropout", "p must be in [0, 1], got ", p);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return dropout(x, p, this->is_training(), *gen_); }
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override { return "p=" + repr_number(p); }
  double p;

 private:
  Generator* gen_;
};

}  // namespace ligm::nn
