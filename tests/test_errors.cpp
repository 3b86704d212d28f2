// Bad input: every failure is a ligm::Error that names the op and the operands.
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
