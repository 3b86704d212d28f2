// The CPU's row normalisation: the same math as kernels/norm.hpp (which the CUDA backend runs, a
// warp per row), in two passes over a row instead of three, on the machine's vectors.
//
//   forward:  one pass for s1 = sum(x - x0) and s2 = sum((x - x0)^2), x0 the row's first
//             element (a shift that keeps s2 - s1^2 / n from cancelling when the mean is far
//             from zero), then m = x0 + s1 / n, v = s2 / n - (s1 / n)^2, r = 1/sqrt(v + eps);
//             one pass for y = (x - m) (r w) + b (or max of it and 0, a fused ReLU).
//   backward: one pass for sg = sum(g) and sgd = sum(g (x - x0)), so sum(g xhat) =
//             (sgd - (m - x0) sg) r; one pass for dx = (r w) (g - mean(g)) - (x - m) (r w) r
//             mean(g xhat); with a fused ReLU, g is 0 wherever its output y is.
// Without centring (RMS) x0 = m = 0. The sums run in T on vectors and go into double every
// kFlush vectors (and at the row's end), so a float sum never adds more than 2 kFlush terms per
// lane; the row's scalars (m, r, the coefficients) are double. The elementwise passes run in T:
// the float input already limits y to T's precision.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ligm/backend/cpu/simd.hpp"
#include "ligm/backend/kernels/norm.hpp"

namespace ligm::cpu::norm {

inline constexpr int kFlush = 32;

// (sum of f(o).first, sum of f(o).second) over row i's elements, f(V{}, o) returning a Pair of
// vectors of the values at offsets o, o + 1, ... (or of scalars for f(T{}, o)). On rows of long
// runs, prefetch(o) is called for the same place in the next run as each pair of vectors is
// read: a batch norm row is N runs of H x W values lying C x H x W apart, each too short for the
// hardware prefetcher to ramp up on (28x28: forward 10-15% faster; on runs of 14x14 and 7x7 no
// gain or a loss, bench/NOTES.md 40).
inline constexpr std::int64_t kPrefetchRun = 512;
template <class T, class F, class Prefetch>
kernels::Pair<double> row_sums(const kernels::RowLayout& layout, std::int64_t i, const F& f,
                               const Prefetch& prefetch) {
  using V = typename Simd<T>::type;
  constexpr int W = Simd<T>::lanes;
  double s1 = 0, s2 = 0;
  V a0{}, b0{}, a1{}, b1{};
  int pending = 0;
  auto flush = [&] {
    for (int l = 0; l < W; ++l) s1 += double(a0[l]) + double(a1[l]), s2 += double(b0[l]) + double(b1[l]);
    a0 = b0 = a1 = b1 = V{};
    pending = 0;
  };
  const bool ahead = layout.runs > 1 && layout.inner >= kPrefetchRun;
  for (std::int64_t s = 0; s < layout.runs; ++s) {
    const std::int64_t base = i * layout.inner + s * layout.run_stride;
    std::int64_t k = 0;
    for (; k + 2 * W <= layout.inner; k += 2 * W) {  // two chains of additions, not one
      if (ahead) prefetch(base + layout.run_stride + k), prefetch(base + layout.run_stride + k + W);
      const auto p = f(V{}, base + k), q = f(V{}, base + k + W);
      a0 += p.first, b0 += p.second, a1 += q.first, b1 += q.second;
      if (++pending == kFlush) flush();
    }
    for (; k + W <= layout.inner; k += W) {
      const auto p = f(V{}, base + k);
      a0 += p.first, b0 += p.second;
      if (++pending == kFlush) flush();
    }
    for (; k < layout.inner; ++k) {
      const auto p = f(T{}, base + k);
      s1 += double(p.first), s2 += double(p.second);
    }
  }
  flush();
  return {s1, s2};
}

// f(V{}, o) over row i's elements, whole vectors first, then narrower ones and scalars.
template <class T, class F>
void row_each(const kernels::RowLayout& layout, std::int64_t i, const F& f) {
  for (std::int64_t s = 0; s < layout.runs; ++s) {
    const std::int64_t base = i * layout.inner + s * layout.run_stride;
    simd_for<T>(layout.inner, [&](auto zero, std::int64_t k) { f(zero, base + k); });
  }
}

template <class T>
void forward(const kernels::NormalizeRows<T>& p, std::int64_t i) {
  const auto& layout = p.layout;
  const double n = double(layout.cols());
  const T x0 = p.center ? p.x[i * layout.inner] : T(0);
  const auto s = row_sums<T>(
      layout, i,
      [&](auto zero, std::int64_t o) {
        using V = decltype(zero);
        const V d = load<V>(p.x + o) - x0;
        return kernels::Pair<V>{d, d * d};
      },
      [&](std::int64_t o) { __builtin_prefetch(p.x + o); });
  const double d1 = p.center ? s.first / n : 0.0;
  const double m = double(x0) + d1, v = std::max(0.0, s.second / n - d1 * d1);
  const double r = 1 / std::sqrt(v + p.eps);
  p.mean[i] = T(m);
  p.rstd[i] = T(r);
  const T mt = T(m), scale = T(p.weight ? r * double(p.weight[i]) : r), shift = p.bias ? p.bias[i] : T(0);
  T* y = p.y;
  if (p.relu) {  // the same values as the body's, then max(v, 0) (0 for NaN, as the body)
    row_each<T>(layout, i, [&](auto zero, std::int64_t o) {
      using V = decltype(zero);
      const V v = (load<V>(p.x + o) - mt) * scale + shift;
      store(y + o, V(v > V{} ? v : V{}));
    });
    return;
  }
  row_each<T>(layout, i, [&](auto zero, std::int64_t o) {
    using V = decltype(zero);
    store(y + o, V((load<V>(p.x + o) - mt) * scale + shift));
  });
}

// The incoming gradient at o: g, or with a fused ReLU g where its output is positive, else 0.
template <class V, class T>
inline V relu_masked(const kernels::NormalizeRowsBackward<T>& p, std::int64_t o) {
  const V g = load<V>(p.g + o);
  if (!p.y) return g;
  const V y = load<V>(p.y + o);
  return V(y > V{} ? g : V{});
}

template <class T>
void backward(const kernels::NormalizeRowsBackward<T>& p, std::int64_t i) {
  const auto& layout = p.layout;
  const double n = double(layout.cols());
  const T x0 = p.center ? p.x[i * layout.inner] : T(0);
  const double m = p.center ? double(p.mean[i]) : 0.0, r = double(p.rstd[i]);
  const auto s = row_sums<T>(
      layout, i,
      [&](auto zero, std::int64_t o) {
        using V = decltype(zero);
        const V g = relu_masked<V>(p, o);
        return kernels::Pair<V>{g, g * (load<V>(p.x + o) - x0)};
      },
      [&](std::int64_t o) { __builtin_prefetch(p.g + o), __builtin_prefetch(p.x + o); });
  const double sg = s.first, sgx = (s.second - (m - double(x0)) * sg) * r;  // sum(g), sum(g xhat)
  if (p.dweight) p.dweight[i] = T(sgx);
  if (p.dbias) p.dbias[i] = T(sg);
  if (!p.dx) return;
  const double scale = p.weight ? r * double(p.weight[i]) : r;
  const double mg = p.center ? sg / n : 0.0, mgx = sgx / n;
  const T mt = T(m), a = T(scale), b = T(-scale * r * mgx), c = T(-scale * mg);
  T* dx = p.dx;
  row_each<T>(layout, i, [&](auto zero, std::int64_t o) {
    using V = decltype(zero);
    store(dx + o, V(relu_masked<V>(p, o) * a + (load<V>(p.x + o) - mt) * b + c));
  });
}

}  // namespace ligm::cpu::norm
