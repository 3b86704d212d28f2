// Every op gives the same values and gradients on a non-contiguous view (transposed, sliced
// with a step, expanded) as on a contiguous copy of it.
#include <functional>

#include "helpers.hpp"

using namespace th;
using T = Tensor<double>;

namespace {
// A [4, 6] view with strides (1, 12) over a larger buffer: transposed and stepped.
T strided_view(std::uint64_t seed) {
  auto base = leaf({12, 8}, seed).detach();
  return base.slice(0, 0, 12, 2).t().slice(0, 1, 5).t().t();  // shape [4, 6], not contiguous
}

void same_on_views(const char* name, const std::function<T(const T&)>& fn) {
  CAPTURE(name);
  auto view = strided_view(7);
  REQUIRE_FALSE(view.is_contiguous());
  auto a = view.clone().detach().requires_grad_();  // contiguous copy
  auto b_base = leaf({12, 8}, 7);
  auto b = b_base.slice(0, 0, 12, 2).t().slice(0, 1, 5).t().t();  // the same view, with grad
  auto ya = fn(a), yb = fn(b);
  check_close(yb, ya, 1e-12, 1e-10, "forward");
  auto cot = randn<double>(ya.shape());
  ya.backward(cot);
  yb.backward(cot);
  auto gb = b_base.grad().slice(0, 0, 12, 2).t().slice(0, 1, 5).t().t();
  check_close(gb, a.grad(), 1e-12, 1e-10, "gradient");
}
}  // namespace

TEST_CASE("ops on non-contiguous views match their contiguous copies") {
  same_on_views("exp", [](const T& x) { return exp(x); });
  same_on_views("gelu", [](const T& x) { return gelu(x); });
  same_on_views("add_bcast", [](const T& x) { return add(x, x.select(0, 1)); });
  same_on_views("mul_self_t", [](const T& x) { return mul(x, x.flip({0, 1})); });
  same_on_views("sum", [](const T& x) { return sum(x, {0}); });
  same_on_views("amax", [](const T& x) { return amax(x, {1}, true); });
  same_on_views("max_dim", [](const T& x) { return max(x, 0).first; });
  same_on_views("var", [](const T& x) { return var(x, {1}); });
  same_on_views("softmax0", [](const T& x) { return softmax(x, 0); });
  same_on_views("log_softmax1", [](const T& x) { return log_softmax(x, 1); });
  same_on_views("matmul", [](const T& x) { return matmul(x, x.t()); });
  same_on_views("matmul_t", [](const T& x) { return matmul(x.t(), x); });
  same_on_views("linear", [](const T& x) { return linear(x, x.slice(0, 0, 3)); });
  same_on_views("gather", [](const T& x) { return gather(x, 1, tensor<std::int64_t>({5, 0, 2, 2, 1, 3, 4, 0}, {4, 2})); });
  same_on_views("index_select", [](const T& x) { return index_select(x, 0, tensor<std::int64_t>({3, 1, 3}, {3})); });
  same_on_views("scatter_add", [](const T& x) {
    return scatter_add(x, 1, tensor<std::int64_t>({0, 0, 1, 5, 4, 4, 2, 3}, {4, 2}), x.slice(1, 0, 2));
  });
  same_on_views("where", [](const T& x) { return where(gt(x, 0.0), x, x.t().t() * 2.0); });
  same_on_views("cat", [](const T& x) { return cat(std::vector<T>{x, x.t().reshape({4, 6})}, 0); });
  same_on_views("pad", [](const T& x) { return pad(x, {1, 1}); });
  same_on_views("conv2d", [](const T& x) { return conv2d(x.reshape({1, 1, 4, 6}), x.slice(0, 0, 3).slice(1, 0, 3).reshape({1, 1, 3, 3})); });
  same_on_views("max_pool", [](const T& x) { return max_pool2d(x.reshape({1, 1, 4, 6}), {.kernel_size = 2}); });
  same_on_views("layer_norm", [](const T& x) { return layer_norm(x, {6}); });
  same_on_views("cross_entropy", [](const T& x) { return cross_entropy(x, tensor<std::int64_t>({0, 5, 3, 1}, {4})); });
  same_on_views("sort", [](const T& x) { return sort(x, 0).first; });
  same_on_views("norm", [](const T& x) { return norm(x, 2, {1}); });
  same_on_views("expand", [](const T& x) { return x.select(1, 2).unsqueeze(1).expand({4, 3}) * x.slice(1, 0, 3); });
}
