// MLP and a small CNN: the two workhorses of the Fashion-MNIST examples, as nn::Sequential
// subclasses, so their state_dict keys are those of the same torch.nn.Sequential
// ("1.weight", ...).
#pragma once
#include <vector>

#include "ligm/models/common.hpp"

namespace ligm::models {

struct MLPOptions {
  std::vector<std::int64_t> hidden = {256, 256};
  std::string activation = "relu";
  bool batch_norm = false;  // BatchNorm1d after each hidden Linear, before the activation
  double dropout = 0.0;     // Dropout after each hidden activation (0: none)
  bool flatten = true;      // a Flatten first, so that [B, 1, 28, 28] images go in as they are
};

// [Flatten,] (Linear, [BatchNorm1d,] activation, [Dropout]) per hidden width, Linear.
template <class T = float>
class MLP : public nn::Sequential<T> {
 public:
  MLP(std::int64_t in_features, std::int64_t out_features, MLPOptions o = {}, Generator& gen = default_generator())
      : options(std::move(o)) {
    if (options.flatten) this->push_back(nn::Flatten<T>());
    std::int64_t width = in_features;
    for (std::int64_t h : options.hidden) {
      this->push_back(nn::Linear<T>(width, h, true, gen));
      if (options.batch_norm) this->push_back(nn::BatchNorm1d<T>(h));
      this->push_back(make_activation<T>(options.activation));
      if (options.dropout > 0) this->push_back(nn::Dropout<T>(options.dropout, gen));
      width = h;
    }
    this->push_back(nn::Linear<T>(width, out_features, true, gen));
  }
  std::string type_name() const override { return "MLP"; }
  MLPOptions options;
};

struct SmallCNNOptions {
  std::vector<std::int64_t> channels = {32, 64};  // one conv3x3-BN-ReLU-maxpool2 stage each
  std::int64_t hidden = 128;
  std::int64_t image_size = 28;
};

// conv3x3(pad 1)-BatchNorm2d-ReLU-MaxPool2d(2) per stage, Flatten, Linear-ReLU-Linear: the
// CNN of examples/04 and of the performance benchmark.
template <class T = float>
class SmallCNN : public nn::Sequential<T> {
 public:
  SmallCNN(std::int64_t in_channels = 1, std::int64_t num_classes = 10, SmallCNNOptions o = {},
           Generator& gen = default_generator())
      : options(std::move(o)) {
    std::int64_t c = in_channels, side = options.image_size;
    for (std::int64_t out : options.channels) {
      this->push_back(nn::Conv2d<T>(c, out, 3, {.padding = 1}, true, gen));
      this->push_back(nn::BatchNorm2d<T>(out));
      this->push_back(nn::ReLU<T>());
      this->push_back(nn::MaxPool2d<T>(2));
      c = out;
      side /= 2;
    }
    check(side > 0, "SmallCNN", "image_size ", options.image_size, " is too small for ", options.channels.size(),
          " pooling stages");
    this->push_back(nn::Flatten<T>());
    this->push_back(nn::Linear<T>(c * side * side, options.hidden, true, gen));
    this->push_back(nn::ReLU<T>());
    this->push_back(nn::Linear<T>(options.hidden, num_classes, true, gen));
  }
  std::string type_name() const override { return "SmallCNN"; }
  SmallCNNOptions options;
};

}  // namespace ligm::models
