// BatchNorm1d/2d, LayerNorm, GroupNorm, RMSNorm: parameters and running statistics named as
// in PyTorch (weight, bias, running_mean, running_var, num_batches_tracked), over the fused
// functional ops of ops/norm.hpp.
#pragma once
#include <optional>
#include <string>
#include <typeinfo>

#include "ligm/nn/activation.hpp"
#include "ligm/nn/init.hpp"
#include "ligm/nn/module.hpp"
#include "ligm/ops/norm.hpp"

namespace ligm::nn {

template <class T>
class BatchNormBase : public Module<T> {
 public:
  BatchNormBase(std::int64_t num_features, double eps, double momentum, bool affine, bool track_running_stats)
      : num_features(num_features), eps(eps), momentum(momentum) {
    if (affine) {
      weight = this->register_parameter("weight", ones<T>({num_features}));
      bias = this->register_parameter("bias", zeros<T>({num_features}));
    }
    if (track_running_stats) {
      running_mean = this->register_buffer("running_mean", zeros<T>({num_features}));
      running_var = this->register_buffer("running_var", ones<T>({num_features}));
      num_batches_tracked = this->register_buffer("num_batches_tracked", zeros<T>({}));
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    check_input(x);
    // Batch statistics in training, or always when no running statistics are kept.
    const bool use_batch = this->is_training() || !running_mean.defined();
    if (this->is_training() && num_batches_tracked.defined()) {
      NoGradGuard no_grad;
      num_batches_tracked.add_(T(1));
    }
    if (this->is_training() && frozen_channels.defined() && running_mean.defined()) return forward_frozen(x);
    return batch_norm(x, use_batch && !this->is_training() ? Tensor<T>() : running_mean,
                      use_batch && !this->is_training() ? Tensor<T>() : running_var, weight, bias, use_batch,
                      momentum, eps);
  }
  // relu(forward(x)), as one op (batch_norm_relu) in training with batch statistics: what a
  // block calls for its batch norm and a plain ReLU after it (models/common.hpp, bn_relu).
  Tensor<T> forward_relu(const Tensor<T>& x) {
    profiler::Scope scope([this] { return this->type_name() + "+ReLU"; });
    if (!this->is_training() || (frozen_channels.defined() && running_mean.defined())) return relu(forward(x));
    check_input(x);
    if (num_batches_tracked.defined()) {
      NoGradGuard no_grad;
      num_batches_tracked.add_(T(1));
    }
    return batch_norm_relu(x, running_mean, running_var, weight, bias, true, momentum, eps);
  }
  // Whether this module fuses with `next`: it is exactly a BatchNorm1d or BatchNorm2d (not a
  // subclass), next is exactly a ReLU, and both are plain (not replaced by module surgery, no
  // hooks), so that a swapped or hooked module runs as itself.
  bool fuses_with(const Module<T>& next) const {
    return exact_type() && this->plain() && next.plain() && typeid(next) == typeid(ReLU<T>);
  }
  // forward_relu(x) where fuses_with(next): what Sequential asks of its children.
  std::optional<Tensor<T>> forward_fused(Module<T>& next, const Tensor<T>& x) override {
    if (!fuses_with(next)) return std::nullopt;
    return forward_relu(x);
  }
  // relu(forward(x) + residual), as one op (batch_norm_add_relu) likewise: the end of a
  // residual block (models/common.hpp, bn_add_relu).
  Tensor<T> forward_add_relu(const Tensor<T>& x, const Tensor<T>& residual) {
    profiler::Scope scope([this] { return this->type_name() + "+add+ReLU"; });
    if (!this->is_training() || (frozen_channels.defined() && running_mean.defined()))
      return relu(add(forward(x), residual));
    check_input(x);
    if (num_batches_tracked.defined()) {
      NoGradGuard no_grad;
      num_batches_tracked.add_(T(1));
    }
    return batch_norm_add_relu(x, residual, running_mean, running_var, weight, bias, true, momentum, eps);
  }
  // Channels (a [C] mask, true = frozen) that normalise with their running statistics in
  // training mode too and never update them: their outputs equal eval mode's and their
  // gradient is dy * weight / sqrt(running_var + eps). Undefined (the default): none. Their
  // weight and bias still receive gradients; freeze those with the optimizer's update mask.
  // Eidetic learning freezes the channels that an earlier task owns this way.
  Tensor<bool> frozen_channels;

  std::string extra_repr() const override {
    return std::to_string(num_features) + ", eps=" + repr_number(eps) + ", momentum=" + repr_number(momentum) +
           ", affine=" + (weight.defined() ? "True" : "False") +
           ", track_running_stats=" + (running_mean.defined() ? "True" : "False");
  }
  std::int64_t num_features;
  double eps, momentum;
  Tensor<T> weight, bias, running_mean, running_var, num_batches_tracked;

 protected:
  virtual void check_input(const Tensor<T>& x) const = 0;
  // True when the dynamic type is exactly the class that says so (fuses_with's condition).
  virtual bool exact_type() const { return false; }

 private:
  // Training mode with frozen channels: both normalisations, each channel takes its own; the
  // running statistics of the frozen channels are put back after the batch's update.
  Tensor<T> forward_frozen(const Tensor<T>& x) {
    check(frozen_channels.dim() == 1 && frozen_channels.shape()[0] == num_features, this->type_name(),
          "frozen_channels must have shape [", num_features, "], got ", frozen_channels.shape());
    Shape cs(static_cast<std::size_t>(x.dim()), 1);
    cs[1] = num_features;
    const auto frozen = frozen_channels.to(x.device());
    Tensor<T> mean0, var0;
    {
      NoGradGuard no_grad;
      mean0 = running_mean.clone();
      var0 = running_var.clone();
    }
    auto y_batch = batch_norm(x, running_mean, running_var, weight, bias, true, momentum, eps);
    auto y_frozen = batch_norm(x, mean0, var0, weight, bias, false, momentum, eps);
    {
      NoGradGuard no_grad;
      running_mean.copy_(where(frozen, mean0, running_mean));
      running_var.copy_(where(frozen, var0, running_var));
    }
    return where(frozen.reshape(cs), y_frozen, y_batch);
  }
};

// Input [N, C] or [N, C, L].
template <class T = float>
class BatchNorm1d : public BatchNormBase<T> {
 public:
  explicit BatchNorm1d(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNormBase<T>(num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm1d"; }

 protected:
  bool exact_type() const override { return typeid(*this) == typeid(BatchNorm1d<T>); }
  void check_input(const Tensor<T>& x) const override {
    check(x.dim() == 2 || x.dim() == 3, "BatchNorm1d", "expected a 2-d or 3-d input, got ", x.describe());
  }
};

// Input [N, C, H, W].
template <class T = float>
class BatchNorm2d : public BatchNormBase<T> {
 public:
  explicit BatchNorm2d(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNormBase<T>(num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm2d"; }

 protected:
  bool exact_type() const override { return typeid(*this) == typeid(BatchNorm2d<T>); }
  void check_input(const Tensor<T>& x) const override {
    check(x.dim() == 4, "BatchNorm2d", "expected a 4-d input, got ", x.describe());
  }
};

template <class T = float>
class LayerNorm : public Module<T> {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true, bool bias = true)
      : normalized_shape(std::move(normalized_shape)), eps(eps) {
    if (elementwise_affine) {
      weight = this->register_parameter("weight", ones<T>(this->normalized_shape));
      if (bias) this->bias = this->register_parameter("bias", zeros<T>(this->normalized_shape));
    }
  }
  explicit LayerNorm(std::int64_t dim, double eps = 1e-5) : LayerNorm(Shape{dim}, eps) {}
  Tensor<T> forward(const Tensor<T>& x) override { return layer_norm(x, normalized_shape, weight, bias, eps); }
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override {
    return "(" + shape_str(normalized_shape).substr(1, shape_str(normalized_shape).size() - 2) +
           ",), eps=" + repr_number(eps) + ", elementwise_affine=" + (weight.defined() ? "True" : "False");
  }
  Shape normalized_shape;
  double eps;
  Tensor<T> weight, bias;
};

template <class T = float>
class GroupNorm : public Module<T> {
 public:
  GroupNorm(std::int64_t num_groups, std::int64_t num_channels, double eps = 1e-5, bool affine = true)
      : num_groups(num_groups), num_channels(num_channels), eps(eps) {
    check(num_groups > 0 && num_channels % num_groups == 0, "GroupNorm", "num_channels ", num_channels,
          " must be divisible by num_groups ", num_groups);
    if (affine) {
      weight = this->register_parameter("weight", ones<T>({num_channels}));
      bias = this->register_parameter("bias", zeros<T>({num_channels}));
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override { return group_norm(x, num_groups, weight, bias, eps); }
  std::string type_name() const override { return "GroupNorm"; }
  std::string extra_repr() const override {
    return std::to_string(num_groups) + ", " + std::to_string(num_channels) + ", eps=" + repr_number(eps);
  }
  std::int64_t num_groups, num_channels;
  double eps;
  Tensor<T> weight, bias;
};

// torch.nn.RMSNorm: x / sqrt(mean(x^2) + eps) * weight; eps defaults to the dtype's epsilon.
template <class T = float>
class RMSNorm : public Module<T> {
 public:
  explicit RMSNorm(Shape normalized_shape, std::optional<double> eps = std::nullopt, bool elementwise_affine = true)
      : normalized_shape(std::move(normalized_shape)), eps(eps) {
    if (elementwise_affine) weight = this->register_parameter("weight", ones<T>(this->normalized_shape));
  }
  explicit RMSNorm(std::int64_t dim) : RMSNorm(Shape{dim}) {}
  Tensor<T> forward(const Tensor<T>& x) override { return rms_norm(x, normalized_shape, weight, eps); }
  std::string type_name() const override { return "RMSNorm"; }
  std::string extra_repr() const override { return shape_str(normalized_shape); }
  Shape normalized_shape;
  std::optional<double> eps;
  Tensor<T> weight;
};

}  // namespace ligm::nn
