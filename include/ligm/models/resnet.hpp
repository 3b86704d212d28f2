// ResNet with basic blocks (He et al. 2016) and torchvision's parameter names, so a
// torchvision state_dict loads as it is: conv1, bn1, layer1.0.conv1, layer2.0.downsample.0,
// ..., fc.
//
// resnet18(o) is torchvision's resnet18 for any number of input channels and classes. Its
// "cifar" stem (3x3 stride-1 conv, no max-pool) is the usual variant for 32x32 and 28x28
// images; widths and blocks per stage are options, so the benchmark's three-stage
// "ResNet-small" is ResNetOptions{.layers = {1, 1, 1}, .widths = {32, 64, 128}, .stem = "cifar"}.
#pragma once
#include <vector>

#include "ligm/models/common.hpp"

namespace ligm::models {

// conv3x3-BN-ReLU-conv3x3-BN, plus the input (through a 1x1 conv + BN where the shape
// changes), then ReLU. The stride sits on conv1, as in torchvision.
template <class T = float>
class BasicBlock : public nn::Module<T> {
 public:
  BasicBlock(std::int64_t in_planes, std::int64_t planes, std::int64_t stride = 1, Generator& gen = default_generator()) {
    conv1 = this->register_module("conv1", std::make_shared<nn::Conv2d<T>>(in_planes, planes, 3,
                                                                          Conv2dOptions{.stride = stride, .padding = 1}, false, gen));
    bn1 = this->register_module("bn1", std::make_shared<nn::BatchNorm2d<T>>(planes));
    relu = this->register_module("relu", std::make_shared<nn::ReLU<T>>());
    conv2 = this->register_module("conv2", std::make_shared<nn::Conv2d<T>>(planes, planes, 3,
                                                                          Conv2dOptions{.padding = 1}, false, gen));
    bn2 = this->register_module("bn2", std::make_shared<nn::BatchNorm2d<T>>(planes));
    if (stride != 1 || in_planes != planes) {
      downsample = this->register_module(
          "downsample", std::make_shared<nn::Sequential<T>>(
                            nn::Conv2d<T>(in_planes, planes, 1, Conv2dOptions{.stride = stride}, false, gen),
                            nn::BatchNorm2d<T>(planes)));
    }
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    // bn1 + relu, and bn2 + the shortcut + relu, fused when the modules are plain (bn_relu).
    auto h = (*conv2)(bn_relu(*bn1, *relu, (*conv1)(x)));
    auto shortcut = downsample ? (*downsample)(x) : x;
    return bn_add_relu(*bn2, *relu, h, shortcut);
  }
  std::string type_name() const override { return "BasicBlock"; }

  std::shared_ptr<nn::Conv2d<T>> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d<T>> bn1, bn2;
  std::shared_ptr<nn::ReLU<T>> relu;
  std::shared_ptr<nn::Sequential<T>> downsample;  // null when the shortcut is the identity
};

struct ResNetOptions {
  std::vector<std::int64_t> layers = {2, 2, 2, 2};          // blocks per stage (ResNet-18)
  std::vector<std::int64_t> widths = {64, 128, 256, 512};   // channels per stage
  std::int64_t num_classes = 1000;  // 0: no classifier, forward returns the pooled features
  std::int64_t in_channels = 3;
  std::string stem = "imagenet";    // "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": 3x3/1 conv
  bool zero_init_residual = false;  // each block's last BN starts at zero (torchvision's option)
};

template <class T = float>
class ResNet : public nn::Module<T> {
 public:
  explicit ResNet(ResNetOptions o = {}, Generator& gen = default_generator()) : options(std::move(o)) {
    const char* op = "ResNet";
    check(!options.layers.empty() && options.layers.size() == options.widths.size(), op,
          "layers and widths need one entry per stage, got ", options.layers.size(), " and ", options.widths.size());
    check(options.stem == "imagenet" || options.stem == "cifar", op, "stem must be \"imagenet\" or \"cifar\", got \"",
          options.stem, "\"");
    const bool imagenet = options.stem == "imagenet";
    const std::int64_t w0 = options.widths[0];
    conv1 = this->register_module(
        "conv1", std::make_shared<nn::Conv2d<T>>(options.in_channels, w0, imagenet ? 7 : 3,
                                                 Conv2dOptions{.stride = imagenet ? 2 : 1, .padding = imagenet ? 3 : 1},
                                                 false, gen));
    bn1 = this->register_module("bn1", std::make_shared<nn::BatchNorm2d<T>>(w0));
    relu = this->register_module("relu", std::make_shared<nn::ReLU<T>>());
    using ModulePtr = std::shared_ptr<nn::Module<T>>;
    maxpool = this->register_module(
        "maxpool", imagenet ? ModulePtr(std::make_shared<nn::MaxPool2d<T>>(
                                  MaxPool2dOptions{.kernel_size = 3, .stride = 2, .padding = 1}))
                            : ModulePtr(std::make_shared<nn::Identity<T>>()));
    std::int64_t in = w0;
    for (std::size_t s = 0; s < options.layers.size(); ++s) {
      auto stage = std::make_shared<nn::Sequential<T>>();
      for (std::int64_t b = 0; b < options.layers[s]; ++b) {
        const std::int64_t stride = (s > 0 && b == 0) ? 2 : 1;
        stage->push_back(std::make_shared<BasicBlock<T>>(in, options.widths[s], stride, gen));
        in = options.widths[s];
      }
      stages.push_back(this->register_module("layer" + std::to_string(s + 1), stage));
    }
    avgpool = this->register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d<T>>(1));
    num_features = in;
    if (options.num_classes > 0)
      fc = this->register_module("fc", std::make_shared<nn::Linear<T>>(in, options.num_classes, true, gen));
    init_weights(gen);
  }

  // Pooled features [B, num_features].
  Tensor<T> forward_features(const Tensor<T>& x) {
    check(x.dim() == 4 && x.shape()[1] == options.in_channels, "ResNet", "expects [B, ", options.in_channels,
          ", H, W] images, got ", x.describe());
    auto h = (*maxpool)(bn_relu(*bn1, *relu, (*conv1)(x)));
    for (auto& stage : stages) h = (*stage)(h);
    return (*avgpool)(h).flatten(1);
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    auto f = forward_features(x);
    return fc ? (*fc)(f) : f;
  }
  std::string type_name() const override { return "ResNet"; }

  ResNetOptions options;
  std::int64_t num_features = 0;
  std::shared_ptr<nn::Conv2d<T>> conv1;
  std::shared_ptr<nn::BatchNorm2d<T>> bn1;
  std::shared_ptr<nn::ReLU<T>> relu;
  std::shared_ptr<nn::Module<T>> maxpool;
  std::vector<std::shared_ptr<nn::Sequential<T>>> stages;  // layer1, layer2, ...
  std::shared_ptr<nn::AdaptiveAvgPool2d<T>> avgpool;
  std::shared_ptr<nn::Linear<T>> fc;  // null when num_classes == 0

 private:
  // torchvision's: convolutions kaiming_normal (fan_out, relu), BN weight 1 and bias 0.
  void init_weights(Generator& gen) {
    for (auto& [name, m] : this->named_modules()) {
      if (auto* c = dynamic_cast<nn::Conv2d<T>*>(m)) nn::init::kaiming_normal_(c->weight, 0, "fan_out", "relu", gen);
    }
    if (options.zero_init_residual)
      for (auto& stage : stages)
        for (std::size_t b = 0; b < stage->size(); ++b) nn::init::zeros_(stage->template at<BasicBlock<T>>(b)->bn2->weight);
  }
};

// torchvision.models.resnet18 / resnet34 (any in_channels and num_classes; stem "cifar" for
// small images).
template <class T = float>
std::shared_ptr<ResNet<T>> resnet18(ResNetOptions o = {}, Generator& gen = default_generator()) {
  o.layers = {2, 2, 2, 2};
  return std::make_shared<ResNet<T>>(std::move(o), gen);
}
template <class T = float>
std::shared_ptr<ResNet<T>> resnet34(ResNetOptions o = {}, Generator& gen = default_generator()) {
  o.layers = {3, 4, 6, 3};
  return std::make_shared<ResNet<T>>(std::move(o), gen);
}

}  // namespace ligm::models
