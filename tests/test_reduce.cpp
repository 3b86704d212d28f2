// Reductions: values and float64 gradchecks.
#include "helpers.hpp"

using namespace th;
using T = Tensor<double>;
using In = std::vector<T>;

TEST_CASE("reduction values over dims with keepdim") {
  auto x = arange<double>(0, 24).reshape({2, 3, 4});
  CHECK(x.sum().item() == 276);
  CHECK(sum(x, {0, 2}).to_vector() == std::vector<double>{60, 92, 124});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1, 4});
  CHECK(sum(x, {-1}).shape() == Shape{2, 3});
  CHECK(mean(x, {2}).to_vector()[0] == 1.5);
  CHECK(amax(x, {1}).to_vector() == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});
  CHECK(amin(x).item() == 0);
  auto [v, i] = max(tensor<double>({1, 7, 7, 2, 0, 3}, {2, 3}), 1);
  CHECK(v.to_vector() == std::vector<double>{7, 3});
  CHECK(i.to_vector() == std::vector<std::int64_t>{1, 2});  // first index on ties
  CHECK(argmax(tensor<double>({1, 9, 3}, {3})).item() == 1);
  CHECK(argmin(x, 2, true).shape() == Shape{2, 3, 1});
  check_close(var(tensor<double>({1, 2, 3, 4}, {4})), {5.0 / 3.0});
  check_close(var(tensor<double>({1, 2, 3, 4}, {4}), {}, false), {1.25});
  check_close(stddev(tensor<double>({1, 2, 3, 4}, {4}), {}, false), {std::sqrt(1.25)});
  check_close(logsumexp(tensor<double>({1000, 1000}, {2})), {1000 + std::log(2.0)});
  check_close(norm(tensor<double>({3, 4}, {2})), {5});
  check_close(norm(tensor<double>({3, -4}, {2}), 1), {7});
  CHECK(sum(zeros<double>({0, 3}), {0}).to_vector() == std::vector<double>{0, 0, 0});
  CHECK(sum(tensor<std::int64_t>({1, 2, 3}, {3})).item() == 6);
}

TEST_CASE("gradcheck: reductions") {
  check_grad([](const In& in) { return sum(in[0], {0, 2}, true); }, {leaf({2, 3, 4}, 1)});
  check_grad([](const In& in) { return mean(in[0], {1}); }, {leaf({2, 3, 4}, 2)});
  check_grad([](const In& in) { return amax(in[0], {1}); }, {leaf({3, 4}, 3)});
  check_grad([](const In& in) { return amin(in[0]); }, {leaf({3, 4}, 4)});
  check_grad([](const In& in) { return max(in[0], 1, true).first; }, {leaf({3, 4}, 5)});
  check_grad([](const In& in) { return min(in[0], 0).first; }, {leaf({3, 4}, 6)});
  check_grad([](const In& in) { return var(in[0], {1}); }, {leaf({3, 5}, 7)});
  check_grad([](const In& in) { return var(in[0], {0, 1}, false, true); }, {leaf({3, 5}, 8)});
  check_grad([](const In& in) { return stddev(in[0], {0}); }, {leaf({4, 3}, 9)});
  check_grad([](const In& in) { return logsumexp(in[0], {1}); }, {leaf({3, 5}, 10)});
  check_grad([](const In& in) { return norm(in[0], 2, {1}); }, {leaf({3, 5}, 11)});
  check_grad([](const In& in) { return norm(in[0], 3); }, {leaf({3, 5}, 12)});
  check_grad([](const In& in) { return norm(in[0], 1, {0}); }, {leaf({3, 5}, 13)});
}

TEST_CASE("amax shares the gradient among ties; norm's gradient at 0 is 0") {
  auto x = tensor<double>({1, 3, 3}, {3}).requires_grad_();
  amax(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0.5, 0.5});
  auto z = zeros<double>({3}).requires_grad_();
  norm(z).backward();
  CHECK(z.grad().to_vector() == std::vector<double>{0, 0, 0});
}

TEST_CASE("reductions reject bad dims and empty extrema") {
  auto x = zeros<float>({2, 3});
  check_error([&] { sum(x, {2}); }, {"sum", "dim 2", "2 dims"});
  check_error([&] { sum(x, {1, -1}); }, {"sum", "twice"});
  check_error([] { amax(zeros<float>({0})); }, {"amax", "empty", "[0]"});
  check_error([] { max(zeros<float>({2, 0}), 1); }, {"max", "size 0"});
}

TEST_CASE("reduction fast paths: leading, trailing and full reductions agree with the general path") {
  Generator gen(21);
  auto x = randn<double>({37, 5, 11}, gen);
  auto strided = x.permute({2, 0, 1}).contiguous().permute({1, 2, 0});  // same values, other strides
  for (const Dims& dims : std::vector<Dims>{{0}, {0, 1}, {2}, {1, 2}, {}, {1}, {0, 2}}) {
    CAPTURE(dims.size());
    check_close(sum(x, dims), sum(strided, dims), 1e-12, 1e-12);
    check_close(amax(x, dims), amax(strided, dims), 0, 0);
    check_close(amin(x, dims, true), amin(strided, dims, true), 0, 0);
  }
  CHECK(sum(ones<float>({1 << 20})).item() == float(1 << 20));  // no float drift on a full sum
  CHECK(sum(full<std::int64_t>({1000, 3}, 2), {0}).to_vector() == std::vector<std::int64_t>{2000, 2000, 2000});
}
