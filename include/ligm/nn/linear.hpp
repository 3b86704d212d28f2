// Linear, Identity, Flatten, and WeightAdapter (the interface of a module that adapts a weight).
#pragma once
#include <cmath>

#include "ligm/nn/init.hpp"
#include "ligm/nn/module.hpp"
#include "ligm/ops/matmul.hpp"

namespace ligm::nn {

// y = x W^T + b; weight [out, in], bias [out]. PyTorch's initialisation: kaiming_uniform with
// a = sqrt(5) (U(+-1/sqrt(in))) for the weight, U(+-1/sqrt(in)) for the bias.
template <class T = float>
class Linear : public Module<T> {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true,
         Generator& gen = default_generator())
      : in_features(in_features), out_features(out_features) {
    weight = this->register_parameter("weight", Tensor<T>::empty({out_features, in_features}));
    init::kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", "leaky_relu", gen);
    if (bias) {
      this->bias = this->register_parameter("bias", Tensor<T>::empty({out_features}));
      const double bound = in_features > 0 ? 1.0 / std::sqrt(double(in_features)) : 0.0;
      init::uniform_(this->bias, -bound, bound, gen);
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override { return linear(x, weight, bias); }
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override {
    return "in_features=" + std::to_string(in_features) + ", out_features=" + std::to_string(out_features) +
           ", bias=" + (bias.defined() ? "True" : "False");
  }

  std::int64_t in_features, out_features;
  Tensor<T> weight, bias;
};

// A module that stands in for a weight: adapt(W) returns the weight to use in place of the
// frozen W (W + BA for a LoRA adapter). Layers that use a weight directly rather than through
// a Linear child (MultiheadAttention's packed in-projection) accept one.
template <class T = float>
class WeightAdapter : public Module<T> {
 public:
  virtual Tensor<T> adapt(const Tensor<T>& weight) = 0;
};

template <class T = float>
class Identity : public Module<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

template <class T = float>
class Flatten : public Module<T> {
 public:
  explicit Flatten(std::int64_t start_dim = 1, std::int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor<T> forward(const Tensor<T>& x) override { return x.flatten(start_dim, end_dim); }
  std::string type_name() const override { return "Flatten"; }
  std::string extra_repr() const override {
    return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
  }
  std::int64_t start_dim, end_dim;
};

// Splits dim into `sizes` (torch.nn.Unflatten): [N, 64] -> [N, 4, 4, 4] with (1, {4, 4, 4}).
template <class T = float>
class Unflatten : public Module<T> {
 public:
  Unflatten(std::int64_t dim, Shape sizes) : dim(dim), sizes(std::move(sizes)) {}
  Tensor<T> forward(const Tensor<T>& x) override {
    const std::int64_t d = wrap_sized_dim(dim, x.dim(), "Unflatten");
    std::int64_t product = 1;
    bool fits = true;
    for (auto n : sizes) fits = fits && n >= 0 && !__builtin_mul_overflow(product, n, &product);
    check(fits && product == x.shape()[std::size_t(d)], "Unflatten", "sizes ", sizes, " do not multiply to dim ", d,
          " of ", x.shape());
    Shape s(x.shape().begin(), x.shape().begin() + d);
    s.insert(s.end(), sizes.begin(), sizes.end());
    s.insert(s.end(), x.shape().begin() + d + 1, x.shape().end());
    return x.reshape(s);
  }
  std::string type_name() const override { return "Unflatten"; }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim) + ", unflattened_size=" + shape_str(sizes); }
  std::int64_t dim;
  Shape sizes;
};

}  // namespace ligm::nn
