// Activation modules and Dropout: thin modules over the functional ops, so that a model's
// activations can be found and swapped by type (Module::replace_all).
#pragma once
#include <string>

#include "ligm/nn/module.hpp"
#include "ligm/ops/curvature.hpp"
#include "ligm/ops/elementwise.hpp"
#include "ligm/ops/nn_misc.hpp"
#include "ligm/ops/softmax.hpp"

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

template <class T = float>
class ELU : public Module<T> {
 public:
  explicit ELU(double alpha = 1.0) : alpha(alpha) {}
  Tensor<T> forward(const Tensor<T>& x) override { return elu(x, alpha); }
  std::string type_name() const override { return "ELU"; }
  std::string extra_repr() const override { return "alpha=" + repr_number(alpha); }
  double alpha;
};

// softmax / log_softmax along `dim` (torch.nn.Softmax(dim), LogSoftmax(dim)).
template <class T = float>
class Softmax : public Module<T> {
 public:
  explicit Softmax(std::int64_t dim = -1) : dim(dim) {}
  Tensor<T> forward(const Tensor<T>& x) override { return softmax(x, dim); }
  std::string type_name() const override { return "Softmax"; }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim); }
  std::int64_t dim;
};
template <class T = float>
class LogSoftmax : public Module<T> {
 public:
  explicit LogSoftmax(std::int64_t dim = -1) : dim(dim) {}
  Tensor<T> forward(const Tensor<T>& x) override { return log_softmax(x, dim); }
  std::string type_name() const override { return "LogSoftmax"; }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim); }
  std::int64_t dim;
};

// The Curvature Tuning unit (ops/curvature.hpp) as a module. beta and c are stored
// unconstrained behind a sigmoid, as in the paper's code: parameters "rho_beta" and "rho_c",
// beta = sigmoid(rho_beta), c = sigmoid(rho_c). channels = 0: one (beta, c) shared by every
// element (steering); channels > 0: one per channel along `dim` (1 for NCHW, -1 for [B, D] or
// [B, L, D]; trainable CT). beta = 1 stores rho_beta = +inf and is ReLU bit for bit.
template <class T = float>
class CTU : public Module<T> {
 public:
  explicit CTU(double beta = 0.8, double c = 0.5, std::int64_t channels = 0, std::int64_t dim = 1)
      : channels(channels), dim(dim) {
    check(channels >= 0, "CTU", "channels must be >= 0, got ", channels);
    const Shape s{channels > 0 ? channels : 1};
    rho_beta = this->register_parameter("rho_beta", full<T>(s, T(logit(beta, "beta"))));
    rho_c = this->register_parameter("rho_c", full<T>(s, T(logit(c, "c"))));
  }
  Tensor<T> forward(const Tensor<T>& x) override { return ctu(x, sigmoid(rho_beta), sigmoid(rho_c), dim); }
  // Sets every beta (and c) to one value, keeping the parameters' shapes and devices.
  void set_beta(double beta) { fill(rho_beta, logit(beta, "beta")); }
  void set_c(double c) { fill(rho_c, logit(c, "c")); }
  Tensor<T> beta() const { return sigmoid(rho_beta.detach()); }
  Tensor<T> c() const { return sigmoid(rho_c.detach()); }
  std::string type_name() const override { return "CTU"; }
  std::string extra_repr() const override {
    return channels > 0 ? "channels=" + std::to_string(channels) + ", dim=" + std::to_string(dim)
                        : "beta=" + repr_number(double(beta().item())) + ", c=" + repr_number(double(c().item()));
  }
  std::int64_t channels, dim;
  Tensor<T> rho_beta, rho_c;

 private:
  static double logit(double p, const char* what) {
    check(p >= 0 && p <= 1, "CTU", what, " must be in [0, 1], got ", p);
    return std::log(p) - std::log1p(-p);  // p = 1: +inf (sigmoid(+inf) = 1, the ReLU fast path)
  }
  static void fill(Tensor<T>& t, double v) {
    NoGradGuard no_grad;
    t.fill_(T(v));
  }
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
