// ligm side of the benchmark: one workload, one thread count; prints one JSON line.
//
//   build/bench/ligm_bench --workload mlp --threads 2 [--steps 20 --warmup 5] [--device cuda]
//   build/bench/ligm_bench --sgemm 1024 --threads 2 [--device cuda]
//
// --tf32 off|conv|all (default off): which float32 GPU work may run on TF32 tensor cores
// (cuda::set_allow_tf32; "conv" is PyTorch's default: convolutions yes, matrix products no).
// --cudnn-benchmark 0|1 (default 0, as PyTorch's): time cuDNN's convolution algorithms per shape
// and keep the fastest (cuda::set_cudnn_benchmark, torch.backends.cudnn.benchmark).
//
// The JSON line: the median step time, peak RSS, and tensor_peak_mb, the most memory tensors
// held on the device at once (core/memory.hpp; on the GPU, torch.cuda.max_memory_allocated's
// counterpart).
//
// --profile N (default 0): after the timed steps, N more under the profiler (autograd/profiler.hpp),
// its table printed before the JSON line; --trace FILE also saves them as a Chrome trace.
//
// The workloads (bench/workloads.md) are ligm's models with the shapes of bench/torch_bench.py;
// the step is the full training step: forward, cross-entropy, zero_grad, backward, AdamW.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ligm/io/trace.hpp>
#include <ligm/ligm.hpp>
#include <ligm/models/models.hpp>

using namespace ligm;
using Clock = std::chrono::steady_clock;

namespace {

double rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Workload {
  std::shared_ptr<nn::Module<float>> net;
  std::function<Tensor<float>()> loss;
};

Workload make(const std::string& name, Device device) {
  Generator g(0);
  if (name == "gpt") {
    auto lm = std::make_shared<models::GPT<float>>(models::GPTConfig{.vocab_size = 256, .block_size = 128});
    lm->to(device);
    auto tok = randint(0, 256, {16, 129}, g).to(device);
    auto x = tok.narrow(1, 0, 128).contiguous(), y = tok.narrow(1, 1, 128).contiguous();
    return {lm, [lm, x, y] { return lm->loss(x, y); }};
  }
  const std::int64_t batch = name == "mlp" ? 128 : 64;
  auto x = randn<float>({batch, 1, 28, 28}, g).to(device);
  auto y = randint(0, 10, {batch}, g).to(device);
  std::shared_ptr<nn::Module<float>> net;
  if (name == "mlp") net = std::make_shared<models::MLP<float>>(784, 10);
  else if (name == "cnn") net = std::make_shared<models::SmallCNN<float>>();
  else if (name == "resnet")
    net = std::make_shared<models::ResNet<float>>(models::ResNetOptions{
        .layers = {1, 1, 1}, .widths = {32, 64, 128}, .num_classes = 10, .in_channels = 1, .stem = "cifar"});
  else if (name == "vit")
    net = std::make_shared<models::VisionTransformer<float>>(models::ViTOptions{.depth = 6});
  else fail("ligm_bench", "unknown workload \"", name, "\" (mlp, cnn, resnet, vit, gpt)");
  net->to(device);
  return {net, [net, x, y] { return cross_entropy((*net)(x), y); }};
}

}  // namespace

int main(int argc, char** argv) {
  std::string workload;
  int threads = 1, steps = 20, warmup = 5, profile_steps = 0;
  std::string trace;
  std::int64_t sgemm = 0;
  Device device = Device::cpu();
  std::string tf32 = "off";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--workload") workload = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--steps") steps = std::stoi(v);
    else if (k == "--warmup") warmup = std::stoi(v);
    else if (k == "--sgemm") sgemm = std::stoll(v);
    else if (k == "--device") device = v == "cuda" ? Device::cuda() : Device::cpu();
    else if (k == "--tf32") tf32 = v;
    else if (k == "--profile") profile_steps = std::stoi(v);
    else if (k == "--cudnn-benchmark") cuda::set_cudnn_benchmark(v == "1");
    else if (k == "--trace") trace = v;
    else fail("ligm_bench", "unknown option ", k);
  }
  check(tf32 == "off" || tf32 == "conv" || tf32 == "all", "ligm_bench", "--tf32 takes off, conv or all, got ", tf32);
  cuda::set_allow_tf32({.conv = tf32 != "off", .matmul = tf32 == "all"});
  set_num_threads(threads);
  if (sgemm > 0) {
    const std::int64_t n = sgemm;
    auto a = randn<float>({n, n}).to(device), b = randn<float>({n, n}).to(device);
    for (int i = 0; i < 3; ++i) mm(a, b);
    cuda::synchronize();
    std::vector<double> t;
    const int reps = std::max(5, int((device.is_cpu() ? 2e10 : 2e12) / (2.0 * double(n) * double(n) * double(n))));
    for (int i = 0; i < reps; ++i) {
      const auto s = Clock::now();
      auto c = mm(a, b);
      cuda::synchronize();
      t.push_back(std::chrono::duration<double>(Clock::now() - s).count());
    }
    const double m = median(t);
    std::printf("{\"side\": \"ligm\", \"device\": \"%s\", \"sgemm\": %lld, \"threads\": %d, \"ms\": %.4f, \"gflops\": %.2f}\n",
                device.str().c_str(), static_cast<long long>(n), threads, 1e3 * m, 2.0 * double(n) * double(n) * double(n) / m / 1e9);
    return 0;
  }
  auto w = make(workload, device);
  optim::AdamW opt(w.net->parameters(), {.lr = 1e-3});
  std::vector<double> t;
  float last = 0;
  for (int i = 0; i < warmup + steps; ++i) {
    const auto s = Clock::now();
    auto loss = w.loss();
    opt.zero_grad();
    loss.backward();
    opt.step();
    last = loss.item();  // waits for the device
    if (i >= warmup) t.push_back(std::chrono::duration<double>(Clock::now() - s).count());
  }
  if (profile_steps > 0) {
    profiler::Profile prof;
    for (int i = 0; i < profile_steps; ++i) {
      profiler::Scope step("step");
      Tensor<float> loss;
      {
        profiler::Scope forward("forward + loss");
        loss = w.loss();
      }
      opt.zero_grad();
      loss.backward();
      opt.step();
      last = loss.item();
    }
    prof.stop();
    std::printf("ligm profile: %s on %s, %d steps (%s)\n%s\n", workload.c_str(), device.str().c_str(), profile_steps,
                device.is_cpu() ? "host time" : "each scope waits for the GPU at its start and end",
                prof.table(40).c_str());
    if (!trace.empty()) io::save_chrome_trace(prof, trace);
  }
  std::printf("{\"side\": \"ligm\", \"device\": \"%s\", \"workload\": \"%s\", \"threads\": %d, \"ms\": %.4f, \"rss_mb\": %.1f, "
              "\"tensor_peak_mb\": %.1f, \"loss\": %.5f}\n",
              device.str().c_str(), workload.c_str(), threads, 1e3 * median(t), rss_mb(),
              double(max_memory_allocated(device)) / 1e6, double(last));
  return 0;
}
