// 03: an MLP on Fashion-MNIST, with the framework's modules, optimizer and data loader.
//
// 784 -> 256 -> 256 -> 10 with ReLU, AdamW (lr 1e-3, weight decay 1e-4), batch 128, the
// images standardised with the training set's mean and std. Prints the training loss and the
// test accuracy after every epoch; exits 0 if the final test accuracy reaches 88%.
//
//   build/examples/03_fashion_mnist_mlp [epochs] [--device cuda]
#include <chrono>
#include <cstdio>

#include <ligm/ligm.hpp>

#include "common.hpp"

using namespace ligm;

int main(int argc, char** argv) {
  const auto [epochs, device, metrics] = examples::parse_args(argc, argv, 10);
  (void)metrics;
  manual_seed(0);
  const auto [train_x, test_x, train_y, test_y] = examples::load_fashion_mnist(device);

  auto net = nn::Sequential(nn::Flatten(), nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 256), nn::ReLU(),
                            nn::Linear(256, 10));
  net.to(device);
  std::printf("%s\n", net.repr().c_str());
  optim::AdamW opt(net.parameters(), {.lr = 1e-3, .weight_decay = 1e-4});
  data::DataLoader loader(train_x, train_y, {.batch_size = 128, .shuffle = true, .seed = 1});

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
    acc = examples::accuracy(net, test_x, test_y, device);
    std::printf("epoch %2d  train loss %.4f  test accuracy %.2f%%  (%.1f s)\n", epoch + 1,
                total / double(loader.size()), 100 * acc, secs);
  }
  std::printf("final test accuracy %.2f%% (target 88%%): %s\n", 100 * acc, acc >= 0.88 ? "reached" : "NOT reached");
  return acc >= 0.88 ? 0 : 1;
}
