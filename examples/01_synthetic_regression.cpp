// 01: train a small MLP on a synthetic task and print its loss curve.
//
// The task: three interleaved spirals in the plane (300 points), a classic that a linear
// model cannot solve. The model: 2 -> 64 -> 64 -> 3 with ReLU, trained with full-batch SGD
// with momentum on cross-entropy. Everything here is the core of ligm: tensors, autograd,
// ops; the nn/ and optim/ layers (next milestone) will make this shorter.
//
//   build/examples/01_synthetic_regression [steps]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ligm/ligm.hpp>

using namespace ligm;

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 400;
  Generator gen(0);

  // --- data: 3 spirals of 100 points with a little noise --------------------------------
  const int per_class = 100, classes = 3;
  std::vector<float> pts;
  std::vector<std::int64_t> labels;
  auto noise = randn<float>({classes * per_class, 2}, gen, Device::cpu(), 0, 0.15).to_vector();
  for (int c = 0; c < classes; ++c)
    for (int i = 0; i < per_class; ++i) {
      const float r = float(i) / per_class;
      const float t = c * 4.0f + r * 4.0f;
      const int k = c * per_class + i;
      pts.push_back(r * std::sin(t) + noise[2 * k] * r);
      pts.push_back(r * std::cos(t) + noise[2 * k + 1] * r);
      labels.push_back(c);
    }
  const auto x = tensor<float>(pts, {classes * per_class, 2});
  const auto y = tensor<std::int64_t>(labels, {classes * per_class});

  // --- model: Kaiming-uniform weights, zero biases ---------------------------------------
  auto layer = [&](std::int64_t in, std::int64_t out) {
    const double bound = std::sqrt(6.0 / in);
    auto w = rand<float>({out, in}, gen, Device::cpu(), -bound, bound).requires_grad_();
    auto b = zeros<float>({out}).requires_grad_();
    return std::pair{w, b};
  };
  auto [w1, b1] = layer(2, 64);
  auto [w2, b2] = layer(64, 64);
  auto [w3, b3] = layer(64, 3);
  std::vector<Tensor<float>> params{w1, b1, w2, b2, w3, b3};
  std::vector<Tensor<float>> velocity;
  for (auto& p : params) velocity.push_back(zeros_like(p));
  auto forward = [&](const Tensor<float>& in) {
    auto h = relu(linear(in, w1, b1));
    h = relu(linear(h, w2, b2));
    return linear(h, w3, b3);
  };

  // --- training: SGD with momentum 0.9 ---------------------------------------------------
  const float lr = 0.2f, momentum = 0.9f;
  std::vector<float> curve;
  std::printf("step    loss    accuracy\n");
  for (int step = 0; step <= steps; ++step) {
    auto logits = forward(x);
    auto loss = cross_entropy(logits, y);
    for (auto& p : params) p.set_grad({});
    loss.backward();
    {
      NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) {
        velocity[i].mul_(momentum).add_(params[i].grad());
        params[i].sub_(mul(velocity[i], lr));
      }
    }
    curve.push_back(loss.item());
    if (step % (steps / 10 > 0 ? steps / 10 : 1) == 0) {
      NoGradGuard no_grad;
      const float acc = eq(argmax(logits, 1), y).to<float>().mean().item();
      std::printf("%4d  %7.4f   %6.1f%%\n", step, curve.back(), 100 * acc);
    }
  }

  // --- the loss curve, as text -------------------------------------------------------------
  const int rows = 10, cols = 60;
  float hi = 0;
  for (float v : curve) hi = std::max(hi, v);
  std::printf("\nloss (0 .. %.2f) over %d steps\n", hi, steps);
  for (int r = rows; r > 0; --r) {
    std::string line(cols, ' ');
    for (int c = 0; c < cols; ++c) {
      const float v = curve[static_cast<std::size_t>(c) * (curve.size() - 1) / (cols - 1)];
      if (v / hi * rows >= r - 0.5f) line[c] = '*';
    }
    std::printf("|%s\n", line.c_str());
  }
  std::printf("+%s\n", std::string(cols, '-').c_str());
  NoGradGuard no_grad;
  const float acc = eq(argmax(forward(x), 1), y).to<float>().mean().item();
  std::printf("final loss %.4f, training accuracy %.1f%%\n", curve.back(), 100 * acc);
  return acc > 0.9f ? 0 : 1;
}
