// 09: LoRA, DoRA and ALLoRA compared on equal terms (shared/specs/lora_family.md section 7).
//
// fmnist (the spec's domain shift): an MLP 784-256-256-10 pretrained on Fashion-MNIST (Adam
// 1e-3, batch 128, 2 epochs) is adapted to the transposed images (x -> x^T on the 28 x 28 grid)
// with rank-4 adapters on its three Linear layers, 500 target images, batch 32, 400 steps;
// target test accuracy (the 10 000 transposed test images) at steps 25/50/100/200/400. Each
// method gets its own learning rate, chosen on 1000 held-out transposed training images (mean
// accuracy at step 400 over the seeds) from a sweep: SGD {0.02, 0.05, 0.1, 0.2} (the spec's
// 0.05 and two steps either side), Adam {3e-4, 1e-3, 3e-3, 1e-2} (the spec's three and one
// above, where the best rates landed). Every seed pretrains its own model and draws its own images.
//
// gpt: a GPT (4 blocks, width 128, context 64) pretrained on the licence texts of
// /usr/share/common-licenses is adapted to C headers (/usr/include) with rank-8 adapters on
// c_attn, c_proj and c_fc (AdamW, 300 steps of 16 windows; learning rates {1e-3, 3e-3, 1e-2},
// full fine-tuning {1e-4, 3e-4, 1e-3}); the learning rate per method is chosen on a validation
// split, the target test loss and the source loss (forgetting) are reported, with full
// fine-tuning and no tuning for reference. One seed.
//
//   build/examples/09_lora [--experiment fmnist|gpt|all] [--seeds 3] [--device cpu|cuda] [--metrics PATH]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ligm/io/metrics.hpp>
#include <ligm/ligm.hpp>
#include <ligm/methods/lora/lora.hpp>
#include <ligm/models/gpt.hpp>

#include "common.hpp"

using namespace ligm;
namespace lora = ligm::methods::lora;

namespace {

Device device = Device::cpu();

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct Stat {
  double mean = 0, sd = 0;
};
Stat stat(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x / double(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean) / double(std::max<std::size_t>(v.size() - 1, 1));
  s.sd = std::sqrt(s.sd);
  return s;
}

// A method as the comparison names it: a key for the metrics file, a label, the adapter config.
struct Variant {
  std::string key, label;
  lora::Config config;
};

lora::Config make(lora::Method m, std::int64_t r, double alpha, double dropout, double eta = 2, double p = 1) {
  lora::Config c;
  c.method = m;
  c.r = r;
  c.alpha = alpha;
  c.dropout = dropout;
  c.eta = eta;
  c.p = p;
  return c;
}

// ---- Fashion-MNIST, transposed ------------------------------------------------------------

nn::Sequential<float> make_mlp(std::uint64_t seed) {
  Generator g(seed);
  nn::Sequential<float> net;
  net.push_back(std::make_shared<nn::Flatten<float>>());
  net.push_back(std::make_shared<nn::Linear<float>>(784, 256, true, g));
  net.push_back(std::make_shared<nn::ReLU<float>>());
  net.push_back(std::make_shared<nn::Linear<float>>(256, 256, true, g));
  net.push_back(std::make_shared<nn::ReLU<float>>());
  net.push_back(std::make_shared<nn::Linear<float>>(256, 10, true, g));
  return net;
}

Tensor<float> transposed(const Tensor<float>& images) { return images.transpose(2, 3).contiguous(); }

struct Target {
  Tensor<float> train_x, val_x, test_x;
  Tensor<std::int64_t> train_y, val_y, test_y;
};

// One seed's pretrained weights and target data.
struct Pretrained {
  nn::StateDict<float> weights;
  double source_acc, target_acc;  // test accuracy on the source and (unadapted) target domains
  Target target;
};

Pretrained pretrain(const examples::StandardFashionMNIST& d, int seed) {
  auto net = make_mlp(std::uint64_t(seed));
  net.to(device);
  optim::Adam<float> opt(net.parameters(), {.lr = 1e-3});
  data::DataLoader loader(d.train_x, d.train_y, {.batch_size = 128, .shuffle = true, .seed = std::uint64_t(seed)});
  for (int epoch = 0; epoch < 2; ++epoch)
    for (auto [bx, by] : loader.epoch(std::uint64_t(epoch))) {
      auto loss = cross_entropy(net(bx.to(device)), by.to(device));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  Generator g(1000 + std::uint64_t(seed));
  auto order = randperm(d.train_y.numel(), g);
  auto pick = [&](std::int64_t from, std::int64_t n) {
    auto idx = order.narrow(0, from, n);
    return std::make_pair(transposed(index_select(d.train_x, 0, idx)).to(device), index_select(d.train_y, 0, idx).to(device));
  };
  Target t;
  std::tie(t.train_x, t.train_y) = pick(0, 500);
  std::tie(t.val_x, t.val_y) = pick(500, 1000);
  t.test_x = transposed(d.test_x).to(device);
  t.test_y = d.test_y.to(device);
  Pretrained p{{}, examples::accuracy(net, d.test_x, d.test_y, device), examples::accuracy(net, t.test_x, t.test_y, device),
               t};
  for (auto& [k, v] : net.state_dict()) p.weights[k] = v.clone();
  return p;
}

const std::vector<int> kCheckpoints{25, 50, 100, 200, 400};

struct Curve {
  std::vector<double> test;    // at kCheckpoints
  std::vector<double> update;  // at kCheckpoints: the mean row norm of W - W0, over the layers
  double val = 0;              // at the last step
  std::int64_t trainable = 0;
};

// How far the adapters moved the weights: the mean over layers of the mean row norm of the
// adapted weight minus W0 (s BA for LoRA, BA for ALLoRA, diag(m/n)(W0 + s BA) - W0 for DoRA).
double update_norm(nn::Module<float>& net) {
  NoGradGuard no_grad;
  double total = 0;
  const auto layers = lora::adapter_layers(net);
  for (auto& [path, a] : layers) {
    const auto& w0 = a->base_weight();
    total += sub(a->adapt(w0), w0).reshape({w0.shape()[0], -1}).norm(2, {1}).mean().item() / double(layers.size());
  }
  return total;
}

Curve finetune(const Pretrained& pre, const Variant& v, bool adam, double lr, int seed) {
  auto net = make_mlp(0);
  net.load_state_dict(pre.weights);
  net.to(device);
  auto config = v.config;
  config.seed = 77 + std::uint64_t(seed);
  lora::add_adapters(net, config);
  Curve c;
  c.trainable = net.num_parameters(true);
  const auto params = lora::adapter_parameters(net);
  std::unique_ptr<optim::Optimizer<float, optim::AdamOptions>> a;
  std::unique_ptr<optim::Optimizer<float, optim::SGDOptions>> s;
  if (adam) a = std::make_unique<optim::Adam<float>>(params, optim::AdamOptions{.lr = lr});
  else s = std::make_unique<optim::SGD<float>>(params, optim::SGDOptions{.lr = lr});
  Generator order_gen(500 + std::uint64_t(seed));  // the same batches for every method
  const std::int64_t n = pre.target.train_y.numel(), batch = 32;
  Tensor<std::int64_t> perm;
  std::int64_t at = n;
  net.train();
  for (int step = 1; step <= kCheckpoints.back(); ++step) {
    if (at + batch > n) {
      perm = randperm(n, order_gen).to(device);
      at = 0;
    }
    auto idx = perm.narrow(0, at, batch);
    at += batch;
    auto loss = cross_entropy(net(index_select(pre.target.train_x, 0, idx)), index_select(pre.target.train_y, 0, idx));
    if (adam) a->zero_grad(); else s->zero_grad();
    loss.backward();
    if (adam) a->step(); else s->step();
    if (std::find(kCheckpoints.begin(), kCheckpoints.end(), step) != kCheckpoints.end()) {
      c.test.push_back(examples::accuracy(net, pre.target.test_x, pre.target.test_y, device));
      c.update.push_back(update_norm(net));
    }
  }
  c.val = examples::accuracy(net, pre.target.val_x, pre.target.val_y, device);
  return c;
}

void run_fmnist(int seeds, std::optional<io::MetricsLog>& log) {
  const auto start = std::chrono::steady_clock::now();
  const auto d = examples::load_fashion_mnist(Device::cpu());
  using M = lora::Method;
  const std::vector<Variant> variants{
      {"lora_s2_drop", "LoRA s=2, dropout .05", make(M::LoRA, 4, 8, 0.05)},
      {"lora_s2", "LoRA s=2", make(M::LoRA, 4, 8, 0)},
      {"lora_s1", "LoRA s=1", make(M::LoRA, 4, 4, 0)},
      {"dora_s2_drop", "DoRA s=2, dropout .05", make(M::DoRA, 4, 8, 0.05)},
      {"allora_e1_p1", "ALLoRA eta=1, p=1", make(M::ALLoRA, 4, 0, 0, 1, 1)},
      {"allora_e2_p1", "ALLoRA eta=2, p=1", make(M::ALLoRA, 4, 0, 0, 2, 1)},
      {"allora_e1_p2", "ALLoRA eta=1, p=2", make(M::ALLoRA, 4, 0, 0, 1, 2)},
      {"allora_e2_p2", "ALLoRA eta=2, p=2", make(M::ALLoRA, 4, 0, 0, 2, 2)},
  };
  std::vector<Pretrained> pre;
  for (int seed = 0; seed < seeds; ++seed) {
    pre.push_back(pretrain(d, seed));
    std::printf("[fmnist] seed %d: pretrained MLP, source test %.2f%%, transposed test %.2f%% before adaptation\n",
                seed, 100 * pre.back().source_acc, 100 * pre.back().target_acc);
  }
  for (bool adam : {false, true}) {
    const char* opt = adam ? "adam" : "sgd";
    const std::vector<double> lrs = adam ? std::vector<double>{3e-4, 1e-3, 3e-3, 1e-2} : std::vector<double>{0.02, 0.05, 0.1, 0.2};
    std::printf("[fmnist] %s, learning rate per method chosen on validation from {%g, %g, %g, %g}; test accuracy %%, "
                "mean (sd) over %d seeds\n", adam ? "Adam" : "SGD", lrs[0], lrs[1], lrs[2], lrs[3], seeds);
    auto header = [] {
      std::printf("  %-24s %8s %7s  %-13s %-13s %-13s %-13s %-13s\n", "method", "params", "lr", "step 25", "50", "100",
                  "200", "400");
    };
    header();
    std::map<int, nlohmann::json> table;  // step -> {method key: mean accuracy at its best lr}
    // Every (method, lr): the per-seed curves and the mean validation accuracy.
    struct Sweep {
      std::vector<std::vector<double>> test, update;  // [seed][checkpoint]
      double val = 0;
      std::int64_t trainable = 0;
    };
    std::vector<std::map<double, Sweep>> sweeps(variants.size());
    for (std::size_t i = 0; i < variants.size(); ++i)
      for (double lr : lrs)
        for (int seed = 0; seed < seeds; ++seed) {
          const Curve c = finetune(pre[std::size_t(seed)], variants[i], adam, lr, seed);
          auto& sw = sweeps[i][lr];
          sw.test.push_back(c.test);
          sw.update.push_back(c.update);
          sw.val += c.val / seeds;
          sw.trainable = c.trainable;
          if (log)
            for (std::size_t k = 0; k < kCheckpoints.size(); ++k)
              log->write({{"experiment", "fmnist"}, {"optimizer", opt}, {"method", variants[i].key}, {"lr", lr},
                          {"seed", seed}, {"step", kCheckpoints[k]}, {"test_acc", c.test[k]}, {"val_acc_400", c.val}});
        }
    // One table row: mean (sd) over the seeds at each checkpoint.
    auto row = [&](const Variant& v, double lr, const Sweep& sw, bool best) {
      std::printf("  %-24s %8lld %7g ", v.label.c_str(), static_cast<long long>(sw.trainable), lr);
      for (std::size_t k = 0; k < kCheckpoints.size(); ++k) {
        std::vector<double> at;
        for (auto& t : sw.test) at.push_back(t[k]);
        const Stat s = stat(at);
        std::printf(" %5.2f (%4.2f)", 100 * s.mean, 100 * s.sd);
        if (!best) continue;
        table[kCheckpoints[k]][v.key] = s.mean;
        if (log)
          log->write({{"experiment", "fmnist"}, {"summary", true}, {"optimizer", opt}, {"method", v.key}, {"lr", lr},
                      {"step", kCheckpoints[k]}, {"test_acc_mean", s.mean}, {"test_acc_sd", s.sd},
                      {"trainable", sw.trainable}});
      }
      std::printf("\n");
    };
    std::vector<double> best_lr(variants.size());
    for (std::size_t i = 0; i < variants.size(); ++i) {
      auto best = sweeps[i].begin();
      for (auto it = sweeps[i].begin(); it != sweeps[i].end(); ++it)
        if (it->second.val > best->second.val) best = it;
      row(variants[i], best->first, best->second, true);
      best_lr[i] = best->first;
    }
    // ALLoRA's own signal (the spec's reading): how fast the update grows, at each best lr.
    std::printf("[fmnist] %s: mean row norm of the weight update W - W0 (mean over seeds), each method at its best lr\n",
                adam ? "Adam" : "SGD");
    std::printf("  %-24s %7s  %-8s %-8s %-8s %-8s %-8s\n", "method", "lr", "step 25", "50", "100", "200", "400");
    for (std::size_t i = 0; i < variants.size(); ++i) {
      const auto& sw = sweeps[i].at(best_lr[i]);
      std::printf("  %-24s %7g ", variants[i].label.c_str(), best_lr[i]);
      for (std::size_t k = 0; k < kCheckpoints.size(); ++k) {
        double u = 0;
        for (auto& seed_updates : sw.update) u += seed_updates[k] / double(sw.update.size());
        std::printf(" %-8.4f", u);
        if (log)
          log->write({{"experiment", "fmnist"}, {"update_norm", u}, {"optimizer", opt}, {"method", variants[i].key},
                      {"lr", best_lr[i]}, {"step", kCheckpoints[k]}});
      }
      std::printf("\n");
    }
    const double spec_lr = adam ? 1e-3 : 0.05;
    std::printf("[fmnist] %s at the spec's calibration rate %g for every method (no selection)\n", adam ? "Adam" : "SGD",
                spec_lr);
    header();
    for (std::size_t i = 0; i < variants.size(); ++i) row(variants[i], spec_lr, sweeps[i].at(spec_lr), false);
    if (log)
      for (auto& [step, row] : table) {
        row["table"] = std::string("fmnist_") + opt;
        row["step"] = step;
        log->write(row);
      }
  }
  std::printf("[fmnist] done in %.0f s\n", seconds_since(start));
}

// ---- GPT: licences -> C headers -------------------------------------------------------------

std::vector<std::string> files_in(const std::string& dir, const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names)
    if (std::filesystem::is_regular_file(dir + "/" + n)) out.push_back(dir + "/" + n);
  return out;
}

double mean_loss(models::GPT<float>& lm, const data::TextDataset& text, int batches) {
  NoGradGuard no_grad;
  lm.eval();
  Generator gen(1234);  // the same windows every time
  double total = 0;
  for (int b = 0; b < batches; ++b) {
    auto [x, y] = text.sample_batch(16, gen);
    total += lm.loss(x.to(device), y.to(device)).item() / batches;
  }
  lm.train();
  return total;
}

void run_gpt(std::optional<io::MetricsLog>& log) {
  const auto start = std::chrono::steady_clock::now();
  models::GPTConfig config{.vocab_size = 256, .block_size = 64, .n_layer = 4, .n_head = 4, .n_embd = 128};
  std::vector<std::string> licences;
  for (const auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses"))
    if (e.is_regular_file() && !e.is_symlink()) licences.push_back(e.path().string());
  std::sort(licences.begin(), licences.end());
  const auto headers = files_in("/usr/include", {"stdio.h", "stdlib.h", "string.h", "unistd.h", "math.h", "fcntl.h",
                                                 "signal.h", "time.h", "pthread.h", "wchar.h", "locale.h", "dirent.h"});
  check(!licences.empty() && headers.size() >= 4, "09_lora", "the gpt experiment needs /usr/share/common-licenses and "
        "C headers in /usr/include (Debian: base-files, libc6-dev)");
  auto [src_train, src_val] = data::TextDataset::from_files(licences, config.block_size).split(0.9);
  auto target = data::TextDataset::from_files(headers, config.block_size);
  auto [tgt_rest, tgt_test] = target.split(0.8);
  auto [tgt_train, tgt_val] = tgt_rest.split(0.875);  // 70% / 10% / 20%
  std::printf("[gpt] source: %zu licence texts, %zu bytes; target: %zu C headers, %zu bytes (%zu train, %zu val, %zu test)\n",
              licences.size(), src_train.tokens().size() + src_val.tokens().size(), headers.size(),
              target.tokens().size(), tgt_train.tokens().size(), tgt_val.tokens().size(), tgt_test.tokens().size());

  // Pretraining on the licences (AdamW 1e-3, cosine decay, 800 steps).
  Generator g(0);
  models::GPT<float> base(config, g);
  base.to(device);
  {
    optim::AdamW<float> opt(base.parameters(), {.lr = 1e-3, .beta2 = 0.95, .weight_decay = 0.1});
    const int steps = 800;
    optim::LRScheduler sched(opt, optim::cosine_with_warmup(steps / 20, steps, 0.1));
    Generator batches(1);
    for (int step = 1; step <= steps; ++step) {
      auto [x, y] = src_train.sample_batch(16, batches);
      auto loss = base.loss(x.to(device), y.to(device));
      opt.zero_grad();
      loss.backward();
      optim::clip_grad_norm_(base.parameters(), 1.0);
      opt.step();
      sched.step();
    }
  }
  nn::StateDict<float> weights;
  for (auto& [k, v] : base.state_dict()) weights[k] = v.clone();
  const double src0 = mean_loss(base, src_val, 16), tgt0 = mean_loss(base, tgt_test, 16);
  std::printf("[gpt] pretrained (%.0f s): source val loss %.3f, target test loss %.3f nats/byte before adaptation\n",
              seconds_since(start), src0, tgt0);

  using M = lora::Method;
  struct Run {
    std::string key, label;
    std::optional<lora::Config> config;  // none: full fine-tuning
    std::vector<double> lrs;
  };
  const std::vector<Run> runs{
      {"lora", "LoRA r=8 s=2", make(M::LoRA, 8, 16, 0), {1e-3, 3e-3, 1e-2}},
      {"lora_s1", "LoRA r=8 s=1", make(M::LoRA, 8, 8, 0), {1e-3, 3e-3, 1e-2}},
      {"dora", "DoRA r=8 s=2", make(M::DoRA, 8, 16, 0), {1e-3, 3e-3, 1e-2}},
      {"allora", "ALLoRA r=8 eta=2 p=1", make(M::ALLoRA, 8, 0, 0, 2, 1), {1e-3, 3e-3, 1e-2}},
      {"full", "full fine-tuning", std::nullopt, {1e-4, 3e-4, 1e-3}},
  };
  const std::vector<int> checkpoints{25, 50, 100, 200, 300};
  std::printf("[gpt] AdamW, batch 16, learning rate chosen on the target validation split\n");
  std::printf("  %-22s %9s %7s  target test loss at step 25/50/100/200/300   source val\n", "method", "params", "lr");
  std::printf("  %-22s %9s %7s  %.3f (no adaptation)%36.3f\n", "pretrained", "0", "-", tgt0, src0);
  for (const auto& r : runs) {
    struct Result {
      double lr = 0, val = 1e9, src = 0;
      std::vector<double> test;
      std::int64_t trainable = 0;
    } best;
    for (double lr : r.lrs) {
      Generator gm(0);
      models::GPT<float> lm(config, gm);
      lm.load_state_dict(weights);
      lm.to(device);
      std::vector<Tensor<float>> params;
      if (r.config) {
        auto c = *r.config;
        c.target_modules = {"c_attn", "c_proj", "c_fc"};
        c.seed = 3;
        lora::add_adapters(lm, c);
        params = lora::adapter_parameters(lm);
      } else {
        params = lm.parameters();
      }
      optim::AdamW<float> opt(params, {.lr = lr, .beta2 = 0.95, .weight_decay = 0.0});
      Generator batches(2);
      Result res;
      res.lr = lr;
      res.trainable = lm.num_parameters(true);
      for (int step = 1; step <= checkpoints.back(); ++step) {
        auto [x, y] = tgt_train.sample_batch(16, batches);
        auto loss = lm.loss(x.to(device), y.to(device));
        opt.zero_grad();
        loss.backward();
        optim::clip_grad_norm_(params, 1.0);
        opt.step();
        if (std::find(checkpoints.begin(), checkpoints.end(), step) != checkpoints.end()) {
          res.test.push_back(mean_loss(lm, tgt_test, 16));
          if (log) log->write({{"experiment", "gpt"}, {"method", r.key}, {"lr", lr}, {"step", step}, {"test_loss", res.test.back()}});
        }
      }
      res.val = mean_loss(lm, tgt_val, 16);
      res.src = mean_loss(lm, src_val, 16);
      if (log) log->write({{"experiment", "gpt"}, {"method", r.key}, {"lr", lr}, {"val_loss", res.val}, {"source_loss", res.src}});
      if (res.val < best.val) best = res;
    }
    std::printf("  %-22s %9lld %7g  ", r.label.c_str(), static_cast<long long>(best.trainable), best.lr);
    for (double t : best.test) std::printf("%.3f ", t);
    std::printf("       %.3f\n", best.src);
    if (log)
      for (std::size_t k = 0; k < checkpoints.size(); ++k)
        log->write({{"table", "gpt"}, {"step", checkpoints[k]}, {r.key, best.test[k]}});
  }
  std::printf("[gpt] done in %.0f s\n", seconds_since(start));
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int seeds = 3;
  std::string experiment = "all", metrics;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--seeds" && i + 1 < argc) seeds = std::atoi(argv[++i]);
    else if (s == "--metrics" && i + 1 < argc) metrics = argv[++i];
    else if (s == "--experiment" && i + 1 < argc) experiment = argv[++i];
    else if (s == "--device" && i + 1 < argc) device = std::string(argv[++i]) == "cuda" ? Device::cuda() : Device::cpu();
    else fail("09_lora", "unknown argument \"", s, "\" (--experiment fmnist|gpt|all, --seeds N, --device D, --metrics PATH)");
  }
  check(experiment == "fmnist" || experiment == "gpt" || experiment == "all", "09_lora", "unknown experiment \"",
        experiment, "\" (fmnist, gpt, all)");
  check(seeds >= 1, "09_lora", "--seeds must be at least 1, got ", seeds);
  std::optional<io::MetricsLog> log;
  if (!metrics.empty()) log.emplace(metrics);
  if (experiment == "fmnist" || experiment == "all") run_fmnist(seeds, log);
  if (experiment == "gpt" || experiment == "all") run_gpt(log);
  return 0;
}
