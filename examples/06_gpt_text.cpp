// 06: a GPT-style language model on a local text file, byte by byte, that then writes text.
//
// models::GPT (4 pre-norm causal blocks, width 128, 4 heads, context 128, vocabulary 256
// bytes), AdamW (lr 1e-3, warm-up then cosine decay, weight decay 0.1 on matrices only),
// batches of 16 random windows. The text defaults to the licence texts every Debian system has
// (/usr/share/common-licenses, about 260 kB); 90% trains, the last 10% validates. Prints the
// validation loss against the baseline of predicting byte frequencies, then samples text.
//
//   build/examples/06_gpt_text [steps] [--text FILE]... [--device cuda] [--metrics gpt.jsonl]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include <ligm/io/metrics.hpp>
#include <ligm/io/progress.hpp>
#include <ligm/ligm.hpp>
#include <ligm/models/gpt.hpp>

using namespace ligm;

namespace {
// Mean validation loss over `batches` fixed windows.
double validation_loss(models::GPT<float>& lm, const data::TextDataset& val, Device device, int batches) {
  NoGradGuard no_grad;
  lm.eval();
  Generator gen(1234);  // the same windows every time
  double total = 0;
  for (int b = 0; b < batches; ++b) {
    auto [x, y] = val.sample_batch(16, gen);
    total += lm.loss(x.to(device), y.to(device)).item();
  }
  lm.train();
  return total / batches;
}
// Cross-entropy (nats/byte) of predicting `test` with the byte frequencies of `train`.
double unigram_baseline(const std::vector<std::int64_t>& train, const std::vector<std::int64_t>& test) {
  std::vector<double> count(256, 1.0);  // add-one smoothing
  for (auto t : train) count[std::size_t(t)] += 1;
  double total = 0;
  for (double c : count) total += c;
  double nll = 0;
  for (auto t : test) nll -= std::log(count[std::size_t(t)] / total);
  return nll / double(test.size());
}
}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::int64_t steps = 600;
  std::vector<std::string> texts;
  std::string metrics_path;
  Device device = Device::cpu();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--text" && i + 1 < argc) texts.push_back(argv[++i]);
    else if (a == "--device" && i + 1 < argc) device = std::string(argv[++i]) == "cuda" ? Device::cuda() : Device::cpu();
    else if (a == "--metrics" && i + 1 < argc) metrics_path = argv[++i];
    else steps = std::atoll(argv[i]);
  }
  manual_seed(0);
  models::GPTConfig config{.vocab_size = 256, .block_size = 128, .n_layer = 4, .n_head = 4, .n_embd = 128};
  if (texts.empty()) {
    for (const auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses"))
      if (e.is_regular_file() && !e.is_symlink()) texts.push_back(e.path().string());
    std::sort(texts.begin(), texts.end());
  }
  auto text = data::TextDataset::from_files(texts, config.block_size);
  auto [train, val] = text.split(0.9);
  std::printf("%zu text files: %zu bytes (%zu train, %zu validation), device %s\n", texts.size(), text.tokens().size(),
              train.tokens().size(), val.tokens().size(), device.str().c_str());

  models::GPT<float> lm(config);
  lm.to(device);
  std::printf("GPT: %lld parameters\n", static_cast<long long>(lm.num_parameters()));
  // Weight decay on matrices only (nanoGPT's grouping): biases, norms and embeddings have none.
  std::vector<Tensor<float>> decay, no_decay;
  for (auto& [name, p] : lm.named_parameters()) (p.dim() >= 2 && name.find("wpe") == std::string::npos ? decay : no_decay).push_back(p);
  using AdamW = optim::AdamW<float>;
  AdamW opt({AdamW::Group{decay, {.lr = 1e-3, .beta2 = 0.95, .weight_decay = 0.1}},
             AdamW::Group{no_decay, {.lr = 1e-3, .beta2 = 0.95, .weight_decay = 0.0}}},
            {.lr = 1e-3, .beta2 = 0.95});
  optim::LRScheduler sched(opt, optim::cosine_with_warmup(steps / 20, steps, 0.1));
  std::unique_ptr<io::MetricsLog> metrics;
  if (!metrics_path.empty()) metrics = std::make_unique<io::MetricsLog>(metrics_path);

  const double baseline = unigram_baseline(train.tokens(), val.tokens());
  const double initial = validation_loss(lm, val, device, 8);
  std::printf("validation loss before training %.3f nats/byte; byte-frequency baseline %.3f\n", initial, baseline);
  Generator batches(42);
  const auto start = std::chrono::steady_clock::now();
  io::ProgressBar bar(steps, "training");
  double val_loss = initial;
  for (std::int64_t step = 1; step <= steps; ++step) {
    auto [x, y] = train.sample_batch(16, batches);
    auto loss = lm.loss(x.to(device), y.to(device));
    opt.zero_grad();
    loss.backward();
    optim::clip_grad_norm_(lm.parameters(), 1.0);
    opt.step();
    sched.step();
    bar.update(1, {{"loss", loss.item()}});
    if (metrics) metrics->write({{"step", step}, {"train_loss", double(loss.item())}});
    if (step % 100 == 0 || step == steps) {
      val_loss = validation_loss(lm, val, device, 8);
      if (metrics) metrics->write({{"step", step}, {"val_loss", val_loss}});
      if (!bar.enabled())
        std::printf("step %4lld  train loss %.3f  validation loss %.3f\n", static_cast<long long>(step),
                    double(loss.item()), val_loss);
    }
  }
  bar.close();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%lld steps in %.0f s (%.0f ms/step); validation loss %.3f nats/byte (%.2f bits), baseline %.3f\n",
              static_cast<long long>(steps), secs, 1000 * secs / double(steps), val_loss, val_loss / std::log(2.0),
              baseline);

  data::ByteTokenizer tok;
  const std::string prompt = "The ";
  Generator sampler(7);
  auto out = lm.generate(tok.encode_tensor(prompt).unsqueeze(0).to(device), 300, {.temperature = 0.8, .top_k = 40}, sampler);
  std::printf("--- sample (temperature 0.8, top-k 40) ---\n%s\n---\n", tok.decode(out.select(0, 0)).c_str());
  const bool ok = val_loss < baseline;
  std::printf("validation loss below the byte-frequency baseline: %s\n", ok ? "yes" : "NO");
  return ok ? 0 : 1;
}
