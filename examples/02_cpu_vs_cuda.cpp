// 02: the same training on the CPU and on a GPU, step by step.
//
// A small CNN (conv3x3-BN-ReLU-maxpool, conv3x3-BN-ReLU-maxpool, linear) learns a synthetic
// 10-class image task (1x16x16 noise images labelled by a fixed random "teacher") with SGD
// and momentum. Both devices start from the same weights (made on the CPU, then copied with
// .to(device): the only device-specific line) and see the same batches, so their loss curves
// must agree up to float rounding. Prints a table and exits non-zero if they drift apart.
// Without a GPU it trains on the CPU only and says so.
//
//   build/examples/02_cpu_vs_cuda [steps] [tolerance]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <ligm/ligm.hpp>

using namespace ligm;
using F = Tensor<float>;

namespace {

struct Run {
  std::vector<double> losses;
  double ms_per_step = 0;
};

Run train(Device device, int steps) {
  Generator gen(0);
  // Data: 1024 images, labels = argmax of a random linear teacher on the pixels.
  const F images = randn<float>({1024, 1, 16, 16}, gen);
  const auto labels = argmax(matmul(images.flatten(1), randn<float>({256, 10}, gen)), 1);
  // Parameters, initialised on the CPU (Kaiming-uniform), then moved.
  auto uniform = [&](const Shape& s, std::int64_t fan_in) {
    const double bound = std::sqrt(6.0 / double(fan_in));
    return rand<float>(s, gen, Device::cpu(), -bound, bound).to(device).requires_grad_();
  };
  std::vector<F> params{uniform({16, 1, 3, 3}, 9),     zeros<float>({16}, device),
                        ones<float>({16}, device),     zeros<float>({16}, device),
                        uniform({32, 16, 3, 3}, 144),  zeros<float>({32}, device),
                        ones<float>({32}, device),     zeros<float>({32}, device),
                        uniform({10, 32 * 4 * 4}, 512), zeros<float>({10}, device)};
  for (auto& p : params) p.requires_grad_();
  std::vector<F> velocity;
  for (auto& p : params) velocity.push_back(zeros_like(p));
  auto forward = [&](const F& x) {
    auto h = conv2d(x, params[0], params[1], {.padding = 1});
    h = max_pool2d(relu(batch_norm(h, F(), F(), params[2], params[3], true)), {.kernel_size = 2});
    h = conv2d(h, params[4], params[5], {.padding = 1});
    h = max_pool2d(relu(batch_norm(h, F(), F(), params[6], params[7], true)), {.kernel_size = 2});
    return linear(h.flatten(1), params[8], params[9]);
  };
  const F x_all = images.to(device);
  const auto y_all = labels.to(device);
  Run run;
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; ++step) {
    const std::int64_t b = (step * 128) % 1024;
    auto loss = cross_entropy(forward(x_all.narrow(0, b, 128)), y_all.narrow(0, b, 128));
    for (auto& p : params) p.set_grad({});
    loss.backward();
    {
      NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) {
        velocity[i].mul_(0.9f).add_(params[i].grad());
        params[i].sub_(mul(velocity[i], 0.01f));
      }
    }
    run.losses.push_back(loss.item());  // item() waits for the device: honest timing
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  run.ms_per_step = ms / steps;
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 60;
  const double tolerance = argc > 2 ? std::atof(argv[2]) : 2e-3;
  const Run cpu = train(Device::cpu(), steps);
  if (!cuda::is_available()) {
    std::printf("CUDA is %s: CPU only\n", cuda::is_compiled() ? "compiled in but no GPU is present"
                                                              : "not compiled in");
    for (int s = 0; s < steps; s += 5) std::printf("step %3d  cpu loss %.5f\n", s, cpu.losses[s]);
    std::printf("cpu %.2f ms/step\n", cpu.ms_per_step);
    return cpu.losses.back() < cpu.losses.front() ? 0 : 1;
  }
  const Run gpu = train(Device::cuda(), steps);
  double worst = 0;
  std::printf("step   cpu loss   cuda loss   rel diff\n");
  for (int s = 0; s < steps; ++s) {
    const double rel = std::fabs(gpu.losses[s] - cpu.losses[s]) / std::fabs(cpu.losses[s]);
    worst = std::max(worst, rel);
    if (s % 5 == 0 || s == steps - 1)
      std::printf("%4d   %8.5f   %9.5f   %8.1e\n", s, cpu.losses[s], gpu.losses[s], rel);
  }
  const bool ok = worst <= tolerance && cpu.losses.back() < cpu.losses.front();
  std::printf("cpu %.2f ms/step, cuda %.2f ms/step (first step included); worst rel diff %.1e "
              "(tolerance %.0e): %s\n",
              cpu.ms_per_step, gpu.ms_per_step, worst, tolerance, ok ? "agree" : "DRIFT");
  return ok ? 0 : 1;
}
