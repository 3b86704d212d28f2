// 03: an MLP on Fashion-MNIST, with the framework's modules, optimizer and data loader.
//
// 784 -> 256 -> 256 -> 10 with ReLU, AdamW (lr 1e-3, weight decay 1e-4), batch 128, the
// images standardised with the training set's mean and std. Prints the training loss and the
// test accuracy after every epoch; exits 0 if the final test accuracy reaches 88%.
//
//   build/examples/03_fashion_mnist_mlp [epochs] [--device cuda]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <ligm/ligm.hpp>

using namespace ligm;
using F = Tensor<float>;

namespace {

double accuracy(nn::Module<float>& net, const F& images, const Tensor<std::int64_t>& labels, Device device) {
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

}  // namespace

int main(int argc, char** argv) {
  int epochs = 10;
  Device device = Device::cpu();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--device" && i + 1 < argc) {
      device = std::string(argv[++i]) == "cuda" ? Device::cuda() : Device::cpu();
    } else {
      epochs = std::atoi(argv[i]);
    }
  }
  manual_seed(0);
  auto train = data::FashionMNIST::load("train");
  auto test = data::FashionMNIST::load("test");
  const float mean = train.images.mean().item(), std = train.images.std().item();
  auto standardise = [&](const F& x) { return div(sub(x, mean), std); };
  const F train_x = standardise(train.images), test_x = standardise(test.images);
  std::printf("Fashion-MNIST: %lld training and %lld test images (mean %.4f, std %.4f), device %s\n",
              static_cast<long long>(train_x.shape()[0]), static_cast<long long>(test_x.shape()[0]), mean, std,
              device.str().c_str());

  auto net = nn::Sequential(nn::Flatten(), nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 256), nn::ReLU(),
                            nn::Linear(256, 10));
  net.to(device);
  std::printf("%s\n", net.repr().c_str());
  optim::AdamW opt(net.parameters(), {.lr = 1e-3, .weight_decay = 1e-4});
  data::DataLoader loader(train_x, train.labels, {.batch_size = 128, .shuffle = true, .seed = 1});

  double acc = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double total = 0;
    for (auto [x, y] : loader.epoch(std::uint64_t(epoch))) {
      auto loss = cross_entropy(net(x.to(device)), y.to(device));
      opt.zero_grad();
      loss.backward();
      opt.step();
      total += loss.item();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    acc = accuracy(net, test_x, test.labels, device);
    std::printf("epoch %2d  train loss %.4f  test accuracy %.2f%%  (%.1f s)\n", epoch + 1,
                total / double(loader.size()), 100 * acc, secs);
  }
  std::printf("final test accuracy %.2f%% (target 88%%): %s\n", 100 * acc, acc >= 0.88 ? "reached" : "NOT reached");
  return acc >= 0.88 ? 0 : 1;
}
