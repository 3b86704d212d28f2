// MaxPool2d, AvgPool2d, AdaptiveAvgPool2d.
#pragma once
#include "ligm/nn/module.hpp"
#include "ligm/ops/pool.hpp"

namespace ligm::nn {

template <class T = float>
class MaxPool2d : public Module<T> {
 public:
  explicit MaxPool2d(MaxPool2dOptions options) : options(options) {}
  explicit MaxPool2d(Pair2 kernel_size) : options{.kernel_size = kernel_size} {}
  Tensor<T> forward(const Tensor<T>& x) override { return max_pool2d(x, options); }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string extra_repr() const override {
    return "kernel_size=" + std::to_string(options.kernel_size.h) + ", stride=" +
           std::to_string(options.stride ? options.stride->h : options.kernel_size.h);
  }
  MaxPool2dOptions options;
};

template <class T = float>
class AvgPool2d : public Module<T> {
 public:
  explicit AvgPool2d(AvgPool2dOptions options) : options(options) {}
  explicit AvgPool2d(Pair2 kernel_size) : options{.kernel_size = kernel_size} {}
  Tensor<T> forward(const Tensor<T>& x) override { return avg_pool2d(x, options); }
  std::string type_name() const override { return "AvgPool2d"; }
  std::string extra_repr() const override { return "kernel_size=" + std::to_string(options.kernel_size.h); }
  AvgPool2dOptions options;
};

template <class T = float>
class AdaptiveAvgPool2d : public Module<T> {
 public:
  explicit AdaptiveAvgPool2d(Pair2 output_size) : output_size(output_size) {}
  Tensor<T> forward(const Tensor<T>& x) override { return adaptive_avg_pool2d(x, output_size); }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override {
    return "output_size=(" + std::to_string(output_size.h) + ", " + std::to_string(output_size.w) + ")";
  }
  Pair2 output_size;
};

// interpolate as a module (torch.nn.Upsample): a fixed output size or scale factor, "nearest"
// or "bilinear".
template <class T = float>
class Upsample : public Module<T> {
 public:
  explicit Upsample(InterpolateOptions options) : options(std::move(options)) {}
  Tensor<T> forward(const Tensor<T>& x) override { return interpolate(x, options); }
  std::string type_name() const override { return "Upsample"; }
  std::string extra_repr() const override {
    std::string r = options.size ? "size=(" + std::to_string(options.size->h) + ", " + std::to_string(options.size->w) + ")"
                                 : "scale_factor=" + repr_number(options.scale_factor.value_or(1.0));
    return r + ", mode='" + options.mode + "'";
  }
  InterpolateOptions options;
};

}  // namespace ligm::nn
