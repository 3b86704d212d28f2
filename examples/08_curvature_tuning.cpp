// 08: Curvature Tuning — steer a pretrained network by one curvature parameter, without
// training it (methods/curvature; the spec's reproduction CT-1, shared/specs/curvature_tuning.md).
//
// Pretrain an MLP 784-256-256-256-256 with BatchNorm (unit-scale pre-activations, where CT has
// an effect) on Fashion-MNIST classes 0-4. Transfer to classes 5-9 with 50 training images per
// class: a linear probe on the penultimate features (divided by one global std), Adam lr 1e-2,
// weight decay 1e-4, 300 full-batch steps, the best validation checkpoint of every 25 steps.
// Then swap every ReLU for a shared CT unit, sweep beta over the wide grid 0.20 ... 0.95 and
// the paper's grid 0.70 ... 0.99, probe each, choose beta on 1000 validation images, and report
// the test accuracy against ReLU's (beta = 1), for three seeds.
//
//   build/examples/08_curvature_tuning [--seeds 3] [--metrics PATH]
#include <algorithm>
#include <chrono>
#include <numeric>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <ligm/io/metrics.hpp>
#include <ligm/ligm.hpp>
#include <ligm/methods/curvature/steering.hpp>

#include "common.hpp"

using namespace ligm;

namespace {

struct Split {
  Tensor<float> x;
  Tensor<std::int64_t> y;
};

// Images of `classes` (labels relabelled 0..) in the order `perm`, at most `per_class` of each
// class after skipping its first `skip` (so two calls with one order and skips split disjointly).
Split take(const Tensor<float>& images, const Tensor<std::int64_t>& labels, const std::vector<std::int64_t>& classes,
           std::int64_t per_class, std::int64_t skip, const std::vector<std::int64_t>& perm) {
  const auto lv = labels.to_vector();
  std::vector<std::int64_t> idx, y;
  std::vector<std::int64_t> seen(10, 0);
  for (auto i : perm) {
    for (std::size_t k = 0; k < classes.size(); ++k)
      if (lv[std::size_t(i)] == classes[k]) {
        auto& n = seen[std::size_t(classes[k])];
        if (n >= skip && (per_class < 0 || n < skip + per_class)) {
          idx.push_back(i);
          y.push_back(std::int64_t(k));
        }
        ++n;
      }
  }
  auto t = tensor<std::int64_t>(idx, {std::int64_t(idx.size())});
  return {index_select(images, 0, t), tensor<std::int64_t>(y, {std::int64_t(y.size())})};
}

Tensor<float> features(nn::Module<float>& trunk, const Tensor<float>& x) {
  NoGradGuard no_grad;
  trunk.eval();
  std::vector<Tensor<float>> parts;
  for (std::int64_t s = 0; s < x.shape()[0]; s += 1000) parts.push_back(trunk(x.narrow(0, s, std::min<std::int64_t>(1000, x.shape()[0] - s))));
  return cat(parts, 0);
}

double accuracy(const Tensor<float>& logits, const Tensor<std::int64_t>& y) {
  return double(sum(eq(argmax(logits, 1), y).to<std::int64_t>()).item()) / double(y.numel());
}

struct Probe {
  double val = 0, test = 0;
};

// Softmax regression on features divided by one global std (the training features'), the best
// validation checkpoint of every 25 of 300 full-batch Adam steps.
Probe linear_probe(const Tensor<float>& ftr, const Tensor<std::int64_t>& ytr, const Tensor<float>& fval,
                   const Tensor<std::int64_t>& yval, const Tensor<float>& ftest, const Tensor<std::int64_t>& ytest,
                   std::uint64_t seed) {
  const float sd = std::max(ftr.std().item(), 1e-12f);
  auto a = div(ftr, sd), v = div(fval, sd), t = div(ftest, sd);
  Generator gen(seed);
  nn::Linear<float> probe(ftr.shape()[1], 5, true, gen);
  optim::Adam<float> opt(probe.parameters(), {.lr = 1e-2, .weight_decay = 1e-4});
  Probe best;
  for (int step = 1; step <= 300; ++step) {
    auto loss = cross_entropy(probe(a), ytr);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step % 25 == 0) {
      NoGradGuard no_grad;
      const double va = accuracy(probe(v), yval);
      if (va > best.val) best = {va, accuracy(probe(t), ytest)};
    }
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int seeds = 3;
  std::string metrics;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--seeds" && i + 1 < argc) seeds = std::atoi(argv[++i]);
    else if (s == "--metrics" && i + 1 < argc) metrics = argv[++i];
    else fail("08_curvature_tuning", "unknown argument \"", s, "\" (--seeds N, --metrics PATH)");
  }
  std::optional<io::MetricsLog> log;
  if (!metrics.empty()) log.emplace(metrics);
  const auto d = examples::load_fashion_mnist(Device::cpu());
  std::vector<double> grid;
  for (int k = 20; k <= 95; k += 5) grid.push_back(k / 100.0);       // wide
  for (int k = 70; k <= 99; ++k)
    if (k % 5 != 0) grid.push_back(k / 100.0);                        // the paper's, the rest of it
  std::sort(grid.begin(), grid.end());
  std::vector<double> gains, gains_paper;
  for (int seed = 0; seed < seeds; ++seed) {
    const auto start = std::chrono::steady_clock::now();
    manual_seed(std::uint64_t(seed));
    Generator gen(std::uint64_t(seed) + 100);
    // Pretraining on the source classes 0-4.
    const auto order = randperm(d.train_y.numel(), gen).to_vector();
    const auto source = take(d.train_x, d.train_y, {0, 1, 2, 3, 4}, -1, 0, order);
    auto trunk = nn::Sequential<float>(nn::Flatten<float>());
    std::int64_t width = 784;
    for (int l = 0; l < 4; ++l) {
      trunk.push_back(nn::Linear<float>(width, 256));
      trunk.push_back(nn::BatchNorm1d<float>(256));
      trunk.push_back(nn::ReLU<float>());
      width = 256;
    }
    nn::Linear<float> head(256, 5);
    auto params = trunk.parameters();
    for (auto& p : head.parameters()) params.push_back(p);
    optim::Adam<float> opt(params, {.lr = 1e-3});
    data::DataLoader loader(source.x, source.y, {.batch_size = 128, .shuffle = true, .seed = std::uint64_t(seed)});
    for (int epoch = 0; epoch < 2; ++epoch)
      for (auto [x, y] : loader.epoch(std::uint64_t(epoch))) {
        auto loss = cross_entropy(head(trunk(x)), y);
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
    trunk.requires_grad_(false);
    // Target: classes 5-9, 50 training images each, 1000 validation images from the rest of
    // the training set, the 5000 test images.
    const auto tr = take(d.train_x, d.train_y, {5, 6, 7, 8, 9}, 50, 0, order);
    const auto val = take(d.train_x, d.train_y, {5, 6, 7, 8, 9}, 200, 50, order);
    std::vector<std::int64_t> test_order(std::size_t(d.test_y.numel()));
    std::iota(test_order.begin(), test_order.end(), std::int64_t(0));
    const auto test = take(d.test_x, d.test_y, {5, 6, 7, 8, 9}, -1, 0, test_order);
    methods::curvature::Steering<float> ct(trunk);
    auto run = [&](double beta) {
      ct.set_beta(beta);
      return linear_probe(features(trunk, tr.x), tr.y, features(trunk, val.x), val.y, features(trunk, test.x), test.y,
                          std::uint64_t(seed) * 7 + 1);
    };
    const Probe relu = run(1.0);
    std::printf("seed %d: pretrained on classes 0-4; %zu ReLU modules steered; ReLU probe: val %.2f%%, test %.2f%%\n",
                seed, ct.sites(), 100 * relu.val, 100 * relu.test);
    std::printf("  beta  val%%   test%%\n");
    Probe best = relu, best_paper = relu;
    double best_beta = 1.0, best_beta_paper = 1.0;
    for (double beta : grid) {
      const Probe p = run(beta);
      std::printf("  %.2f  %.2f  %.2f\n", beta, 100 * p.val, 100 * p.test);
      if (log) log->write({{"seed", seed}, {"beta", beta}, {"val", p.val}, {"test", p.test}, {"relu_test", relu.test}});
      if (p.val > best.val) best = p, best_beta = beta;
      if (beta >= 0.70 && p.val > best_paper.val) best_paper = p, best_beta_paper = beta;
    }
    gains.push_back(100 * (best.test - relu.test));
    gains_paper.push_back(100 * (best_paper.test - relu.test));
    std::printf("seed %d: beta* = %.2f by validation (wide grid): test %.2f%% vs ReLU %.2f%%, gain %+.2f points; "
                "paper grid: beta* = %.2f, gain %+.2f points (%.0f s)\n",
                seed, best_beta, 100 * best.test, 100 * relu.test, gains.back(), best_beta_paper, gains_paper.back(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / double(v.size());
  };
  std::printf("mean test gain over ReLU, beta chosen on validation: wide grid %+.2f points, paper grid %+.2f points "
              "(%d seeds)\n", mean(gains), mean(gains_paper), seeds);
  return 0;
}
