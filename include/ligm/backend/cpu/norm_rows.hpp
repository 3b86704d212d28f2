// The CPU's row normalisation: the same math as kernels/norm.hpp (which the CUDA backend runs, a
// warp per row), in two passes over the data instead of three, on the machine's vectors.
//
//   forward:  one pass for s1 = sum(x - x0) and s2 = sum((x - x0)^2), x0 the row's first
//             element (a shift that keeps s2 - s1^2 / n from cancelling when the mean is far
//             from zero), then m = x0 + s1 / n, v = s2 / n - (s1 / n)^2, r = 1/sqrt(v + eps);
//             one pass for y = (x - m) (r w) + b (+ a residual; then max of it and 0 with a
//             fused ReLU).
//   backward: one pass for sg = sum(g) and sgd = sum(g (x - x0)), so sum(g xhat) =
//             (sgd - (m - x0) sg) r; one pass for dx = (r w) (g - mean(g)) - (x - m) (r w) r
//             mean(g xhat) (and the residual's gradient, g); with a fused ReLU, g is 0
//             wherever its output y is.
// Without centring (RMS) x0 = m = 0. The sums run in T on vectors (each lane adds at most
// kFlush terms) and go into double, their lanes summed in a tree, every kFlush vector pairs and
// at the end of each run; the row's scalars (m, r, the coefficients) are double. The
// elementwise passes run in T: the float input already limits y to T's precision.
//
// Two ways through the data, the same arithmetic per element:
//   - rows of one run (layer_norm, rms_norm, group_norm): row by row, the rows over the threads;
//   - batch norm's rows (the C channels of an [N, C, HW] tensor, each N runs of HW lying C * HW
//     apart): swept in memory order, run after run. Row by row, a thread jumps C * HW ahead
//     after every run, too often for the hardware prefetcher on 28x28 and smaller planes; in
//     order it streams (batch norm forward + backward on [64, 32, 28, 28] at one thread 3.3 ->
//     1.5 ms, `conv_bench --norms 1`, bench/NOTES.md 47). The sums are taken over
//     kGroups fixed groups of consecutive runs, each into its own per-channel partials, added
//     in group order: the result depends on the shape only, not on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ligm/backend/cpu/parallel.hpp"
#include "ligm/backend/cpu/simd.hpp"
#include "ligm/backend/kernels/norm.hpp"

namespace ligm::cpu::norm {

inline constexpr int kFlush = 32;
inline constexpr std::int64_t kGroups = 32;  // of runs, for batch norm's sums

// (sum of f(k).first, sum of f(k).second) over a run's values k in [0, len), f(V{}, k)
// returning a Pair of vectors of the values at k, k + 1, ... (or of scalars for f(T{}, k)).
template <class T, class F>
kernels::Pair<double> run_sums(std::int64_t len, const F& f) {
  using V = typename Simd<T>::type;
  constexpr int W = Simd<T>::lanes;
  double s1 = 0, s2 = 0;
  V a0{}, b0{}, a1{}, b1{};
  int pending = 0;
  auto flush = [&] {
    s1 += double(reduce_add<T>(V(a0 + a1))), s2 += double(reduce_add<T>(V(b0 + b1)));
    a0 = b0 = a1 = b1 = V{};
    pending = 0;
  };
  std::int64_t k = 0;
  for (; k + 2 * W <= len; k += 2 * W) {  // two chains of additions, not one
    const auto p = f(V{}, k), q = f(V{}, k + W);
    a0 += p.first, b0 += p.second, a1 += q.first, b1 += q.second;
    if (++pending == kFlush) flush();
  }
  for (; k + W <= len; k += W) {
    const auto p = f(V{}, k);
    a0 += p.first, b0 += p.second;
  }
  for (; k < len; ++k) {
    const auto p = f(T{}, k);
    s1 += double(p.first), s2 += double(p.second);
  }
  flush();
  return {s1, s2};
}

// A run of a row: its values lie at base, base + 1, ..., base + inner - 1; index = base /
// inner, its place among all the runs (kernels::ReluBits numbers its words by it).
struct Run {
  std::int64_t base, index;
  std::int64_t at(std::int64_t k) const { return base + k; }
};

// Per row i: the sums of f(V{}, i, run, k) over its elements, c = finish(i, sums) (the row's
// coefficients), then, with `elementwise`, each(zero, c, run, k) over its elements (a vector of
// the run's elements at k, k + 1, ...). Rows of one run go row by row; batch norm's rows in
// memory order (above), their coefficients kept between the passes.
template <class T, class Sum, class Finish, class Each>
void two_passes(const kernels::RowLayout& layout, std::int64_t rows, const Sum& f, const Finish& finish,
                const Each& each, bool elementwise = true) {
  using Coef = decltype(finish(std::int64_t(0), kernels::Pair<double>{}));
  const std::int64_t inner = layout.inner;
  if (layout.runs == 1 || layout.run_stride != rows * inner) {
    parallel_for(0, rows, std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(layout.cols(), 1)),
                 [&](std::int64_t lo, std::int64_t hi) {
                   const auto run = [&](std::int64_t i, std::int64_t r) {
                     const std::int64_t base = i * inner + r * layout.run_stride;
                     return Run{base, inner > 0 ? base / inner : 0};
                   };
                   for (std::int64_t i = lo; i < hi; ++i) {
                     kernels::Pair<double> s{0, 0};
                     for (std::int64_t r = 0; r < layout.runs; ++r) {
                       const Run at = run(i, r);
                       const auto part = run_sums<T>(inner, [&](auto zero, std::int64_t k) { return f(zero, i, at, k); });
                       s.first += part.first, s.second += part.second;
                     }
                     const Coef c = finish(i, s);
                     if (!elementwise) continue;
                     for (std::int64_t r = 0; r < layout.runs; ++r) {
                       const Run at = run(i, r);
                       simd_for<T>(inner, [&](auto zero, std::int64_t k) { each(zero, c, at, k); });
                     }
                   }
                 });
    return;
  }
  // Run q (of N * C) is channel q % C, at q * inner. Kept from call to call: the groups'
  // partial sums and the channels' coefficients (the worker threads' thread_locals differ,
  // hence the pointers).
  const std::int64_t runs = layout.runs * rows, groups = std::clamp<std::int64_t>(runs, 1, kGroups);
  const std::int64_t per = (runs + groups - 1) / groups;
  thread_local std::vector<kernels::Pair<double>> partial;  // [groups][rows]
  thread_local std::vector<Coef> coefs;
  partial.assign(static_cast<std::size_t>(groups * rows), {0, 0});
  coefs.resize(static_cast<std::size_t>(rows));
  kernels::Pair<double>* const parts = partial.data();
  Coef* const coef = coefs.data();
  parallel_for(0, groups, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t grp = lo; grp < hi; ++grp)
      for (std::int64_t q = grp * per; q < std::min(runs, (grp + 1) * per); ++q) {
        const std::int64_t i = q % rows;
        const Run at{q * inner, q};
        const auto s = run_sums<T>(inner, [&](auto zero, std::int64_t k) { return f(zero, i, at, k); });
        auto& acc = parts[grp * rows + i];
        acc.first += s.first, acc.second += s.second;
      }
  });
  for (std::int64_t i = 0; i < rows; ++i) {
    kernels::Pair<double> s{0, 0};
    for (std::int64_t grp = 0; grp < groups; ++grp)
      s.first += parts[grp * rows + i].first, s.second += parts[grp * rows + i].second;
    coef[i] = finish(i, s);
  }
  if (!elementwise) return;
  parallel_for(0, runs, std::max<std::int64_t>(1, 8192 / std::max<std::int64_t>(inner, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t q = lo; q < hi; ++q) {
                   const Coef& c = coef[q % rows];
                   const Run at{q * inner, q};
                   simd_for<T>(inner, [&](auto zero, std::int64_t k) { each(zero, c, at, k); });
                 }
               });
}

// The fused ReLU's mask bits for the values k, k + 1, ... of a run (kernels::ReluBits): a
// vector at a multiple of its width lies in one word, so it sets its lanes' bits there (the
// first vector of a word assigns the word, the narrower ones after it add theirs) or reads them.
inline void relu_word(std::uint16_t* bits, const kernels::RowLayout& layout, const Run& run, std::int64_t k,
                      unsigned lanes_bits) {
  std::uint16_t& w = bits[kernels::ReluBits::word(run.index, layout.inner, k)];
  const unsigned at = static_cast<unsigned>(k % 16);
  w = static_cast<std::uint16_t>(at == 0 ? lanes_bits : w | (lanes_bits << at));
}
inline unsigned relu_word(const std::uint16_t* bits, const kernels::RowLayout& layout, const Run& run,
                          std::int64_t k) {
  return unsigned(bits[kernels::ReluBits::word(run.index, layout.inner, k)]) >> (k % 16);
}

template <class T>
struct ForwardCoef {
  T m, scale, shift;  // y = (x - m) scale + shift
};
template <class T>
struct BackwardCoef {
  T m, a, b, c;  // dx = g a + (x - m) b + c
};

// Row i's shift x0: its first element (0 without centring).
template <class P>
auto shift_of(const P& p, std::int64_t i) {
  return p.center ? p.x[i * p.layout.inner] : decltype(+p.x[0])(0);
}

// The forward of all `rows` rows.
template <class T>
void forward(const kernels::NormalizeRows<T>& p, std::int64_t rows) {
  const double n = double(p.layout.cols());
  const auto sums = [&](auto zero, std::int64_t i, const Run& run, std::int64_t k) {
    using V = decltype(zero);
    const V d = load<V>(p.x + run.at(k)) - shift_of(p, i);
    return kernels::Pair<V>{d, d * d};
  };
  const auto finish = [&](std::int64_t i, kernels::Pair<double> s) {
    const double d1 = p.center ? s.first / n : 0.0;
    const double m = double(shift_of(p, i)) + d1, v = std::max(0.0, s.second / n - d1 * d1);
    const double r = 1 / std::sqrt(v + p.eps);
    p.mean[i] = T(m);
    p.rstd[i] = T(r);
    return ForwardCoef<T>{T(m), T(p.weight ? r * double(p.weight[i]) : r), p.bias ? p.bias[i] : T(0)};
  };
  // Layer norm's affine (rows of one run: k is the column). A pass of its own, not a branch in
  // the one below: sharing (x - m) * scale with it would keep the compiler from fusing that
  // product with the shift's add there, and change batch norm's bits.
  if (p.col_weight || p.col_bias)
    return two_passes<T>(p.layout, rows, sums, finish,
                         [&](auto zero, const ForwardCoef<T>& c, const Run& run, std::int64_t k) {
                           using V = decltype(zero);
                           const std::int64_t o = run.at(k);
                           V v = (load<V>(p.x + o) - c.m) * c.scale;
                           if (p.col_weight) v = v * load<V>(p.col_weight + k);
                           if (p.col_bias) v = v + load<V>(p.col_bias + k);
                           store(p.y + o, v);
                         });
  two_passes<T>(p.layout, rows, sums, finish, [&](auto zero, const ForwardCoef<T>& c, const Run& run, std::int64_t k) {
    using V = decltype(zero);
    const std::int64_t o = run.at(k);
    V v = (load<V>(p.x + o) - c.m) * c.scale + c.shift;
    if (p.residual) v = v + load<V>(p.residual + o);
    if (!p.relu) return store(p.y + o, v);
    // max(v, 0) (0 for NaN, as the device body), and where it is v, the mask's bits.
    if (!p.relu_bits) return store(p.y + o, V(v > V{} ? v : V{}));
    const unsigned bits = positive_bits(v);
    store(p.y + o, keep_bits(v, bits));
    relu_word(p.relu_bits, p.layout, run, k, bits);
  });
}

// The incoming gradient at the run's k, or with a fused ReLU g where its output is positive
// (by the mask's bits, or by y), else 0.
template <class V, class T>
inline V relu_masked(const kernels::NormalizeRowsBackward<T>& p, const Run& run, std::int64_t k) {
  const V g = load<V>(p.g + run.at(k));
  if (p.relu_bits) return keep_bits(g, relu_word(p.relu_bits, p.layout, run, k));
  if (!p.y) return g;
  const V y = load<V>(p.y + run.at(k));
  return V(y > V{} ? g : V{});
}

inline constexpr std::int64_t kColumnBlock = 32;  // rows per partial sum of the column affine's gradients

// The backward of rows of one run with a per-column affine (layer_norm's weight and bias,
// rms_norm's weight): dx as below with g * w[k] for g; the affine's gradients, sums over the
// rows of g * xhat and of g, taken in the same pass as dx, over fixed blocks of kColumnBlock
// rows (each block's sums in T, then in double, added in block order), so the result depends on
// the shape only, not on the thread count.
template <class T>
void backward_columns(const kernels::NormalizeRowsBackward<T>& p, std::int64_t rows) {
  const std::int64_t cols = p.layout.inner, blocks = (rows + kColumnBlock - 1) / kColumnBlock;
  const double n = double(cols);
  const bool sums = p.dcol_weight || p.dcol_bias;
  thread_local std::vector<double> partial;  // [blocks][2][cols]
  partial.assign(sums ? std::size_t(blocks * 2 * cols) : 0, 0.0);
  double* const parts = partial.data();
  const T* const w = p.col_weight;
  parallel_for(0, blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
    thread_local std::vector<T> acc;  // this block's sums of g * xhat, then of g
    acc.resize(std::size_t(2 * cols));
    T* const sw = acc.data();
    T* const sb = sw + cols;
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      std::fill(acc.begin(), acc.end(), T(0));
      for (std::int64_t i = blk * kColumnBlock; i < std::min(rows, (blk + 1) * kColumnBlock); ++i) {
        const T* const x = p.x + i * cols;
        const T* const g = p.g + i * cols;
        const T x0 = p.center ? x[0] : T(0);
        const auto s = run_sums<T>(cols, [&](auto zero, std::int64_t k) {
          using V = decltype(zero);
          const V gw = w ? V(load<V>(g + k) * load<V>(w + k)) : load<V>(g + k);
          return kernels::Pair<V>{gw, gw * (load<V>(x + k) - x0)};
        });
        const double m = p.center ? double(p.mean[i]) : 0.0, r = double(p.rstd[i]);
        const double sg = s.first, sgx = (s.second - (m - double(x0)) * sg) * r;  // sum(g w), sum(g w xhat)
        const double mg = p.center ? sg / n : 0.0, mgx = sgx / n;
        const T a = T(r), b = T(-r * r * mgx), c = T(-r * mg), tm = T(m), tr = T(r);
        T* const dx = p.dx ? p.dx + i * cols : nullptr;
        simd_for<T>(cols, [&](auto zero, std::int64_t k) {
          using V = decltype(zero);
          const V gv = load<V>(g + k), xm = load<V>(x + k) - tm;
          if (dx) store(dx + k, V((w ? V(gv * load<V>(w + k)) : gv) * a + xm * b + c));
          if (!sums) return;
          store(sw + k, V(load<V>(sw + k) + gv * (xm * tr)));
          store(sb + k, V(load<V>(sb + k) + gv));
        });
      }
      if (sums)
        for (std::int64_t k = 0; k < cols; ++k) {
          parts[(blk * 2) * cols + k] = double(sw[k]);
          parts[(blk * 2 + 1) * cols + k] = double(sb[k]);
        }
    }
  });
  if (!sums) return;
  for (std::int64_t k = 0; k < cols; ++k) {
    double tw = 0, tb = 0;
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      tw += parts[(blk * 2) * cols + k];
      tb += parts[(blk * 2 + 1) * cols + k];
    }
    if (p.dcol_weight) p.dcol_weight[k] = T(tw);
    if (p.dcol_bias) p.dcol_bias[k] = T(tb);
  }
}

// The backward of all `rows` rows.
template <class T>
void backward(const kernels::NormalizeRowsBackward<T>& p, std::int64_t rows) {
  if (p.col_weight || p.dcol_weight || p.dcol_bias) return backward_columns(p, rows);
  const double n = double(p.layout.cols());
  two_passes<T>(
      p.layout, rows,
      [&](auto zero, std::int64_t i, const Run& run, std::int64_t k) {
        using V = decltype(zero);
        const V g = relu_masked<V>(p, run, k);
        return kernels::Pair<V>{g, g * (load<V>(p.x + run.at(k)) - shift_of(p, i))};
      },
      [&](std::int64_t i, kernels::Pair<double> s) {
        const double m = p.center ? double(p.mean[i]) : 0.0, r = double(p.rstd[i]);
        const double sg = s.first, sgx = (s.second - (m - double(shift_of(p, i))) * sg) * r;  // sum(g), sum(g xhat)
        if (p.dweight) p.dweight[i] = T(sgx);
        if (p.dbias) p.dbias[i] = T(sg);
        const double scale = p.weight ? r * double(p.weight[i]) : r;
        const double mg = p.center ? sg / n : 0.0, mgx = sgx / n;
        return BackwardCoef<T>{T(m), T(scale), T(-scale * r * mgx), T(-scale * mg)};
      },
      [&](auto zero, const BackwardCoef<T>& c, const Run& run, std::int64_t k) {
        using V = decltype(zero);
        const std::int64_t o = run.at(k);
        const V g = relu_masked<V>(p, run, k);
        if (p.dx) store(p.dx + o, V(g * c.a + (load<V>(p.x + o) - c.m) * c.b + c.c));
        if (p.dresidual) store(p.dresidual + o, g);
      },
      p.dx != nullptr || p.dresidual != nullptr);
}

}  // namespace ligm::cpu::norm
