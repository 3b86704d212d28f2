// Bad input: every failure is a ligm::Error that names the op and the operands.
#include <limits>

#include "helpers.hpp"

using namespace th;

TEST_CASE("shape mismatches name the op and both shapes") {
  check_error([] { ones<float>({2, 3}) * ones<float>({3, 2}); }, {"ligm::mul", "[2, 3]", "[3, 2]"});
  check_error([] { conv2d(ones<float>({1, 3, 5, 5}), ones<float>({4, 2, 3, 3})); },
              {"conv2d", "[1, 3, 5, 5]", "[4, 2, 3, 3]", "channels"});
  check_error([] { conv2d(ones<float>({1, 1, 2, 2}), ones<float>({1, 1, 3, 3})); }, {"conv2d", "too small", "[1, 1, 2, 2]"});
  check_error([] { conv2d(ones<float>({3, 5, 5}), ones<float>({4, 3, 3, 3})); }, {"conv2d", "4-d", "[3, 5, 5]", "float32", "cpu"});
  check_error([] { max_pool2d(ones<float>({1, 1, 2, 2}), {.kernel_size = 3}); }, {"max_pool2d", "too small"});
  check_error([] { layer_norm(ones<float>({2, 3}), {4}); }, {"layer_norm", "[4]", "[2, 3]"});
  check_error([] { batch_norm(ones<float>({2, 3}), Tensor<float>(), Tensor<float>(), ones<float>({4})); },
              {"batch_norm", "[4]", "[2, 3]"});
  check_error([] { group_norm(ones<float>({2, 6, 2}), 4); }, {"group_norm", "6", "4"});
  check_error([] { tensor<float>({1, 2, 3}, {2, 2}); }, {"tensor", "3 values", "[2, 2]"});
}

TEST_CASE("wrong dtypes are refused") {
  check_error([] { softmax(ones<std::int64_t>({2}), 0); }, {"softmax", "int64"});
  check_error([] { conv2d(ones<std::int64_t>({1, 1, 3, 3}), ones<std::int64_t>({1, 1, 1, 1})); }, {"conv2d", "int64"});
  check_error([] { mean(ones<std::int64_t>({2})); }, {"mean", "int64"});
  check_error([] { exp(ones<std::int64_t>({2})); }, {"unary", "int64"});
}

TEST_CASE("empty tensors work where PyTorch allows them and fail clearly where not") {
  auto e = zeros<float>({0, 4});
  CHECK(e.numel() == 0);
  CHECK(exp(e).shape() == Shape{0, 4});
  CHECK(sum(e).item() == 0.f);
  CHECK(std::isnan(mean(e).item()));
  CHECK(cat(std::vector<Tensor<float>>{e, ones<float>({2, 4})}, 0).shape() == Shape{2, 4});
  CHECK(softmax(e, 1).shape() == Shape{0, 4});
  check_error([&] { amax(e); }, {"amax", "empty", "[0, 4]"});
  check_error([&] { e.item(); }, {"item", "0 elements"});
  check_error([] { zeros<float>({-1}); }, {"empty", "negative", "[-1]"});
}

TEST_CASE("out-of-range indices and dims") {
  auto x = zeros<float>({2, 3});
  check_error([&] { x.size(2); }, {"size", "dim 2"});
  check_error([&] { embedding(tensor<std::int64_t>({5}, {1}), x); }, {"index_select", "index 5", "size 2"});
  check_error([&] { gather(x, 0, tensor<std::int64_t>({0, 2, 0}, {1, 3})); }, {"gather", "index 2", "size 2"});
  check_error([&] { index_add(x, 1, tensor<std::int64_t>({9}, {1}), zeros<float>({2, 1})); }, {"index_add", "index 9"});
  check_error([&] { x.permute({0, 1, 2}); }, {"permute", "3 dims", "[2, 3]"});
}

TEST_CASE("an undefined tensor is an error, not a crash") {
  Tensor<float> u;
  CHECK_FALSE(u.defined());
  check_error([&] { u.shape(); }, {"undefined"});
  check_error([&] { exp(u); }, {"undefined"});
  check_error([&] { add(u, ones<float>({1})); }, {"add", "undefined"});
}

TEST_CASE("CUDA without a GPU (or without the CUDA backend): a clear error, and is_available() is false") {
  if (cuda::is_available()) {
    // A GPU is here: only a device that does not exist fails.
    check_error([] { zeros<float>({2}, Device::cuda(cuda::device_count())); },
                {"cuda:" + std::to_string(cuda::device_count()), "does not exist"});
    return;
  }
  CHECK(cuda::device_count() == 0);
  const std::string why = cuda::is_compiled() ? "no CUDA GPU is available" : "CUDA is not compiled in";
  check_error([] { zeros<float>({2}, Device::cuda()); }, {why, "cuda:0"});
  check_error([] { ones<float>({2}).to(Device::cuda(1)); }, {why, "cuda:1"});
  cuda::synchronize();  // nothing to wait for: a no-op, not an error
}

TEST_CASE("where names the condition's shape when it does not broadcast") {
  check_error([] { where(tensor<bool>({true, false, true}, {3}), ones<float>({2, 2}), zeros<float>({2})); },
              {"where", "[3]", "[2, 2]", "bool condition"});
}

TEST_CASE("errors: arguments tools/fuzz found, each a ligm::Error or a right answer") {
  const auto scalar = scalar_tensor<float>(2.0f);
  check_error([&] { scalar.select(0, 0); }, {"select", "0-dim"});
  check_error([&] { scalar.narrow(0, 0, 1); }, {"narrow", "0-dim"});
  check_error([&] { cat(std::vector<Tensor<float>>{scalar, scalar}); }, {"cat", "0-dim"});
  check_error([&] { gather(scalar, 0, zeros<std::int64_t>({})); }, {"gather", "0-dim"});
  check_error([&] { scalar.size(0); }, {"size", "0-dim"});
  CHECK(topk(scalar, 1).first.item() == 2.0f);
  const auto x = arange<float>(0, 6).reshape({2, 3});
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  check_error([&] { x.narrow(1, 1, big); }, {"narrow", "exceeds"});
  CHECK(x.slice(1, 0, 3, big).shape() == Shape{2, 1});  // a step past the end: one element
  check_error([&] { pad(x, {big, 1}); }, {"pad", "too large"});
  check_error([&] { x.expand({-2, 2, 3}); }, {"expand", "negative size"});
  const auto img = randn<float>({1, 1, 3, 3}), w = randn<float>({1, 1, 2, 2});
  check_error([&] { conv_transpose2d(img, w, {}, {.stride = 0}); }, {"conv_transpose2d", "stride"});
  check_error([&] { conv2d(img, w, {}, {.padding = big / 2}); }, {"conv2d", "beyond 2^62"});
  check_error([&] { conv2d(img, w, {}, {.groups = big}); }, {"conv2d"});
  CHECK(conv2d(img, w, {}, {.stride = big}).shape() == Shape{1, 1, 1, 1});  // one output, any stride
  check_error([&] { conv2d(randn<float>({1, 1, 3, 0}), w, {}, {.padding = 2}); }, {"conv2d", "planes must not be empty"});
  check_error([&] { max_pool2d(randn<float>({1, 1, 0, 3}), {.kernel_size = 2, .padding = 1}); }, {"max_pool2d", "empty"});
  check_error([&] { interpolate(randn<float>({1, 1, 0, 3}), {.size = Pair2(2, 2)}); }, {"interpolate", "empty"});
  check_error([&] { interpolate(img, {.scale_factor = 1e300}); }, {"interpolate", "scale_factor"});
  // Empty inner dims and empty reductions give zeros, without touching the operands' (null) data.
  CHECK(matmul(randn<float>({3, 0}), randn<float>({0, 4})).to_vector() == std::vector<float>(12, 0.0f));
  CHECK(sum(randn<float>({3, 0}), {1}).to_vector() == std::vector<float>(3, 0.0f));
  CHECK(randn<float>({0, 4}).slice(1, 2, 4).shape() == Shape{0, 2});
  // A convolution without input channels sums nothing: zeros, and zero gradients.
  auto w0 = randn<float>({2, 0, 2, 2}).requires_grad_();
  auto y0 = conv2d(randn<float>({1, 0, 3, 3}), w0, ones<float>({2}));
  CHECK(y0.to_vector() == std::vector<float>(8, 1.0f));
  y0.sum().backward();
  CHECK(w0.grad().shape() == w0.shape());
  check_error([&] { conv2d(img, randn<float>({1, 1, 0, 2})); }, {"conv2d", "kernel must not be empty"});
}
