// 10: extend ligm with your own op and layer, check its gradient, debug it, train it.
//
// The op is Snake (Ziyin, Hartwig and Ueda, "Neural Networks Fail to Learn Periodic Functions
// and How to Fix It", NeurIPS 2020):  snake(x) = x + sin^2(a x) / a,  a learnable a per
// channel. It is written twice:
//   1. as a composite of existing ops: autograd differentiates it for free;
//   2. as one recorded op with its own backward rule (autograd::record), the way every op in
//      include/ligm/ops/ is written: fewer nodes, fewer saved tensors, a rule you can read.
// The program checks that the two agree, runs the shipped float64 gradcheck on the second,
// wraps it in a Module with a parameter, saves and reloads it, draws its graph, and trains an
// MLP with it against the same MLP with ReLU on a periodic signal, then asks both to
// extrapolate beyond the training range: ReLU continues linearly, Snake continues the wave.
// docs/extending.md walks through it.
//
//   build/examples/10_custom_op [--steps 1500] [--device cuda] [--dot graph.dot]
// Exit status 1 if a check fails.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <ligm/io/progress.hpp>
#include <ligm/ligm.hpp>

using namespace ligm;

// --- 1. The composite: any function of ligm ops is differentiable ------------------------------
// x: [..., C], a: [C] (broadcast over the leading dims).
template <class T>
Tensor<T> snake_composite(const Tensor<T>& x, const Tensor<T>& a) {
  return add(x, div(square(sin(mul(a, x))), a));
}

// --- 2. One op with its own backward --------------------------------------------------------------
// The forward computes with plain ops under NoGradGuard (nothing recorded inside), then
// autograd::record attaches one node whose rule maps dL/dy to dL/dx and dL/da:
//   dy/dx = 1 + sin(2 a x)
//   dy/da = x sin(2 a x) / a - sin^2(a x) / a^2,  summed over every dim but the channels.
// The rule captures what it needs through autograd::save (the tensor without its history, and
// its version, so an in-place change before backward() is an error rather than a wrong
// gradient), and skips what no input needs (NeedsGrad).
template <class T>
Tensor<T> snake(const Tensor<T>& x, const Tensor<T>& a) {
  check(a.dim() == 1 && x.dim() >= 1 && x.shape().back() == a.shape()[0], "snake", "x of shape ", x.shape(),
        " needs a per-channel a of shape [", x.dim() ? x.shape().back() : 0, "], got ", a.shape());
  Tensor<T> y;
  {
    NoGradGuard no_grad;
    y = add(x, div(square(sin(mul(a, x))), a));
  }
  return autograd::record("SnakeBackward", y, {x, a},
                          [x = autograd::save(x), a = autograd::save(a)](const Tensor<T>& g, const NeedsGrad& needs)
                              -> std::vector<Tensor<T>> {
                            const auto ax = mul(a, x), sin2ax = sin(mul(ax, T(2)));
                            Tensor<T> dx, da;
                            if (needs[0]) dx = mul(g, add(sin2ax, T(1)));
                            if (needs[1]) {
                              const auto local = sub(div(mul(x, sin2ax), a), div(square(sin(ax)), square(a)));
                              Dims leading;
                              for (std::int64_t d = 0; d + 1 < x.dim(); ++d) leading.push_back(d);
                              da = sum(mul(g, local), leading);
                            }
                            return {dx, da};
                          });
}

// --- 3. A layer: a Module with a named parameter ----------------------------------------------
template <class T = float>
class Snake : public nn::Module<T> {
 public:
  explicit Snake(std::int64_t channels, double a = 1.0) : channels_(channels) {
    alpha = this->register_parameter("alpha", full<T>({channels}, T(a)));
  }
  Tensor<T> forward(const Tensor<T>& x) override { return snake(x, alpha); }
  std::string type_name() const override { return "Snake"; }
  std::string extra_repr() const override { return std::to_string(channels_); }
  Tensor<T> alpha;

 private:
  std::int64_t channels_;
};

namespace {

bool all_ok = true;
void report(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? " ok " : "FAIL", what.c_str());
  all_ok = all_ok && ok;
}

// The signal: a wave on a slope. Trained on [-6, 6], extrapolated on [6, 12].
Tensor<float> signal(const Tensor<float>& x) { return add(sin(mul(x, 2.0f)), mul(x, 0.2f)); }

template <class Act>
nn::Sequential<float> mlp(Act act, Generator& g) {
  return nn::Sequential<float>(nn::Linear<float>(1, 64, true, g), act(64), nn::Linear<float>(64, 64, true, g), act(64),
                               nn::Linear<float>(64, 1, true, g));
}

double mse(nn::Sequential<float>& net, const Tensor<float>& x) {
  NoGradGuard no_grad;
  return double(mse_loss(net(x), signal(x)).item());
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int steps = 1500;
  Device device = Device::cpu();
  std::string dot_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--steps") steps = std::atoi(value.c_str());
    else if (flag == "--device") device = value == "cuda" ? Device::cuda() : Device::cpu();
    else if (flag == "--dot") dot_path = value;
    else {
      std::fprintf(stderr, "usage: %s [--steps N] [--device cpu|cuda] [--dot PATH]\n", argv[0]);
      return 2;
    }
  }

  std::printf("1-2. The composite and the recorded op agree; gradcheck in float64\n");
  {
    Generator g(1);
    auto x = randn<double>({5, 3}, g).requires_grad_();
    auto a = rand<double>({3}, g, Device::cpu(), 0.5, 2.0).requires_grad_();
    auto cot = randn<double>({5, 3}, g);
    sum(mul(snake(x, a), cot)).backward();
    const auto gx = x.grad().clone(), ga = a.grad().clone();
    x.set_grad({});
    a.set_grad({});
    sum(mul(snake_composite(x, a), cot)).backward();
    const double dx = double(abs(sub(gx, x.grad())).max().item()), da = double(abs(sub(ga, a.grad())).max().item());
    char line[160];
    std::snprintf(line, sizeof line, "gradients equal the composite's (largest differences %.1e in x, %.1e in a)", dx,
                  da);
    report(dx < 1e-12 && da < 1e-12, line);
    const auto result = gradcheck([](const std::vector<Tensor<double>>& in) { return snake(in[0], in[1]); },
                                  {x.detach().requires_grad_(), a.detach().requires_grad_()});
    report(result.ok, result.ok ? "gradcheck(snake) passes in float64" : result.message);
    // One node instead of the composite's five, and so fewer tensors kept for backward.
    report(snake(x, a).grad_fn()->name == "SnakeBackward", "one node: " + snake(x, a).grad_fn()->name);
    try {
      snake(x, tensor<double>({1, 2}, {2}));
      report(false, "a bad shape is refused");
    } catch (const Error& e) {
      report(true, std::string("a bad shape is refused: ") + e.what());
    }
  }

  std::printf("3. A layer with a parameter: state_dict round trip, printing, the graph\n");
  {
    Generator g(2);
    auto net = mlp([](std::int64_t c) { return Snake<float>(c, 0.5); }, g);
    const auto sd = net.state_dict();
    report(sd.count("1.alpha") && sd.at("1.alpha").shape() == Shape{64}, "state_dict has \"1.alpha\" [64]");
    auto copy = mlp([](std::int64_t c) { return Snake<float>(c, 3.0); }, g);
    copy.load_state_dict(sd);
    const auto x = linspace<float>(-1, 1, 8).reshape({8, 1});
    report(double(abs(sub(copy(x), net(x))).max().item()) == 0.0, "a reloaded copy gives the same outputs");
    std::printf("%s\n", net.summary(x).c_str());
    if (!dot_path.empty()) {
      autograd::DetectAnomalyGuard anomaly;  // so that each node also shows the module it ran in
      std::ofstream(dot_path) << autograd::to_dot(mse_loss(net(x), signal(x)), net.named_parameters());
      std::printf("  wrote the graph of the loss to %s (dot -Tpng %s -o graph.png)\n", dot_path.c_str(),
                  dot_path.c_str());
    }
  }

  std::printf("4. Train on a wave over [-6, 6] (%d full-batch Adam steps, %s), extrapolate to [6, 12]\n", steps,
              device.str().c_str());
  const auto x_train = linspace<float>(-6, 6, 256).reshape({256, 1}).to(device);
  const auto x_far = linspace<float>(6, 12, 128).reshape({128, 1}).to(device);
  auto train = [&](nn::Sequential<float>& net, const char* name) {
    net.to(device);
    optim::Adam<float> opt(net.parameters(), {.lr = 3e-3});
    io::ProgressBar bar(steps, name);
    for (int s = 0; s < steps; ++s) {
      auto loss = mse_loss(net(x_train), signal(x_train));
      opt.zero_grad();
      loss.backward();
      opt.step();
      if (s % 50 == 0 || s + 1 == steps) {
        bar.update(1, {{"loss", double(loss.item())}});
      } else {
        bar.update(1);
      }
    }
    bar.close();
    return std::pair{mse(net, x_train), mse(net, x_far)};
  };
  Generator g(3);
  auto relu_net = mlp([](std::int64_t) { return nn::ReLU<float>(); }, g);
  auto snake_net = mlp([](std::int64_t c) { return Snake<float>(c, 1.0); }, g);
  const auto [relu_fit, relu_far] = train(relu_net, "relu ");
  const auto [snake_fit, snake_far] = train(snake_net, "snake");
  std::printf("  %-6s train MSE %.2e   extrapolation MSE on [6, 12] %.4f\n", "ReLU", relu_fit, relu_far);
  std::printf("  %-6s train MSE %.2e   extrapolation MSE on [6, 12] %.4f\n", "Snake", snake_fit, snake_far);
  report(snake_fit < 0.05 && relu_fit < 0.2, "both fit the training range");
  report(snake_far < relu_far, "Snake extrapolates the wave better than ReLU");
  std::printf("%s\n", all_ok ? "all checks passed" : "SOME CHECKS FAILED");
  return all_ok ? 0 : 1;
}
