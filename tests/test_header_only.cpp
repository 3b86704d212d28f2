// Built without LIGM_SEPARATE_BACKEND: the default header-only mode keeps compiling and working.
#include "helpers.hpp"

using namespace th;

TEST_CASE("header-only mode: a tiny model trains") {
  Generator gen(1);
  auto x = randn<double>({16, 3}, gen);
  auto y = matmul(x, tensor<double>({1, -2, 0.5}, {3, 1}));
  auto w = zeros<double>({1, 3}).requires_grad_();
  double first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    auto loss = mse_loss(linear(x, w), y);
    if (step == 0) first = loss.item();
    last = loss.item();
    w.set_grad({});
    loss.backward();
    NoGradGuard g;
    w.sub_(mul(w.grad(), 0.1));
  }
  CHECK(last < first * 1e-3);
  check_grad([](const std::vector<Tensor<double>>& in) { return conv2d(in[0], in[1]); },
             {leaf({1, 2, 4, 4}, 1), leaf({3, 2, 3, 3}, 2)});
}
