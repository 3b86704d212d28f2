// Tensor data model: creation, views and aliasing, copies, dtypes, printing.
#include <sstream>

#include <ligm/backend/cpu/allocator.hpp>

#include "helpers.hpp"

using namespace th;

TEST_CASE("creation ops fill shapes and values") {
  CHECK(zeros<float>({2, 3}).to_vector() == std::vector<float>(6, 0.f));
  CHECK(ones<double>({4}).to_vector() == std::vector<double>(4, 1.0));
  CHECK(full<std::int64_t>({2}, 7).to_vector() == std::vector<std::int64_t>{7, 7});
  CHECK(arange<std::int64_t>(0, 5).to_vector() == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(arange<double>(1, 2, 0.25).to_vector() == std::vector<double>{1, 1.25, 1.5, 1.75});
  check_close(linspace<double>(0, 1, 5), {0, 0.25, 0.5, 0.75, 1.0}, 0, 0);
  CHECK(eye<float>(2, 3).to_vector() == std::vector<float>{1, 0, 0, 0, 1, 0});
  auto t = tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.strides() == Shape{3, 1});
  CHECK(t.numel() == 6);
  CHECK(t.dim() == 2);
  CHECK(t.dtype() == DType::Float32);
  CHECK(zeros_like(t).shape() == t.shape());
  CHECK(ones_like(t).to_vector() == std::vector<float>(6, 1.f));
  CHECK(full_like(t, 2.f).to_vector() == std::vector<float>(6, 2.f));
  CHECK(scalar_tensor<double>(3.5).item() == 3.5);
  CHECK(scalar_tensor<double>(3.5).dim() == 0);
  CHECK(tensor<bool>({true, false, true}, {3}).to_vector() == std::vector<bool>{true, false, true});
}

TEST_CASE("views share storage: transpose, slice, expand copy nothing") {
  auto base = arange<float>(0, 12).reshape({3, 4});
  auto tr = base.t();
  CHECK(tr.storage() == base.storage());
  CHECK(tr.strides() == Shape{1, 4});
  CHECK_FALSE(tr.is_contiguous());
  CHECK(tr.to_vector() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  auto sl = base.slice(1, 1, 4, 2);  // columns 1 and 3
  CHECK(sl.storage() == base.storage());
  CHECK(sl.storage_offset() == 1);
  CHECK(sl.to_vector() == std::vector<float>{1, 3, 5, 7, 9, 11});
  auto ex = tensor<float>({1, 2}, {2, 1}).expand({2, 3});
  CHECK(ex.strides() == Shape{1, 0});
  CHECK(ex.to_vector() == std::vector<float>{1, 1, 1, 2, 2, 2});
  auto row = base.select(0, 1);
  CHECK(row.to_vector() == std::vector<float>{4, 5, 6, 7});
  CHECK(base.narrow(0, 2, 1).to_vector() == std::vector<float>{8, 9, 10, 11});
}

TEST_CASE("an in-place write through a view is seen by the base") {
  auto base = zeros<float>({3, 4});
  auto col = base.select(1, 2);
  col.fill_(5.f);
  CHECK(base.to_vector() == std::vector<float>{0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 5, 0});
  auto tr = base.t();
  tr.select(0, 0).copy_(tensor<float>({1, 2, 3}, {3}));
  CHECK(base.select(1, 0).to_vector() == std::vector<float>{1, 2, 3});
  base.narrow(0, 1, 1).add_(ones<float>({1, 4}));
  CHECK(base.select(0, 1).to_vector() == std::vector<float>{3, 1, 6, 1});
  base.view({12}).mul_(2.f);
  CHECK(base.select(0, 0).to_vector() == std::vector<float>{2, 0, 10, 0});
  base.zero_();
  CHECK(base.sum().item() == 0.f);
}

TEST_CASE("view works without a copy where strides allow, reshape copies otherwise") {
  auto x = arange<float>(0, 24).reshape({2, 3, 4});
  auto v = x.view({6, 4});
  CHECK(v.storage() == x.storage());
  auto p = x.permute({1, 0, 2});  // [3, 2, 4], not contiguous
  auto split_last = p.view({3, 2, 2, 2});  // splitting a contiguous dim is fine
  CHECK(split_last.storage() == x.storage());
  th::check_error([&] { p.view({6, 4}); }, {"ligm::view", "[6, 4]", "reshape"});
  auto r = p.reshape({6, 4});
  CHECK(r.storage() != x.storage());
  CHECK(r.to_vector()[4] == 12.f);
  CHECK(x.view({-1}).shape() == Shape{24});
  CHECK(x.flatten(1).shape() == Shape{2, 12});
  CHECK(x.unsqueeze(0).squeeze(0).shape() == x.shape());
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
}

TEST_CASE("clone, contiguous, dtype casts and copy_ with broadcasting") {
  auto x = arange<double>(0, 6).reshape({2, 3});
  auto c = x.clone();
  c.fill_(1.0);
  CHECK(x.sum().item() == 15.0);
  auto t = x.t();
  CHECK(t.contiguous().is_contiguous());
  CHECK(x.contiguous().is_same(x));
  CHECK(x.to<std::int64_t>().to_vector() == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
  CHECK(x.to<float>().dtype() == DType::Float32);
  CHECK(gt(x, 2.0).to_vector() == std::vector<bool>{false, false, false, true, true, true});
  auto dst = zeros<double>({2, 3});
  dst.copy_(tensor<double>({1, 2, 3}, {3}));
  CHECK(dst.to_vector() == std::vector<double>{1, 2, 3, 1, 2, 3});
  CHECK(x.to(Device::cpu()).is_same(x));
}

TEST_CASE("printing looks like PyTorch") {
  std::ostringstream os;
  os << tensor<float>({1, -2.5f, 0, 3}, {2, 2});
  CHECK(os.str() == "tensor([[ 1.0000, -2.5000],\n        [ 0.0000,  3.0000]])");
  std::ostringstream os2;
  auto x = leaf({2}, 0);
  os2 << x * 2.0;
  CHECK(os2.str().find("grad_fn=<MulBackward>") != std::string::npos);
  CHECK(os2.str().find("dtype=float64") != std::string::npos);
  std::ostringstream big;
  big << arange<float>(0, 2000).reshape({2, 1000});
  CHECK(big.str().find("...,  997.0000,  998.0000,  999.0000]") != std::string::npos);
  std::ostringstream empty;
  empty << zeros<float>({0, 3});
  CHECK(empty.str() == "tensor([], size=(0, 3))");
  std::ostringstream os3;
  os3 << tensor<std::int64_t>({1, 2, 3}, {3});
  CHECK(os3.str() == "tensor([1, 2, 3], dtype=int64)");
}

TEST_CASE("thread count setting") {
  const int before = get_num_threads();
  set_num_threads(1);
  CHECK(get_num_threads() == 1);
  auto a = randn<float>({300, 200});
  auto b = randn<float>({200, 100});
  auto one = matmul(a, b).to_vector();
  set_num_threads(4);
  auto four = matmul(a, b).to_vector();
  set_num_threads(before);
  for (std::size_t i = 0; i < one.size(); ++i) CHECK(one[i] == doctest::Approx(four[i]).epsilon(1e-5));
}

TEST_CASE("member forms of the ops, as in PyTorch") {
  auto x = tensor<double>({1, 4, 2, 8, 5, 7}, {2, 3});
  CHECK(x.sum({1}).to_vector() == std::vector<double>{7, 20});
  CHECK(x.mean().item() == doctest::Approx(4.5));
  CHECK(x.var({1}).to_vector()[0] == doctest::Approx(7.0 / 3.0));
  CHECK(x.std().item() == doctest::Approx(stddev(x).item()));
  CHECK(x.max().item() == 8);
  CHECK(x.min(1).second.to_vector() == std::vector<std::int64_t>{0, 1});
  CHECK(x.argmax().item() == 3);
  CHECK(x.argmax(1).to_vector() == std::vector<std::int64_t>{1, 0});
  CHECK(x.amax({0}).to_vector() == std::vector<double>{8, 5, 7});
  CHECK(x.softmax(1).sum({1}).to_vector()[1] == doctest::Approx(1.0));
  CHECK(x.matmul(x.t()).shape() == Shape{2, 2});
  CHECK(x.clamp(2, 5).to_vector() == std::vector<double>{2, 4, 2, 5, 5, 5});
  CHECK(x.gather(1, tensor<std::int64_t>({2, 0}, {2, 1})).to_vector() == std::vector<double>{2, 8});
  CHECK(x.split(2, 1).size() == 2);
  CHECK(max(x, full_like(x, 4.0)).to_vector() == std::vector<double>{4, 4, 4, 8, 5, 7});
  CHECK(x.norm().item() == doctest::Approx(std::sqrt(159.0)));
}

TEST_CASE("free-function forms of the views") {
  auto x = arange<float>(0, 6);
  CHECK(reshape(x, {2, 3}).shape() == Shape{2, 3});
  CHECK(transpose(reshape(x, {2, 3}), 0, 1).shape() == Shape{3, 2});
  CHECK(t(view(x, {3, 2})).shape() == Shape{2, 3});
  CHECK(unsqueeze(x, 0).shape() == Shape{1, 6});
  CHECK(squeeze(unsqueeze(x, 1), 1).shape() == Shape{6});
  CHECK(narrow(x, 0, 1, 2).to_vector() == std::vector<float>{1, 2});
  CHECK(clamp_max(clamp_min(x, 1.0), 4.0).to_vector() == std::vector<float>{1, 1, 2, 3, 4, 4});
  CHECK(flatten(permute(reshape(x, {1, 2, 3}), {2, 1, 0})).shape() == Shape{6});
}

TEST_CASE("cpu allocator: large blocks are cached by size class and reused") {
  using cpu::CpuAllocator;
  CHECK(CpuAllocator::size_class(1) == 64);
  CHECK(CpuAllocator::size_class(1000) == 1024);
  CHECK(CpuAllocator::size_class(64 << 10) == (64 << 10));
  CHECK(CpuAllocator::size_class((64 << 10) + 1) == (80 << 10));  // four classes per power of two
  CHECK(CpuAllocator::size_class(100 << 10) == (112 << 10));
  for (std::size_t b : {std::size_t(70000), std::size_t(1) << 20, std::size_t(3'000'001)}) {
    CHECK(CpuAllocator::size_class(b) >= b);
    CHECK(CpuAllocator::size_class(b) < b + b / 4 + 64);
  }
  CpuAllocator a;
  void* p = a.allocate(100'000);
  a.deallocate(p, 100'000);
  CHECK(a.cached_bytes() == CpuAllocator::size_class(100'000));
  CHECK(a.allocate(110'000) == p);  // same class: the cached block comes back
  CHECK(a.cached_bytes() == 0);
  void* small = a.allocate(100);
  a.deallocate(small, 100);  // small blocks are not cached
  CHECK(a.cached_bytes() == 0);
  a.deallocate(p, 110'000);
  CHECK(a.empty_cache() == CpuAllocator::size_class(100'000));
  CHECK(a.cached_bytes() == 0);
  // Tensors freed and made again in a loop reuse their memory.
  const void* first = nullptr;
  for (int i = 0; i < 3; ++i) {
    auto t = empty<float>({256, 256});
    if (!first) first = t.data_ptr();
    CHECK(t.data_ptr() == first);
  }
}
