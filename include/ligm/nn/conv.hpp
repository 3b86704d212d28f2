// Conv1d, Conv2d, ConvTranspose2d, with PyTorch's initialisation (kaiming_uniform, a =
// sqrt(5), on the weight; U(+-1/sqrt(fan_in)) on the bias).
#pragma once
#include <cmath>
#include <string>

#include "ligm/nn/init.hpp"
#include "ligm/nn/module.hpp"
#include "ligm/ops/conv.hpp"

namespace ligm::nn {
namespace detail {
template <class T>
void init_conv(const Tensor<T>& weight, const Tensor<T>& bias, Generator& gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", "leaky_relu", gen);
  if (bias.defined()) {
    const double fan_in = init::fans(weight).first;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(fan_in) : 0.0;
    init::uniform_(bias, -bound, bound, gen);
  }
}
inline std::string pair_str(Pair2 p) {
  return "(" + std::to_string(p.h) + ", " + std::to_string(p.w) + ")";
}
}  // namespace detail

template <class T = float>
class Conv2d : public Module<T> {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, Pair2 kernel_size,
         Conv2dOptions options = {}, bool bias = true, Generator& gen = default_generator())
      : in_channels(in_channels), out_channels(out_channels), kernel_size(kernel_size), options(options) {
    check(options.groups > 0 && in_channels % options.groups == 0 && out_channels % options.groups == 0,
          "Conv2d", "in_channels ", in_channels, " and out_channels ", out_channels,
          " must be divisible by groups ", options.groups);
    weight = this->register_parameter(
        "weight", Tensor<T>::empty({out_channels, in_channels / options.groups, kernel_size.h, kernel_size.w}));
    if (bias) this->bias = this->register_parameter("bias", Tensor<T>::empty({out_channels}));
    detail::init_conv(weight, this->bias, gen);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return conv2d(x, weight, bias, options); }
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override {
    return std::to_string(in_channels) + ", " + std::to_string(out_channels) +
           ", kernel_size=" + detail::pair_str(kernel_size) + ", stride=" + detail::pair_str(options.stride) +
           (options.padding.h || options.padding.w ? ", padding=" + detail::pair_str(options.padding) : "") +
           (options.groups > 1 ? ", groups=" + std::to_string(options.groups) : "") +
           (bias.defined() ? "" : ", bias=False");
  }
  std::int64_t in_channels, out_channels;
  Pair2 kernel_size;
  Conv2dOptions options;
  Tensor<T> weight, bias;
};

template <class T = float>
class Conv1d : public Module<T> {
 public:
  Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
         Conv1dOptions options = {}, bool bias = true, Generator& gen = default_generator())
      : in_channels(in_channels), out_channels(out_channels), kernel_size(kernel_size), options(options) {
    check(options.groups > 0 && in_channels % options.groups == 0 && out_channels % options.groups == 0,
          "Conv1d", "in_channels ", in_channels, " and out_channels ", out_channels,
          " must be divisible by groups ", options.groups);
    weight = this->register_parameter("weight",
                                      Tensor<T>::empty({out_channels, in_channels / options.groups, kernel_size}));
    if (bias) this->bias = this->register_parameter("bias", Tensor<T>::empty({out_channels}));
    detail::init_conv(weight, this->bias, gen);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return conv1d(x, weight, bias, options); }
  std::string type_name() const override { return "Conv1d"; }
  std::string extra_repr() const override {
    return std::to_string(in_channels) + ", " + std::to_string(out_channels) +
           ", kernel_size=(" + std::to_string(kernel_size) + ",), stride=(" + std::to_string(options.stride) + ",)";
  }
  std::int64_t in_channels, out_channels, kernel_size;
  Conv1dOptions options;
  Tensor<T> weight, bias;
};

// weight [in, out / groups, kh, kw], as PyTorch.
template <class T = float>
class ConvTranspose2d : public Module<T> {
 public:
  ConvTranspose2d(std::int64_t in_channels, std::int64_t out_channels, Pair2 kernel_size,
                  ConvTranspose2dOptions options = {}, bool bias = true, Generator& gen = default_generator())
      : in_channels(in_channels), out_channels(out_channels), kernel_size(kernel_size), options(options) {
    check(options.groups > 0 && in_channels % options.groups == 0 && out_channels % options.groups == 0,
          "ConvTranspose2d", "in_channels ", in_channels, " and out_channels ", out_channels,
          " must be divisible by groups ", options.groups);
    weight = this->register_parameter(
        "weight", Tensor<T>::empty({in_channels, out_channels / options.groups, kernel_size.h, kernel_size.w}));
    if (bias) this->bias = this->register_parameter("bias", Tensor<T>::empty({out_channels}));
    detail::init_conv(weight, this->bias, gen);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return conv_transpose2d(x, weight, bias, options); }
  std::string type_name() const override { return "ConvTranspose2d"; }
  std::string extra_repr() const override {
    return std::to_string(in_channels) + ", " + std::to_string(out_channels) +
           ", kernel_size=" + detail::pair_str(kernel_size) + ", stride=" + detail::pair_str(options.stride);
  }
  std::int64_t in_channels, out_channels;
  Pair2 kernel_size;
  ConvTranspose2dOptions options;
  Tensor<T> weight, bias;
};

}  // namespace ligm::nn
