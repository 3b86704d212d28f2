// Eidetic learning (methods/eidetic): the spec's invariants I1-I8 on small synthetic tasks,
// and regression tests for the official code's bugs (shared/specs/eidetic.md section 7).
#include <fstream>

#include <ligm/methods/eidetic/eidetic.hpp>

#include "helpers.hpp"

using namespace th;
namespace eid = ligm::methods::eidetic;
using F = Tensor<float>;

namespace {

// Task t: two Gaussian clusters in 8 dims (class 0 and 1), well separated, 160 examples.
data::TensorDataset<float> make_task(std::uint64_t t, std::int64_t n = 160) {
  Generator g(100 + t);
  auto centers = mul(randn<float>({2, 8}, g), 2.5f);
  auto y = randint(0, 2, {n}, g);
  auto x = add(index_select(centers, 0, y), randn<float>({n, 8}, g));
  return {x, y};
}

eid::Options quiet(eid::Pruning p) {
  eid::Options o;
  o.pruning = p;
  o.lr = 1e-2;
  o.batch_size = 32;
  o.patience = 1;
  o.max_epochs = 6;
  o.max_recovery_epochs = 1;
  o.step = 0.2;
  o.tol = 0.05;
  o.router_max_epochs = 8;
  o.verbose = false;
  return o;
}

// Every parameter and buffer, by name (values copied).
std::map<std::string, F> values(eid::EideticNet<float>& net) {
  std::map<std::string, F> m;
  for (auto& [n, p] : net.named_parameters()) m[n] = p.detach().clone();
  for (auto& [n, b] : net.named_buffers()) m[n] = b.clone();
  return m;
}

// Rows owned by task s, of every layer, hold the values they had at end(s) (I1); so do the
// BatchNorm weight, bias and running statistics of those channels, and head s entirely.
void check_persistence(eid::EideticNet<float>& net, const std::vector<std::map<std::string, F>>& at_end) {
  for (std::size_t li = 0; li < net.layers().size(); ++li) {
    auto& l = net.layers()[li];
    const std::string k = std::to_string(li), pre = "bn" + k + ".";
    const std::string wname = (l.linear ? "linear" : "conv") + k + ".weight";
    for (std::int64_t i = 0; i < l.neurons(); ++i) {
      const auto s = l.owner[std::size_t(i)];
      if (s < 0) continue;
      const auto& then = at_end[std::size_t(s)];
      CHECK(l.weight().detach().select(0, i).to_vector() == then.at(wname).select(0, i).to_vector());
      if (l.proj)
        CHECK(l.proj->weight.detach().select(0, i).to_vector() == then.at("proj" + k + ".weight").select(0, i).to_vector());
      if (l.bn)
        for (const char* b : {"weight", "bias", "running_mean", "running_var"}) {
          auto now = values(net).at(pre + b).to_vector();
          CHECK(now[std::size_t(i)] == then.at(pre + b).to_vector()[std::size_t(i)]);
        }
    }
  }
  for (std::size_t s = 0; s + 1 < at_end.size(); ++s)
    for (const char* p : {"weight", "bias"}) {
      const std::string n = "head" + std::to_string(s) + "." + p;
      CHECK(values(net).at(n).to_vector() == at_end[s].at(n).to_vector());
    }
}

// An owned neuron reads exact zeros from every input neuron not owned by the same or an
// earlier task (I2); so does every old head.
void check_resistance(eid::EideticNet<float>& net) {
  auto& layers = net.layers();
  for (std::size_t li = 1; li < layers.size(); ++li) {
    auto& l = layers[li];
    const auto& in = layers[li - 1].owner;
    auto w = l.weight().detach().reshape({l.neurons(), std::int64_t(in.size()), -1});
    for (std::int64_t i = 0; i < l.neurons(); ++i) {
      const auto s = l.owner[std::size_t(i)];
      if (s < 0) continue;
      for (std::size_t j = 0; j < in.size(); ++j)
        if (in[j] < 0 || in[j] > s) REQUIRE(abs(w.select(0, i).select(0, std::int64_t(j))).max().item() == 0.0f);
    }
    if (!l.proj || li < 2) continue;  // a residual projection reads the block's input
    const auto& block_in = layers[li - 2].owner;
    auto pw = l.proj->weight.detach().reshape({l.neurons(), std::int64_t(block_in.size())});
    for (std::int64_t i = 0; i < l.neurons(); ++i) {
      const auto s = l.owner[std::size_t(i)];
      if (s < 0) continue;
      for (std::size_t j = 0; j < block_in.size(); ++j)
        if (block_in[j] < 0 || block_in[j] > s) REQUIRE(pw.select(0, i).select(0, std::int64_t(j)).item() == 0.0f);
    }
  }
  const auto& last = layers.back().owner;
  for (std::size_t s = 0; s + 1 < net.heads().size(); ++s) {
    auto w = net.heads()[s]->weight.detach();
    for (std::size_t j = 0; j < last.size(); ++j)
      if (last[j] < 0 || last[j] > std::int64_t(s)) REQUIRE(abs(w.select(1, std::int64_t(j))).max().item() == 0.0f);
  }
}

}  // namespace

TEST_CASE("eidetic: zero forgetting, bit for bit, with every pruning criterion (I1, I2, I3, I5, I6)") {
  for (auto p : {eid::Pruning::Taylor, eid::Pruning::L2, eid::Pruning::L1, eid::Pruning::Random}) {
    CAPTURE(std::string(eid::pruning_name(p)));
    manual_seed(1);
    eid::EideticNet<float> net(quiet(p));
    net.add_linear(8, 16).add_linear(16, 16);
    const int T = 3;
    std::vector<data::TensorDataset<float>> tasks;
    for (int t = 0; t < T; ++t) {
      tasks.push_back(make_task(std::uint64_t(t)));
      net.add_task(2);
    }
    const auto probe = randn<float>({24, 8});
    std::vector<std::vector<float>> logits_at_end;
    std::vector<std::map<std::string, F>> at_end;
    std::vector<std::vector<std::int64_t>> owners_before(2);
    for (int t = 0; t < T; ++t) {
      for (std::size_t li = 0; li < 2; ++li) owners_before[li] = net.layers()[li].owner;
      auto r = net.learn_task(t, tasks[std::size_t(t)], t + 1 < T);
      CHECK(r.final_train_accuracy > 0.8);
      // I5: earlier owners never change, and no owned neuron was pruned.
      for (std::size_t li = 0; li < 2; ++li) {
        auto& l = net.layers()[li];
        for (std::size_t i = 0; i < l.owner.size(); ++i) {
          if (owners_before[li][i] >= 0) CHECK(l.owner[i] == owners_before[li][i]);
          if (l.owner[i] >= 0) CHECK(l.pruned[i] == 0);
        }
      }
      logits_at_end.push_back(net.task_logits(probe, t).to_vector());
      at_end.push_back(values(net));
      for (int s = 0; s <= t; ++s) CHECK(net.task_logits(probe, s).to_vector() == logits_at_end[std::size_t(s)]);  // I3
    }
    const double router_acc = net.learn_router(tasks);
    CHECK(router_acc > 0.5);
    for (int s = 0; s < T; ++s) CHECK(net.task_logits(probe, s).to_vector() == logits_at_end[std::size_t(s)]);
    check_persistence(net, at_end);
    check_resistance(net);
    // I6: per layer, free + owned = neurons.
    for (auto& c : net.capacity()) {
      std::int64_t owned = 0;
      for (auto o : c.owned) owned += o;
      CHECK(c.free + owned == c.neurons);
      CHECK(owned > 0);
    }
    // Routing: the router sends most inputs to their own task's head; the oracle route matches
    // each head's own argmax.
    std::int64_t right = 0, total = 0;
    for (int t = 0; t < T; ++t) {
      auto routed = net.route(tasks[std::size_t(t)].inputs);
      right += sum(eq(routed.task, std::int64_t(t)).to<std::int64_t>()).item();
      total += tasks[std::size_t(t)].size();
      auto oracle = net.route(tasks[std::size_t(t)].inputs, full<std::int64_t>({tasks[std::size_t(t)].size()}, t));
      CHECK(oracle.cls.to_vector() == argmax(net.task_logits(tasks[std::size_t(t)].inputs, t), 1).to_vector());
    }
    CHECK(double(right) / double(total) > 0.6);
  }
}

TEST_CASE("eidetic: a CNN (conv -> BN -> ReLU -> max-pool, flattened into a Linear) and a residual network forget nothing") {
  for (int variant = 0; variant < 4; ++variant) {
    const auto p = variant % 2 ? eid::Pruning::L2 : eid::Pruning::Taylor;
    const bool residual = variant >= 2;
    CAPTURE(std::string(eid::pruning_name(p)));
    CAPTURE(residual);
    manual_seed(5);
    auto o = quiet(p);
    o.step = 0.3;
    eid::EideticNet<float> net(o);
    if (residual)  // 6x6 -> conv -> 6x6 -> block (stride 2, 1x1 projection) -> 3x3 -> Linear
      net.add_conv(1, 4, 3, 1, true, 0).add_residual_block(4, 6, 2).add_linear(6 * 3 * 3, 8);
    else
      net.add_conv(1, 6, 3, 1, true, 2).add_conv(6, 6, 3, 1, true, 0).add_linear(6 * 3 * 3, 8);
    std::vector<data::TensorDataset<float>> tasks;
    for (int t = 0; t < 3; ++t) {
      auto d = make_task(std::uint64_t(t) + 30);
      // 8 features -> a 1x6x6 image: the features spread over the plane.
      auto img = matmul(d.inputs, randn<float>({8, 36})).reshape({d.size(), 1, 6, 6});
      tasks.push_back({img, d.targets});
      net.add_task(2);
    }
    const auto probe = randn<float>({10, 1, 6, 6});
    std::vector<std::vector<float>> logits;
    std::vector<std::map<std::string, F>> at_end;
    for (int t = 0; t < 3; ++t) {
      auto r = net.learn_task(t, tasks[std::size_t(t)]);
      if (t == 0) CHECK(r.prune_steps > 0);  // later tasks may find no free capacity left
      logits.push_back(net.task_logits(probe, t).to_vector());
      at_end.push_back(values(net));
      for (int s = 0; s <= t; ++s) CHECK(net.task_logits(probe, s).to_vector() == logits[std::size_t(s)]);
    }
    net.learn_router(tasks);
    for (int s = 0; s < 3; ++s) CHECK(net.task_logits(probe, s).to_vector() == logits[std::size_t(s)]);
    check_persistence(net, at_end);
    check_resistance(net);
  }
}

TEST_CASE("eidetic: pruning past the free pool never picks an owned neuron and terminates (P3, P4, P5)") {
  for (auto p : {eid::Pruning::L2, eid::Pruning::L1, eid::Pruning::Random, eid::Pruning::Taylor}) {
    CAPTURE(std::string(eid::pruning_name(p)));
    manual_seed(2);
    auto o = quiet(p);
    o.step = 0.5;
    o.tol = 1.0;                // accuracy never stops pruning: only the candidates and the ratio do
    o.max_masking_ratio = 1.0;  // not even the ratio: pruning runs out of candidates
    eid::EideticNet<float> net(o);
    net.add_linear(8, 12).add_linear(12, 12).add_linear(12, 12);
    std::vector<data::TensorDataset<float>> tasks;
    for (int t = 0; t < 3; ++t) {
      tasks.push_back(make_task(std::uint64_t(t) + 10));
      net.add_task(2);
    }
    const auto probe = randn<float>({16, 8});
    std::vector<std::vector<float>> logits;
    for (int t = 0; t < 3; ++t) {
      auto r = net.learn_task(t, tasks[std::size_t(t)]);
      CHECK(r.prune_steps > 0);
      for (auto& l : net.layers())
        for (std::size_t i = 0; i < l.owner.size(); ++i)
          if (l.owner[i] >= 0) CHECK(l.pruned[i] == 0);
      logits.push_back(net.task_logits(probe, t).to_vector());
      for (int s = 0; s <= t; ++s) CHECK(net.task_logits(probe, s).to_vector() == logits[std::size_t(s)]);
    }
    check_resistance(net);
  }
}

TEST_CASE("eidetic: the choice of neurons to prune, on hand-made layers (pruning.hpp)") {
  // Two Linear layers of 4 neurons; layer 0's rows have norms 1, 2, 3, 4 (L1 = L2 here: one
  // non-zero per row), layer 1's 4, 3, 2, 1; neuron 0 of layer 0 is owned (the smallest row).
  auto layer = [](std::vector<float> diag, std::vector<std::int64_t> owner) {
    eid::Layer<float> l;
    l.linear = std::make_shared<nn::Linear<float>>(4, 4, false);
    NoGradGuard g;
    l.linear->weight.copy_(mul(eye<float>(4), tensor<float>(diag, {4, 1})));
    l.owner = owner;
    l.pruned.assign(4, 0);
    return l;
  };
  std::vector<eid::Layer<float>> layers{layer({1, 2, 3, 4}, {0, -1, -1, -1}), layer({4, 3, 2, 1}, {-1, -1, -1, -1})};
  CHECK(eid::candidates(layers) == 7);
  Generator gen(1);
  // L1 / L2: round(0.5 * 3) = 2 of layer 0's candidates, the smallest free rows (1 and 2; the
  // owned row 0 is smaller still and never a candidate); round(0.5 * 4) = 2 of layer 1's.
  for (auto p : {eid::Pruning::L1, eid::Pruning::L2}) {
    const auto c = eid::choose_per_layer(layers, p, 0.5, gen);
    REQUIRE(c.size() == 2);
    CHECK(c[0] == std::vector<std::int64_t>{1, 2});
    CHECK(c[1] == std::vector<std::int64_t>{3, 2});
  }
  const auto r = eid::choose_per_layer(layers, eid::Pruning::Random, 0.5, gen);
  CHECK(r[0].size() == 2);
  CHECK(std::find(r[0].begin(), r[0].end(), 0) == r[0].end());
  // Taylor: one threshold over all 7 candidates, floor(0.3 * 7) = 2 lowest scores; ties at the
  // threshold all go (here three neurons score 0.5).
  std::vector<std::vector<double>> scores{{0.0, 0.9, 0.5, 0.7}, {0.5, 0.1, 0.5, 0.8}};
  const auto t = eid::choose_by_threshold(layers, scores, 0.3);
  CHECK(t[0] == std::vector<std::int64_t>{2});
  CHECK(t[1] == std::vector<std::int64_t>{0, 1, 2});
  CHECK(eid::choose_by_threshold(layers, scores, 0.1).empty());  // floor(0.7) = 0: nothing
  // Nothing left to prune: every neuron owned or pruned.
  for (auto& l : layers) std::fill(l.pruned.begin(), l.pruned.end(), 1);
  CHECK(eid::candidates(layers) == 0);
  CHECK(eid::choose_per_layer(layers, eid::Pruning::L2, 0.5, gen).empty());
  // The masks: layer 1's weight reads none of layer 0's pruned neurons; owned rows are not
  // trainable.
  layers[0].pruned = {0, 1, 0, 1};
  layers[1].pruned = {0, 0, 0, 0};
  const auto m = eid::weight_mask(layers, 1, false).template to<std::int64_t>().to_vector();
  CHECK(m == std::vector<std::int64_t>{1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0});
  const auto t0 = eid::weight_mask(layers, 0, true).template to<std::int64_t>().to_vector();
  CHECK(std::vector<std::int64_t>(t0.begin(), t0.begin() + 4) == std::vector<std::int64_t>{0, 0, 0, 0});  // owned
  CHECK(std::vector<std::int64_t>(t0.begin() + 4, t0.begin() + 8) == std::vector<std::int64_t>{0, 0, 0, 0});  // pruned
  CHECK(std::vector<std::int64_t>(t0.begin() + 8, t0.begin() + 12) == std::vector<std::int64_t>{1, 1, 1, 1});
  CHECK(eid::frozen_channels(layers[0]).template to<std::int64_t>().to_vector() == std::vector<std::int64_t>{1, 0, 0, 0});
  CHECK_FALSE(eid::frozen_channels(layers[1]).defined());
}

TEST_CASE("eidetic: frozen BatchNorm channels apply their affine once and keep their statistics (I4, P6)") {
  Generator g(3);
  nn::BatchNorm1d<float> bn(4);
  {
    NoGradGuard ng;
    bn.weight.copy_(tensor<float>({1.5f, -0.5f, 2.0f, 0.7f}, {4}));
    bn.bias.copy_(tensor<float>({0.3f, -1.0f, 0.5f, 2.0f}, {4}));
    bn.running_mean.copy_(tensor<float>({0.1f, 0.2f, -0.3f, 0.4f}, {4}));
    bn.running_var.copy_(tensor<float>({1.2f, 0.8f, 2.0f, 0.5f}, {4}));
  }
  bn.frozen_channels = tensor<bool>({true, false, true, false}, {4});
  const auto mean0 = bn.running_mean.to_vector(), var0 = bn.running_var.to_vector();
  auto x = add(mul(randn<float>({32, 4}, g), 3.0f), 1.0f);
  bn.eval();
  const auto y_eval = bn(x).to_vector();
  bn.train();
  x.requires_grad_(true);
  auto y_train = bn(x);
  const auto yt = y_train.to_vector();
  for (int n = 0; n < 32; ++n) {
    CHECK(yt[std::size_t(n * 4 + 0)] == doctest::Approx(y_eval[std::size_t(n * 4 + 0)]).epsilon(1e-6));
    CHECK(yt[std::size_t(n * 4 + 2)] == doctest::Approx(y_eval[std::size_t(n * 4 + 2)]).epsilon(1e-6));
  }
  // Free channels normalise with the batch: mean 0 before the affine.
  auto col1 = y_train.detach().select(1, 1);
  CHECK(mean(col1).item() == doctest::Approx(-1.0f).epsilon(1e-4));
  const auto mean1 = bn.running_mean.to_vector(), var1 = bn.running_var.to_vector();
  CHECK(mean1[0] == mean0[0]);
  CHECK(var1[2] == var0[2]);
  CHECK(mean1[1] != mean0[1]);  // free channels update
  // The gradient through a frozen channel is dy * weight / sqrt(running_var + eps).
  sum(y_train).backward();
  auto gx = x.grad().to_vector();
  CHECK(gx[0] == doctest::Approx(1.5 / std::sqrt(1.2 + 1e-5)).epsilon(1e-5));
  CHECK(gx[1] == doctest::Approx(0.0).scale(1.0).epsilon(1e-4));  // batch-normalised channel: sum of dy cancels
}

TEST_CASE("eidetic: recycling resets free capacity only; masked updates hold owned rows with weight decay and old moments (I7, I8)") {
  manual_seed(4);
  eid::EideticNet<float> net(quiet(eid::Pruning::L2));
  net.add_linear(8, 16).add_linear(16, 16);
  auto task = make_task(20);
  net.add_task(2);
  net.add_task(2);
  net.learn_task(0, task);
  net.commit();
  const auto before = values(net);
  net.recycle();
  for (std::size_t li = 0; li < 2; ++li) {
    auto& l = net.layers()[li];
    const std::string wname = "linear" + std::to_string(li) + ".weight";
    const double bound = 1.0 / std::sqrt(double(l.weight().shape()[1]));
    for (std::int64_t i = 0; i < l.neurons(); ++i) {
      auto row = l.weight().detach().select(0, i);
      auto bnw = l.bn->weight.to_vector()[std::size_t(i)], bnb = l.bn->bias.to_vector()[std::size_t(i)];
      auto rm = l.bn->running_mean.to_vector()[std::size_t(i)], rv = l.bn->running_var.to_vector()[std::size_t(i)];
      if (l.owner[std::size_t(i)] >= 0) {
        CHECK(row.to_vector() == before.at(wname).select(0, i).to_vector());
      } else {
        CHECK(abs(row).max().item() <= bound);
        CHECK(bnw == 1.0f);
        CHECK(bnb == 0.0f);
        CHECK(rm == 0.0f);
        CHECK(rv == 1.0f);
      }
    }
  }
  // An optimizer with moments built up before the mask, and weight decay: owned rows hold.
  auto& l = net.layers()[1];
  optim::AdamW<float> opt({l.weight()}, {.lr = 0.1, .weight_decay = 0.5});
  auto x = randn<float>({8, 16});
  for (int k = 0; k < 3; ++k) {
    opt.zero_grad();
    sum(square(linear(x, l.weight(), F()))).backward();
    opt.step();
  }
  const auto w0 = l.weight().detach().clone();
  opt.set_update_mask(l.weight(), net.trainable_mask(1));
  opt.zero_grad();
  sum(square(linear(x, l.weight(), F()))).backward();
  opt.step();
  for (std::int64_t i = 0; i < l.neurons(); ++i)
    if (l.owner[std::size_t(i)] >= 0) CHECK(l.weight().detach().select(0, i).to_vector() == w0.select(0, i).to_vector());
}

// Ported from the official tests (test_prepare_for_task): a 4-neuron layer and 3 heads; task 0
// keeps neuron 3, task 1 neuron 2, task 2 neuron 1; head 2 reads neurons 1-3 but not neuron 0.
TEST_CASE("eidetic: ownership after pruning by hand, as the official test_prepare_for_task") {
  manual_seed(6);
  auto o = quiet(eid::Pruning::L2);
  o.max_epochs = 1;
  eid::EideticNet<float> net(o);
  net.add_linear(8, 4);
  for (int t = 0; t < 3; ++t) net.add_task(2);
  const auto task = make_task(50);
  const std::vector<std::vector<std::int64_t>> prune = {{0, 1, 2}, {0, 1}, {0}};
  for (std::int64_t t = 0; t < 3; ++t) {
    net.learn_task(t, task, false);
    net.prune(0, prune[std::size_t(t)]);
  }
  net.commit();
  CHECK(net.layers()[0].owner == std::vector<std::int64_t>{-1, 2, 1, 0});
  auto h2 = net.heads()[2]->weight.detach();
  CHECK(abs(h2.select(1, 0)).max().item() == 0.0f);
  for (std::int64_t j = 1; j < 4; ++j) CHECK(abs(h2.select(1, j)).max().item() > 0.0f);
  CHECK_THROWS_WITH_AS(net.prune(0, {1}), doctest::Contains("no task is being learned"), ligm::Error);
}

// Ported from the official tests (test_simple_eideticnet_does_not_forget), with and without
// BatchNorm: input 2, one hidden layer of 2, two heads; neuron 1's weights are half of neuron
// 0's, so L2 pruning at 50% removes neuron 1; task 0's outputs survive task 1.
TEST_CASE("eidetic: the official does-not-forget test, with and without BatchNorm") {
  for (bool bn : {false, true}) {
    CAPTURE(bn);
    manual_seed(7);
    auto o = quiet(eid::Pruning::L2);
    o.step = 0.5;
    o.tol = 1.0;
    eid::EideticNet<float> net(o);
    net.add_linear(2, 2, bn);
    net.add_task(2);
    net.add_task(2);
    auto w = net.layers()[0].weight();
    {
      NoGradGuard ng;
      w.select(0, 1).copy_(mul(w.select(0, 0).detach(), 0.5f));
    }
    Generator g(8);
    auto y = randint(0, 2, {64}, g);
    auto x = add(randn<float>({64, 2}, g), mul(y.to<float>().reshape({64, 1}), 2.0f));
    net.options().max_epochs = 1;
    net.options().lr = 1e-9;  // task 0 barely trains: neuron 1 stays the smaller row
    auto r = net.learn_task(0, {x, y});
    CHECK(r.pruned == std::vector<std::int64_t>{1});
    CHECK(net.layers()[0].pruned == std::vector<char>{0, 1});
    const auto before = net.task_logits(x, 0).to_vector();
    net.options().lr = 0.1;
    net.options().max_epochs = 5;
    net.learn_task(1, {x, sub(1, y)}, false);
    net.commit();
    CHECK(net.layers()[0].owner == std::vector<std::int64_t>{0, 1});
    CHECK(net.task_logits(x, 0).to_vector() == before);
  }
}

TEST_CASE("eidetic: a state_dict saved between tasks resumes exactly (owners, pruned flags, progress, router)") {
  auto build = [] {
    auto net = std::make_unique<eid::EideticNet<float>>(quiet(eid::Pruning::L2));
    net->add_linear(8, 12).add_linear(12, 12);
    for (int t = 0; t < 3; ++t) net->add_task(2);
    return net;
  };
  std::vector<data::TensorDataset<float>> tasks;
  for (int t = 0; t < 3; ++t) tasks.push_back(make_task(std::uint64_t(t) + 60));
  const auto probe = randn<float>({9, 8});
  manual_seed(9);
  auto a = build();
  a->learn_task(0, tasks[0]);
  a->learn_task(1, tasks[1]);  // pruned but not committed yet
  const auto sd = a->state_dict();
  auto b = build();
  b->load_state_dict(sd);
  CHECK(b->tasks_learned() == 2);
  for (std::size_t li = 0; li < 2; ++li) {
    CHECK(b->layers()[li].owner == a->layers()[li].owner);
    CHECK(b->layers()[li].pruned == a->layers()[li].pruned);
  }
  // Both go on from here the same way (same generator states are not in a state_dict, so
  // compare the guarantees, not the numbers): old heads keep their logits bit for bit.
  const auto h0 = b->task_logits(probe, 0).to_vector(), h1 = b->task_logits(probe, 1).to_vector();
  CHECK(h0 == a->task_logits(probe, 0).to_vector());
  b->learn_task(2, tasks[2]);
  b->learn_router(tasks);
  CHECK(b->task_logits(probe, 0).to_vector() == h0);
  CHECK(b->task_logits(probe, 1).to_vector() == h1);
  check_resistance(*b);
  // A trained router: the new network needs add_router() before loading.
  auto c = build();
  CHECK_THROWS_WITH_AS(c->load_state_dict(b->state_dict()), doctest::Contains("router"), ligm::Error);
  auto d = build();
  d->add_router();
  d->load_state_dict(b->state_dict());
  CHECK(d->route(probe).task.to_vector() == b->route(probe).task.to_vector());
  CHECK(d->route(probe).cls.to_vector() == b->route(probe).cls.to_vector());
}

TEST_CASE("eidetic: misuse is refused with a clear error") {
  eid::EideticNet<float> net(quiet(eid::Pruning::Taylor));
  CHECK_THROWS_WITH_AS(net.add_task(2), doctest::Contains("needs layers"), ligm::Error);
  net.add_linear(8, 4);
  net.add_task(2);
  net.add_task(2);
  CHECK_THROWS_WITH_AS(net.add_linear(4, 4), doctest::Contains("before the tasks"), ligm::Error);
  CHECK_THROWS_WITH_AS(net.learn_task(1, make_task(0)), doctest::Contains("in order"), ligm::Error);
  CHECK_THROWS_WITH_AS(net.route(randn<float>({2, 8})), doctest::Contains("router"), ligm::Error);
}

// The spec's CI-sized Experiment A: split Fashion-MNIST (5 two-class tasks), MLP 784-64-64 with
// BatchNorm, 1000 training images per task, at most 5 dense epochs; zero forgetting on the real
// test images and every task above 90%.
TEST_CASE("eidetic: split Fashion-MNIST, CI-sized: no forgetting, every task above 90%" *
          doctest::skip(!std::ifstream(data::kFashionMnistDir + std::string("/t10k-labels-idx1-ubyte.gz")))) {
  auto train = data::FashionMNIST::load("train");
  auto test = data::FashionMNIST::load("test");
  const float mu = train.images.mean().item(), sd = train.images.std().item();
  const data::TensorDataset<float> tr{div(sub(train.images, mu), sd), train.labels},
      te{div(sub(test.images, mu), sd), test.labels};
  auto o = quiet(eid::Pruning::Taylor);
  o.lr = 1e-3;
  o.batch_size = 128;
  o.patience = 2;
  o.max_epochs = 5;
  o.step = 0.1;
  o.tol = 0.01;
  o.max_recovery_epochs = 2;
  o.router_max_epochs = 5;
  manual_seed(0);
  eid::EideticNet<float> net(o);
  net.add_linear(784, 64).add_linear(64, 64);
  std::vector<data::TensorDataset<float>> tasks, tests;
  for (std::int64_t t = 0; t < 5; ++t) {
    auto local = [&](data::TensorDataset<float> d) {
      d.targets = eq(d.targets, 2 * t + 1).to<std::int64_t>();
      return d;
    };
    tasks.push_back(local(tr.subset(data::class_subset_indices(train.labels, {2 * t, 2 * t + 1}, 500))));
    tests.push_back(local(te.subset(data::class_subset_indices(test.labels, {2 * t, 2 * t + 1}))));
    net.add_task(2);
  }
  std::vector<std::vector<float>> at_end;
  for (std::int64_t t = 0; t < 5; ++t) {
    net.learn_task(t, tasks[std::size_t(t)]);
    at_end.push_back(net.task_logits(tests[std::size_t(t)].inputs, t).to_vector());
  }
  net.learn_router(tasks);
  for (std::int64_t s = 0; s < 5; ++s) {
    CAPTURE(s);
    auto logits = net.task_logits(tests[std::size_t(s)].inputs, s);
    CHECK(logits.to_vector() == at_end[std::size_t(s)]);
    auto acc = double(sum(eq(argmax(logits, 1), tests[std::size_t(s)].targets).to<std::int64_t>()).item()) /
               double(tests[std::size_t(s)].size());
    CHECK(acc > 0.9);
  }
  check_resistance(net);
}
