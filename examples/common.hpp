// Shared by the numbered examples: command-line flags and the Fashion-MNIST test accuracy.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

#include <ligm/ligm.hpp>

namespace examples {

struct Args {
  int epochs;
  ligm::Device device = ligm::Device::cpu();
  std::string metrics;  // a JSON-lines file for the metrics (--metrics PATH), or none
};

// [epochs] [--device cpu|cuda] [--metrics PATH]
inline Args parse_args(int argc, char** argv, int default_epochs) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen
  Args a{default_epochs, ligm::Device::cpu(), ""};
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--device" && i + 1 < argc) {
      a.device = std::string(argv[++i]) == "cuda" ? ligm::Device::cuda() : ligm::Device::cpu();
    } else if (s == "--metrics" && i + 1 < argc) {
      a.metrics = argv[++i];
    } else {
      a.epochs = std::atoi(argv[i]);
    }
  }
  return a;
}

// Fraction of correctly classified images, evaluated in batches of 1000 in eval mode.
inline double accuracy(ligm::nn::Module<float>& net, const ligm::Tensor<float>& images,
                       const ligm::Tensor<std::int64_t>& labels, ligm::Device device) {
  using namespace ligm;
  NoGradGuard no_grad;
  net.eval();
  std::int64_t correct = 0;
  for (std::int64_t s = 0; s < images.shape()[0]; s += 1000) {
    const std::int64_t n = std::min<std::int64_t>(1000, images.shape()[0] - s);
    auto pred = argmax(net(images.narrow(0, s, n).to(device)), 1);
    correct += sum(eq(pred, labels.narrow(0, s, n).to(device)).to<std::int64_t>()).item();
  }
  net.train();
  return double(correct) / double(images.shape()[0]);
}

// Fashion-MNIST standardised with the training set's mean and std, from Debian's package or
// the folder named by LIGM_FASHION_MNIST (a machine without the package).
struct StandardFashionMNIST {
  ligm::Tensor<float> train_x, test_x;
  ligm::Tensor<std::int64_t> train_y, test_y;
};
inline StandardFashionMNIST load_fashion_mnist(ligm::Device device) {
  using namespace ligm;
  const char* env = std::getenv("LIGM_FASHION_MNIST");
  const std::string dir = env ? env : data::kFashionMnistDir;
  auto train = data::FashionMNIST::load("train", dir);
  auto test = data::FashionMNIST::load("test", dir);
  const float mean = train.images.mean().item(), std = train.images.std().item();
  auto standardise = [&](const Tensor<float>& x) { return div(sub(x, mean), std); };
  std::printf("Fashion-MNIST: %lld training and %lld test images (mean %.4f, std %.4f), device %s\n",
              static_cast<long long>(train.images.shape()[0]), static_cast<long long>(test.images.shape()[0]),
              mean, std, device.str().c_str());
  return {standardise(train.images), standardise(test.images), train.labels, test.labels};
}

}  // namespace examples
