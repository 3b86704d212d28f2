// ligm side of the per-layer convolution benchmark: the convolutions of the ResNet-small and CNN
// workloads (bench/workloads.md), each timed alone through the CPU backend (forward, input
// gradient, weight gradient); tools/bench-conv runs it next to bench/torch_conv_bench.py.
//
//   build/bench/conv_bench --threads 2 [--reps 20] [--layer "128->128 3x3 7"] [--tile 2|4]
//   build/bench/conv_bench --threads 2 --norms 1
//
// --tile forces the Winograd tile of the 3x3 stride-1 layers (winograd_tile.hpp's knob).
//
// Prints one JSON line per layer: {"layer", "fwd_ms", "bwd_input_ms", "bwd_weight_ms"}, each the
// median of --reps calls after three warm-up calls. --norms 1 times the batch norms of
// ResNet-small instead (training mode, through autograd): {"layer", "bn_fwd_ms",
// "bn_fwd_bwd_ms", "bn_relu_fwd_ms", "bn_relu_fwd_bwd_ms", "add_ms", ...}: batch norm, then a
// ReLU after it (two ops), an add of two tensors of that size (the memory traffic of the
// forward alone), the fused batch_norm_relu and batch_norm_add_relu, and the last as three ops.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <ligm/backend/cpu/winograd_tile.hpp>
#include <ligm/ligm.hpp>

using namespace ligm;
using Clock = std::chrono::steady_clock;

namespace {

struct Layer {
  const char* name;
  std::int64_t c_in, hw, c_out, k, stride;
};

// The layers of bench/torch_conv_bench.py, batch 64, padding k / 2.
const Layer kLayers[] = {
    {"stem 1->32 3x3 28", 1, 28, 32, 3, 1},       {"32->32 3x3 28", 32, 28, 32, 3, 1},
    {"32->64 3x3 s2 28", 32, 28, 64, 3, 2},       {"64->64 3x3 14", 64, 14, 64, 3, 1},
    {"32->64 1x1 s2 28", 32, 28, 64, 1, 2},       {"64->128 3x3 s2 14", 64, 14, 128, 3, 2},
    {"128->128 3x3 7", 128, 7, 128, 3, 1},        {"64->128 1x1 s2 14", 64, 14, 128, 1, 2},
    {"cnn 32->64 3x3 14", 32, 14, 64, 3, 1},
};

template <class F>
double time_ms(int reps, const F& f) {
  for (int i = 0; i < 3; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto s = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 20;
  bool norms = false;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--threads") threads = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--layer") only = v;
    else if (k == "--tile") cpu::winograd::forced_tile = std::stoi(v);
    else if (k == "--layout") cpu::winograd::forced_layout = std::stoi(v);
    else if (k == "--norms") norms = std::stoi(v) != 0;
  }
  set_num_threads(threads);
  if (norms) {
    for (const auto& [c, hw] : {std::pair<std::int64_t, std::int64_t>{32, 28}, {64, 14}, {128, 7}}) {
      auto x = randn<float>({64, c, hw, hw}).requires_grad_(), g = randn<float>({64, c, hw, hw});
      auto w = ones<float>({c}).requires_grad_(), b = zeros<float>({c}).requires_grad_();
      auto rm = zeros<float>({c}), rv = ones<float>({c});
      auto bn = [&] { return batch_norm(x, rm, rv, w, b, true); };
      const double f = time_ms(reps, [&] { NoGradGuard ng; bn(); });
      const double fb = time_ms(reps, [&] { bn().backward(g); });
      const double fr = time_ms(reps, [&] { NoGradGuard ng; relu(bn()); });
      const double frb = time_ms(reps, [&] { relu(bn()).backward(g); });
      const double ad = time_ms(reps, [&] { NoGradGuard ng; add(x, g); });
      // The fused ops, and a residual block's end (shortcut r) fused and as three ops.
      auto r = randn<float>({64, c, hw, hw}).requires_grad_();
      const double fused_relu = time_ms(reps, [&] { batch_norm_relu(x, rm, rv, w, b, true).backward(g); });
      const double fused_add = time_ms(reps, [&] { batch_norm_add_relu(x, r, rm, rv, w, b, true).backward(g); });
      const double three = time_ms(reps, [&] { relu(add(bn(), r)).backward(g); });
      std::printf("{\"side\": \"ligm\", \"layer\": \"bn %ldx%ldx%ld\", \"threads\": %d, \"bn_fwd_ms\": %.3f, "
                  "\"bn_fwd_bwd_ms\": %.3f, \"bn_relu_fwd_ms\": %.3f, \"bn_relu_fwd_bwd_ms\": %.3f, \"add_ms\": %.3f, "
                  "\"batch_norm_relu_fwd_bwd_ms\": %.3f, \"batch_norm_add_relu_fwd_bwd_ms\": %.3f, "
                  "\"bn_add_relu_unfused_fwd_bwd_ms\": %.3f}\n",
                  static_cast<long>(c), static_cast<long>(hw), static_cast<long>(hw), threads, f, fb, fr, frb, ad,
                  fused_relu, fused_add, three);
    }
    return 0;
  }
  auto& be = backend_for<float>(Device::cpu());
  for (const Layer& l : kLayers) {
    if (!only.empty() && only != l.name) continue;
    const std::int64_t n = 64, pad = l.k / 2, out = (l.hw + 2 * pad - l.k) / l.stride + 1;
    const Conv2dGeometry g{n, l.c_in, l.hw, l.hw, l.c_out, out, out, l.k, l.k, l.stride, l.stride, pad, pad, 1, 1, 1};
    auto x = randn<float>({n, l.c_in, l.hw, l.hw}), w = randn<float>({l.c_out, l.c_in, l.k, l.k});
    auto y = empty<float>({n, l.c_out, out, out}), gy = randn<float>({n, l.c_out, out, out});
    auto gx = empty<float>({n, l.c_in, l.hw, l.hw}), gw = empty<float>({l.c_out, l.c_in, l.k, l.k});
    const double f = time_ms(reps, [&] { be.conv2d_forward(g, x.data_ptr(), w.data_ptr(), y.data_ptr()); });
    const double bi = time_ms(reps, [&] { be.conv2d_backward_input(g, gy.data_ptr(), w.data_ptr(), gx.data_ptr()); });
    const double bw = time_ms(reps, [&] { be.conv2d_backward_weight(g, x.data_ptr(), gy.data_ptr(), gw.data_ptr()); });
    std::printf("{\"side\": \"ligm\", \"layer\": \"%s\", \"threads\": %d, \"fwd_ms\": %.3f, \"bwd_input_ms\": %.3f, "
                "\"bwd_weight_ms\": %.3f}\n",
                l.name, threads, f, bi, bw);
  }
  return 0;
}
