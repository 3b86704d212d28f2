// 04: a small CNN on Fashion-MNIST; the same program trains on a GPU with --device cuda.
//
// conv3x3(1->32)-BN-ReLU-maxpool, conv3x3(32->64)-BN-ReLU-maxpool, Linear(3136->128)-ReLU-
// Linear(128->10); AdamW (lr 1e-3 decayed to 0 on a cosine over all steps, weight decay
// 1e-4), batch 128, standardised images.
// Prints the training loss and the test accuracy after every epoch; exits 0 if the final test
// accuracy reaches 91%. Nothing here is device-specific except `--device`.
//
//   build/examples/04_fashion_mnist_cnn [epochs] [--device cuda]
#include <chrono>
#include <cmath>
#include <cstdio>

#include <ligm/ligm.hpp>

#include "common.hpp"

using namespace ligm;

int main(int argc, char** argv) {
  const auto [epochs, device] = examples::parse_args(argc, argv, 5);
  manual_seed(0);
  const auto [train_x, test_x, train_y, test_y] = examples::load_fashion_mnist(device);

  auto net = nn::Sequential(nn::Conv2d(1, 32, 3, {.padding = 1}), nn::BatchNorm2d(32), nn::ReLU(), nn::MaxPool2d(2),
                            nn::Conv2d(32, 64, 3, {.padding = 1}), nn::BatchNorm2d(64), nn::ReLU(), nn::MaxPool2d(2),
                            nn::Flatten(), nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Linear(128, 10));
  net.to(device);
  std::printf("%s\n", net.repr().c_str());
  optim::AdamW opt(net.parameters(), {.lr = 1e-3, .weight_decay = 1e-4});
  data::DataLoader loader(train_x, train_y, {.batch_size = 128, .shuffle = true, .seed = 1});

  double acc = 0;
  std::int64_t step = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double total = 0;
    for (auto [x, y] : loader.epoch(std::uint64_t(epoch))) {
      // Cosine decay per step (until optim's schedules land).
      const double t = double(step++) / double(epochs * loader.size());
      opt.param_groups()[0].options.lr = 1e-3 * 0.5 * (1 + std::cos(3.141592653589793 * t));
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
  std::printf("final test accuracy %.2f%% (target 91%%): %s\n", 100 * acc, acc >= 0.91 ? "reached" : "NOT reached");
  return acc >= 0.91 ? 0 : 1;
}
