// Losses: values where they are easy to state, float64 gradchecks for every loss and option.
#include "helpers.hpp"

using namespace th;
using T = Tensor<double>;
using In = std::vector<T>;

TEST_CASE("cross_entropy values") {
  // Uniform logits over C classes: loss = log C.
  auto logits = zeros<double>({4, 5});
  auto target = tensor<std::int64_t>({0, 1, 2, 3}, {4});
  check_close(cross_entropy(logits, target), {std::log(5.0)});
  // All targets ignored: PyTorch returns nan for the mean.
  auto ignored = full<std::int64_t>({4}, -100);
  CHECK(std::isnan(cross_entropy(logits, ignored).item()));
  // Soft one-hot targets equal the index form.
  auto x = randn<double>({4, 5});
  auto soft = one_hot(target, 5).to<double>();
  check_close(cross_entropy(x, soft), cross_entropy(x, target).to_vector());
}

TEST_CASE("gradcheck: every loss and option") {
  auto t = tensor<std::int64_t>({0, 4, 2, 2, 1, 3}, {6});
  auto w = rand<double>({5}) + 0.5;
  auto t_ign = tensor<std::int64_t>({0, -100, 2, 2, 1, 3}, {6});
  check_grad([&](const In& in) { return cross_entropy(in[0], t); }, {leaf({6, 5}, 1)});
  check_grad([&](const In& in) { return cross_entropy(in[0], t, {.label_smoothing = 0.1}); }, {leaf({6, 5}, 2)});
  check_grad([&](const In& in) { return cross_entropy(in[0], t_ign, {.weight = w}); }, {leaf({6, 5}, 3)});
  check_grad([&](const In& in) {
    return cross_entropy(in[0], t, {.weight = w, .ignore_index = 2, .label_smoothing = 0.2});
  }, {leaf({6, 5}, 4)});
  check_grad([&](const In& in) { return cross_entropy(in[0], t, {.reduction = "sum"}); }, {leaf({6, 5}, 5)});
  auto t4 = tensor<std::int64_t>({0, 1, 2, 3, 0, 1, 2, 3}, {2, 2, 2});
  check_grad([&](const In& in) { return cross_entropy(in[0], t4, {.reduction = "none"}); }, {leaf({2, 4, 2, 2}, 6)});
  auto p = softmax(randn<double>({4, 5}), 1);
  check_grad([&](const In& in) { return cross_entropy(in[0], p, {.label_smoothing = 0.3}); }, {leaf({4, 5}, 7)});
  check_grad([&](const In& in) { return nll_loss(log_softmax(in[0], 1), t); }, {leaf({6, 5}, 8)});
  check_grad([](const In& in) { return mse_loss(in[0], in[1]); }, {leaf({3, 4}, 9), leaf({3, 4}, 10)});
  check_grad([](const In& in) { return l1_loss(in[0], in[1], "sum"); }, {leaf({3, 4}, 11), leaf({3, 4}, 12)});
  check_grad([](const In& in) { return smooth_l1_loss(in[0], in[1], "mean", 0.5); }, {leaf({3, 4}, 13), leaf({3, 4}, 14)});
  check_grad([](const In& in) { return huber_loss(in[0], in[1], "none", 0.7); }, {leaf({3, 4}, 15), leaf({3, 4}, 16)});
  auto y = rand<double>({4, 3});
  auto pw = rand<double>({3}) + 0.5;
  check_grad([&](const In& in) { return binary_cross_entropy_with_logits(in[0], y, {.pos_weight = pw}); }, {leaf({4, 3}, 17)});
  check_grad([&](const In& in) { return binary_cross_entropy_with_logits(in[0], in[1]); }, {leaf({4, 3}, 18), leaf({4, 3}, 19, 0, 1)});
  check_grad([&](const In& in) { return binary_cross_entropy_with_logits(in[0], in[1], {.weight = in[2], .pos_weight = in[3]}); },
             {leaf({4, 3}, 43), leaf({4, 3}, 44, 0, 1), leaf({4, 1}, 45, 0.5, 2), leaf({3}, 46, 0.5, 2)});
  // At x = 0 exactly (a zero-initialised probe) the gradient is sigmoid(0) - y, as PyTorch's.
  auto z = zeros<double>({4}).requires_grad_();
  binary_cross_entropy_with_logits(z, tensor<double>({1, 0, 1, 1}, {4})).backward();
  CHECK(z.grad().to_vector() == std::vector<double>{-0.125, 0.125, -0.125, -0.125});
  auto target_p = softmax(randn<double>({3, 4}), 1);
  check_grad([&](const In& in) { return kl_div(log_softmax(in[0], 1), target_p, "batchmean"); }, {leaf({3, 4}, 20)});
  check_grad([&](const In& in) { return kl_div(in[0], log_softmax(in[1], 1), "sum", true); }, {leaf({3, 4}, 21), leaf({3, 4}, 22)});
  check_grad([](const In& in) { return cosine_similarity(in[0], in[1], 1); }, {leaf({3, 5}, 23), leaf({3, 5}, 24)});
  // Probabilities away from 0 and 1, both inputs differentiable (the target too, as PyTorch).
  check_grad([](const In& in) { return binary_cross_entropy(in[0], in[1], {}, "sum"); },
             {leaf({4, 3}, 25, 0.1, 0.9), leaf({4, 3}, 26, 0, 1)});
  const auto classes = tensor<std::int64_t>({0, 3, 1, 1, 2}, {5});
  check_grad([&](const In& in) { return multi_margin_loss(in[0], classes); }, {leaf({5, 4}, 27)});
  const auto class_weight = rand<double>({4}) + 0.5;
  check_grad([&](const In& in) { return multi_margin_loss(in[0], classes, 2, 0.5, class_weight); },
             {leaf({5, 4}, 28)});
  check_grad([&](const In& in) { return multi_margin_loss(in[0], tensor<std::int64_t>({2}, {})); }, {leaf({4}, 29)});
  const auto signs = tensor<double>({1, -1, -1, 1, 1, -1}, {6});
  check_grad([&](const In& in) { return hinge_embedding_loss(in[0], signs, 0.5); }, {leaf({6}, 30)});
  check_grad([&](const In& in) { return margin_ranking_loss(in[0], in[1], signs, 0.2); }, {leaf({6}, 31), leaf({6}, 32)});
  check_grad([](const In& in) { return triplet_margin_loss(in[0], in[1], in[2], 3.0); },
             {leaf({3, 5}, 33), leaf({3, 5}, 34), leaf({3, 5}, 35)});
  check_grad([](const In& in) { return triplet_margin_loss(in[0], in[1], in[2], 3.0, 1.0, 1e-6, true); },
             {leaf({3, 5}, 36), leaf({3, 5}, 37), leaf({3, 5}, 38)});
  check_grad([&](const In& in) { return cosine_embedding_loss(in[0], in[1], signs.narrow(0, 0, 3), -0.5); },
             {leaf({3, 5}, 39), leaf({3, 5}, 40)});
  check_grad([](const In& in) { return pairwise_distance(in[0], in[1], 3.0); }, {leaf({3, 5}, 41), leaf({3, 5}, 42)});
}

TEST_CASE("loss errors") {
  auto x = zeros<float>({4, 5});
  check_error([&] { cross_entropy(x, tensor<std::int64_t>({0, 1, 7, 2}, {4})); },
              {"cross_entropy", "target 7", "5 classes"});
  check_error([&] { cross_entropy(x, tensor<std::int64_t>({0, 1}, {2})); }, {"cross_entropy", "[2]", "[4, 5]"});
  check_error([&] { nll_loss(x, tensor<std::int64_t>({0, 1, 5, 2}, {4})); }, {"nll_loss", "target 5", "5 classes"});
  check_error([&] { cross_entropy(x, tensor<std::int64_t>({0, 1, 2, 3}, {4}), {.reduction = "avg"}); },
              {"cross_entropy", "reduction", "avg"});
  check_error([&] { mse_loss(x, x, "average"); }, {"mse_loss", "reduction", "average"});
  check_error([&] { cross_entropy(x, zeros<float>({4, 4})); }, {"cross_entropy", "[4, 4]", "[4, 5]"});
  check_error([&] { binary_cross_entropy(tensor<float>({0.5f, 1.5f}, {2}), zeros<float>({2})); },
              {"binary_cross_entropy", "between 0 and 1"});
  check_error([&] { binary_cross_entropy(tensor<float>({0.5f, NAN}, {2}), zeros<float>({2})); },
              {"binary_cross_entropy", "between 0 and 1"});
  // At 0 and 1 the logs are clamped at -100, as PyTorch: finite.
  CHECK(binary_cross_entropy(tensor<double>({0, 1}, {2}), tensor<double>({1, 0}, {2})).item() == 100);
  check_error([&] { multi_margin_loss(x, tensor<std::int64_t>({0, 1, 5, 2}, {4})); }, {"multi_margin_loss", "target 5"});
  check_error([&] { multi_margin_loss(x, tensor<std::int64_t>({0, 1, 2, 2}, {4}), 3); }, {"multi_margin_loss", "p must"});
  check_error([&] { triplet_margin_loss(x, x, zeros<float>({4, 4})); }, {"triplet_margin_loss", "[4, 4]"});
  check_error([&] { cosine_embedding_loss(x, zeros<float>({4, 4}), zeros<float>({4})); },
              {"cosine_embedding_loss", "[4, 5]", "[4, 4]"});
}
