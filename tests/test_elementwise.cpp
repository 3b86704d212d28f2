// Elementwise ops: float64 gradchecks for every differentiable op, broadcasting edge cases.
#include <functional>
#include <limits>

#include "helpers.hpp"

using namespace th;
using T = Tensor<double>;
using In = std::vector<T>;

TEST_CASE("gradcheck: unary math and activations") {
  const std::vector<std::pair<const char*, std::function<T(const T&)>>> ops = {
      {"neg", [](const T& x) { return neg(x); }},
      {"abs", [](const T& x) { return abs(x); }},
      {"exp", [](const T& x) { return exp(x); }},
      {"sin", [](const T& x) { return sin(x); }},
      {"cos", [](const T& x) { return cos(x); }},
      {"tanh", [](const T& x) { return tanh(x); }},
      {"sigmoid", [](const T& x) { return sigmoid(x); }},
      {"erf", [](const T& x) { return erf(x); }},
      {"relu", [](const T& x) { return relu(x); }},
      {"leaky_relu", [](const T& x) { return leaky_relu(x, 0.1); }},
      {"elu", [](const T& x) { return elu(x, 0.7); }},
      {"gelu", [](const T& x) { return gelu(x); }},
      {"gelu_tanh", [](const T& x) { return gelu(x, "tanh"); }},
      {"silu", [](const T& x) { return silu(x); }},
      {"softplus", [](const T& x) { return softplus(x, 1.5, 2.0); }},
      {"clamp", [](const T& x) { return clamp(x, -0.5, 0.5); }},
      {"square", [](const T& x) { return square(x); }},
  };
  for (const auto& [name, fn] : ops) {
    CAPTURE(name);
    check_grad([&](const In& in) { return fn(in[0]); }, {leaf({3, 4}, 42)});
  }
  // Ops that need positive inputs.
  const std::vector<std::pair<const char*, std::function<T(const T&)>>> positive = {
      {"log", [](const T& x) { return log(x); }},
      {"log1p", [](const T& x) { return log1p(x); }},
      {"sqrt", [](const T& x) { return sqrt(x); }},
      {"rsqrt", [](const T& x) { return rsqrt(x); }},
      {"reciprocal", [](const T& x) { return reciprocal(x); }},
      {"pow", [](const T& x) { return pow(x, 2.7); }},
  };
  for (const auto& [name, fn] : positive) {
    CAPTURE(name);
    check_grad([&](const In& in) { return fn(in[0]); }, {leaf({3, 4}, 43, 0.5, 2.0)});
  }
}

TEST_CASE("gradcheck: binary ops with broadcasting") {
  check_grad([](const In& in) { return add(in[0], in[1]); }, {leaf({2, 3, 4}, 1), leaf({3, 1}, 2)});
  check_grad([](const In& in) { return sub(in[0], in[1]); }, {leaf({4}, 3), leaf({2, 3, 4}, 4)});
  check_grad([](const In& in) { return mul(in[0], in[1]); }, {leaf({2, 1, 4}, 5), leaf({3, 1}, 6)});
  check_grad([](const In& in) { return div(in[0], in[1]); }, {leaf({2, 3}, 7), leaf({3}, 8, 0.5, 2)});
  check_grad([](const In& in) { return pow(in[0], in[1]); }, {leaf({2, 3}, 9, 0.5, 2), leaf({3}, 10)});
  check_grad([](const In& in) { return maximum(in[0], in[1]); }, {leaf({3, 4}, 11), leaf({4}, 12)});
  check_grad([](const In& in) { return minimum(in[0], in[1]); }, {leaf({3, 1}, 13), leaf({1, 4}, 14)});
  check_grad([](const In& in) { return in[0] * 2.0 - 1.0 / (in[1] + 3.0); }, {leaf({3}, 15), leaf({3}, 16, 0, 1)});
  // Only one input requires grad.
  auto c = randn<double>({3});
  check_grad([&](const In& in) { return mul(in[0], c); }, {leaf({2, 3}, 17)});
}

TEST_CASE("gradcheck: where and masked_fill") {
  auto cond = gt(randn<double>({3, 4}), 0.0);
  check_grad([&](const In& in) { return where(cond, in[0], in[1]); }, {leaf({3, 4}, 1), leaf({4}, 2)});
  check_grad([&](const In& in) { return masked_fill(in[0], cond, 2.0); }, {leaf({3, 4}, 3)});
}

TEST_CASE("maximum splits the gradient on ties, as PyTorch does") {
  auto a = tensor<double>({1, 2, 3}, {3}).requires_grad_();
  auto b = tensor<double>({1, 5, 0}, {3}).requires_grad_();
  maximum(a, b).sum().backward();
  CHECK(a.grad().to_vector() == std::vector<double>{0.5, 0, 1});
  CHECK(b.grad().to_vector() == std::vector<double>{0.5, 1, 0});
}

TEST_CASE("broadcasting edge cases") {
  // Scalar (0-d) with anything.
  auto s = scalar_tensor<float>(2.f);
  CHECK((s * ones<float>({2, 3})).shape() == Shape{2, 3});
  CHECK((s + s).dim() == 0);
  // Size-1 dims on both sides.
  auto a = arange<float>(0, 3).reshape({3, 1});
  auto b = arange<float>(0, 4).reshape({1, 4});
  auto c = a * 10.f + b;
  CHECK(c.shape() == Shape{3, 4});
  CHECK(c.to_vector()[6] == 12.f);
  // Broadcast against an empty tensor gives an empty result.
  CHECK((zeros<float>({0, 3}) + ones<float>({3})).shape() == Shape{0, 3});
  // Leading dims added.
  CHECK((ones<float>({4}) + ones<float>({2, 3, 4})).shape() == Shape{2, 3, 4});
  // A non-contiguous operand.
  auto t = arange<float>(0, 6).reshape({2, 3}).t();  // [3, 2]
  CHECK((t + zeros<float>({3, 2})).to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  // Incompatible shapes.
  check_error([] { ones<float>({2, 3}) + ones<float>({4}); }, {"ligm::add", "[2, 3]", "[4]", "broadcast", "float32", "cpu"});
}

TEST_CASE("comparisons, integer and bool tensors") {
  auto x = tensor<std::int64_t>({1, 5, 3}, {3});
  CHECK(eq(x, std::int64_t(5)).to_vector() == std::vector<bool>{false, true, false});
  CHECK(le(x, tensor<std::int64_t>({1, 4, 9}, {3})).to_vector() == std::vector<bool>{true, false, true});
  CHECK((x + x).to_vector() == std::vector<std::int64_t>{2, 10, 6});
  CHECK(ne(tensor<double>({1, 2}, {2}), 2.0).to_vector() == std::vector<bool>{true, false});
  CHECK(logical_not(tensor<bool>({true, false}, {2})).to_vector() == std::vector<bool>{false, true});
  const auto p = tensor<bool>({false, false, true, true}, {4}), q = tensor<bool>({false, true, false, true}, {4});
  CHECK(logical_and(p, q).to_vector() == std::vector<bool>{false, false, false, true});
  CHECK(logical_or(p, q).to_vector() == std::vector<bool>{false, true, true, true});
  CHECK(logical_xor(p, q).to_vector() == std::vector<bool>{false, true, true, false});
  CHECK(logical_and(p.reshape({4, 1}), q).shape() == Shape{4, 4});  // broadcasting
  CHECK(abs(tensor<std::int64_t>({-3, 2}, {2})).to_vector() == std::vector<std::int64_t>{3, 2});
}

TEST_CASE("forward values at the edges: stable sigmoid, softplus threshold, gelu") {
  auto x = tensor<double>({-1000, 0, 1000}, {3});
  check_close(sigmoid(x), {0, 0.5, 1});
  check_close(softplus(tensor<double>({30, -30}, {2})), {30, std::log1p(std::exp(-30.0))});
  check_close(gelu(tensor<double>({1.0}, {1})), {0.8413447460685429});
  check_close(clamp(tensor<double>({-2, 0.3, 9}, {3}), -1, 1), {-1, 0.3, 1});
  CHECK(std::isnan(sqrt(tensor<double>({-1}, {1})).item()));
}

TEST_CASE("in-place arithmetic") {
  auto x = ones<float>({2, 2});
  x.add_(tensor<float>({1, 2}, {2}));
  CHECK(x.to_vector() == std::vector<float>{2, 3, 2, 3});
  x.mul_(2.f).sub_(ones<float>({1}));
  CHECK(x.to_vector() == std::vector<float>{3, 5, 3, 5});
  x.add_(ones<float>({2, 2}), 0.5f);
  x.div_(tensor<float>({0.5f}, {1}));
  CHECK(x.to_vector() == std::vector<float>{7, 11, 7, 11});
  check_error([&] { x.add_(ones<float>({3, 2, 2})); }, {"add_", "does not fit", "[2, 2]"});
}

TEST_CASE("isnan, isinf, isfinite and nan_to_num at NaN and both infinities; any and all") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  auto x = tensor<double>({1.5, nan, inf, -inf, 0, -2, std::numeric_limits<double>::max(), -0.0}, {2, 4});
  using B = std::vector<bool>;
  CHECK(isnan(x).to_vector() == B{false, true, false, false, false, false, false, false});
  CHECK(isinf(x).to_vector() == B{false, false, true, true, false, false, false, false});
  CHECK(isfinite(x).to_vector() == B{true, false, false, false, true, true, true, true});
  CHECK(isnan(x.transpose(0, 1)).to_vector() == B{false, false, true, false, false, false, false, false});
  auto ints = tensor<std::int64_t>({1, -5, 0}, {3});
  CHECK(isfinite(ints).to_vector() == B{true, true, true});
  CHECK(isinf(ints).to_vector() == B{false, false, false});
  CHECK(isnan(ints).to_vector() == B{false, false, false});

  // torch.nan_to_num: the defaults are 0 and the largest and lowest finite values.
  CHECK(nan_to_num(x).to_vector() == std::vector<double>{1.5, 0, std::numeric_limits<double>::max(),
                                                         std::numeric_limits<double>::lowest(), 0, -2,
                                                         std::numeric_limits<double>::max(), -0.0});
  CHECK(nan_to_num(x, 0.5, 3.0, -4.0).to_vector() == std::vector<double>{1.5, 0.5, 3, -4, 0, -2,
                                                                          std::numeric_limits<double>::max(), 0});
  CHECK(nan_to_num(tensor<float>({float(nan), float(inf)}, {2})).to_vector() ==
        std::vector<float>{0, std::numeric_limits<float>::max()});
  // The gradient flows where x was finite only (PyTorch's grad * isfinite(x)).
  auto xg = x.clone().requires_grad_();
  nan_to_num(xg, 0.5).sum().backward();
  CHECK(xg.grad().to_vector() == std::vector<double>{1, 0, 0, 0, 1, 1, 1, 1});
  check_grad([](const std::vector<Tensor<double>>& in) { return nan_to_num(in[0], 1.0, 2.0, -2.0); },
             {leaf({3, 4}, 41)});
  check_error([&] { nan_to_num(ints); }, {"nan_to_num"});

  // any / all, over everything and over dims; numbers count as true when nonzero.
  auto m = tensor<bool>({true, false, false, false, false, false}, {2, 3});
  CHECK(any(m).item() == true);
  CHECK(all(m).item() == false);
  CHECK(any(m, {1}).to_vector() == B{true, false});
  CHECK(all(logical_not(m), {0}).to_vector() == B{false, true, true});
  CHECK(any(m, {0}, true).shape() == Shape{1, 3});
  CHECK(any(isnan(x)).item() == true);
  CHECK(all(isfinite(x), {1}).to_vector() == B{false, true});
  CHECK(any(tensor<double>({0, 0, 3}, {3})).item() == true);
  CHECK(all(tensor<std::int64_t>({1, 0}, {2})).item() == false);
  // Over no elements: any is false, all is true (as PyTorch).
  CHECK(any(zeros<double>({0, 3})).item() == false);
  CHECK(all(zeros<double>({0, 3})).item() == true);
  CHECK(all(zeros<bool>({2, 0}), {1}).to_vector() == B{true, true});
  check_error([&] { any(m, {2}); }, {"any", "dim"});
}
