// Movement ops: values and float64 gradchecks.
#include "helpers.hpp"

using namespace th;
using T = Tensor<double>;
using In = std::vector<T>;

TEST_CASE("gradcheck: views") {
  check_grad([](const In& in) { return in[0].reshape({4, 6}); }, {leaf({2, 3, 4}, 1)});
  check_grad([](const In& in) { return in[0].view({3, 8}) * 3.0; }, {leaf({2, 3, 4}, 11)});
  check_grad([](const In& in) { return in[0].permute({2, 0, 1}) * 2.0; }, {leaf({2, 3, 4}, 2)});
  check_grad([](const In& in) { return in[0].transpose(0, 1).reshape({-1}); }, {leaf({3, 4}, 3)});
  check_grad([](const In& in) { return in[0].expand({2, 3, 4}); }, {leaf({3, 1}, 4)});
  check_grad([](const In& in) { return in[0].squeeze(1).unsqueeze(0); }, {leaf({3, 1, 4}, 5)});
  check_grad([](const In& in) { return in[0].narrow(1, 1, 2); }, {leaf({3, 4}, 6)});
  check_grad([](const In& in) { return in[0].slice(1, 1, 7, 2); }, {leaf({3, 7}, 7)});
  check_grad([](const In& in) { return in[0].select(1, -1); }, {leaf({3, 4}, 8)});
  check_grad([](const In& in) { return in[0].flatten(); }, {leaf({2, 3}, 9)});
}

TEST_CASE("gradcheck: cat, stack, split, chunk, flip, pad, roll") {
  check_grad([](const In& in) { return cat(In{in[0], in[1], in[2]}, 1); },
             {leaf({2, 3}, 1), leaf({2, 1}, 2), leaf({2, 4}, 3)});
  check_grad([](const In& in) { return stack(In{in[0], in[1]}, 1); }, {leaf({2, 3}, 4), leaf({2, 3}, 5)});
  check_grad([](const In& in) {
    auto parts = split(in[0], 2, 1);
    return parts[0].sum() * 1.0 + parts[1].sum() * 2.0 + parts[2].sum() * 3.0;
  }, {leaf({3, 5}, 6)});
  check_grad([](const In& in) { return chunk(in[0], 3, 0)[1] * 2.0; }, {leaf({7, 2}, 7)});
  check_grad([](const In& in) { return flip(in[0], {0, 2}); }, {leaf({2, 3, 4}, 8)});
  check_grad([](const In& in) { return pad(in[0], {1, 2, 0, 1}, 0.5); }, {leaf({2, 3, 4}, 9)});
  check_grad([](const In& in) { return roll(in[0], {1, -2}, {0, 1}); }, {leaf({3, 5}, 10)});
}

TEST_CASE("gradcheck: index_select, gather, scatter_add, index_add") {
  auto i1 = tensor<std::int64_t>({4, 0, 4, 2}, {4});
  check_grad([&](const In& in) { return index_select(in[0], 1, i1); }, {leaf({3, 5}, 1)});
  auto i2 = tensor<std::int64_t>({0, 4, 4, 1, 2, 2, 3, 0}, {2, 4});
  check_grad([&](const In& in) { return gather(in[0], 1, i2); }, {leaf({2, 5}, 2)});
  check_grad([&](const In& in) { return scatter_add(in[0], 1, i2, in[1]); }, {leaf({2, 5}, 3), leaf({2, 4}, 4)});
  check_grad([&](const In& in) { return index_add(in[0], 0, tensor<std::int64_t>({1, 1, 0}, {3}), in[1]); },
             {leaf({2, 3}, 5), leaf({3, 3}, 6)});
}

TEST_CASE("movement values") {
  auto x = arange<float>(0, 6).reshape({2, 3});
  CHECK(cat(std::vector<Tensor<float>>{x, x}, 0).shape() == Shape{4, 3});
  CHECK(stack(std::vector<Tensor<float>>{x, x}, 0).shape() == Shape{2, 2, 3});
  CHECK(split(x, 2, 1).size() == 2);
  CHECK(split(x, 2, 1)[1].shape() == Shape{2, 1});
  CHECK(chunk(arange<float>(0, 5), 2)[1].to_vector() == std::vector<float>{3, 4});
  CHECK(flip(x, {1}).to_vector() == std::vector<float>{2, 1, 0, 5, 4, 3});
  CHECK(roll(arange<float>(0, 5), {2}, {0}).to_vector() == std::vector<float>{3, 4, 0, 1, 2});
  CHECK(pad(tensor<float>({1, 2}, {2}), {1, 1}).to_vector() == std::vector<float>{0, 1, 2, 0});
  CHECK(index_select(x, 0, tensor<std::int64_t>({1, 1}, {2})).to_vector() == std::vector<float>{3, 4, 5, 3, 4, 5});
  CHECK(gather(x, 1, tensor<std::int64_t>({2, 0}, {2, 1})).to_vector() == std::vector<float>{2, 3});
  auto sc = scatter_add(zeros<float>({2, 3}), 1, tensor<std::int64_t>({0, 0, 2, 1}, {2, 2}), ones<float>({2, 2}));
  CHECK(sc.to_vector() == std::vector<float>{2, 0, 0, 0, 1, 1});
  CHECK(masked_fill(x, gt(x, 3.f), -1.f).to_vector() == std::vector<float>{0, 1, 2, 3, -1, -1});
  CHECK(x.slice(1, -2, 3).to_vector() == std::vector<float>{1, 2, 4, 5});
}

TEST_CASE("movement ops reject bad input with the op and shapes named") {
  auto x = zeros<float>({2, 3});
  check_error([&] { x.view({4, 2}); }, {"view", "[4, 2]", "6"});
  check_error([&] { x.permute({0, 0}); }, {"permute", "repeated"});
  check_error([&] { x.expand({3, 3}); }, {"expand", "[2, 3]", "[3, 3]"});
  check_error([&] { x.narrow(1, 2, 2); }, {"narrow", "dim 1", "[2, 3]"});
  check_error([&] { x.select(0, 2); }, {"select", "index 2", "[2, 3]"});
  check_error([&] { cat(std::vector<Tensor<float>>{x, zeros<float>({3, 3})}, 1); }, {"cat", "[2, 3]", "[3, 3]"});
  check_error([&] { index_select(x, 1, tensor<std::int64_t>({3}, {1})); }, {"index_select", "index 3", "size 3", "[2, 3]"});
  check_error([&] { gather(x, 1, tensor<std::int64_t>({-1, 0}, {2, 1})); }, {"gather", "index -1", "[2, 3]"});
  check_error([&] { scatter_add(x, 0, tensor<std::int64_t>({2}, {1, 1}), ones<float>({1, 1})); },
              {"scatter_add", "index 2", "size 2"});
  check_error([&] { x.transpose(0, 2); }, {"transpose", "dim 2"});
  check_error([&] { stack(std::vector<Tensor<float>>{}, 0); }, {"stack", "non-empty"});
}
