// Normalisation of rows, forward and backward side by side: the core of batch_norm (training),
// layer_norm, group_norm and rms_norm.
//   forward:  m = mean(x) (0 when !center), v = mean((x - m)^2), r = 1/sqrt(v + eps),
//             xhat = (x - m) r,  y = xhat w_i + b_i  (the per-row affine of batch_norm, optional),
//             y = y + residual (optional: a residual block's shortcut, added before the ReLU),
//             y = max(y, 0) with `relu` (batch norm fused with the ReLU after it)
//   backward: xhat recomputed from x, m, r; with the ReLU, g = 0 where its output y is 0;
//             dx = w_i r (g - mean(g) - xhat mean(g xhat))   (no mean(g) term when !center),
//             dw_i = sum(g xhat), db_i = sum(g)               (when asked for),
//             dresidual = g                                   (when asked for)
// A row need not be contiguous (RowLayout): batch_norm's rows are the channels of an NCHW
// tensor, normalised where they lie, without a transposed copy.
// A body handles one row, split over `lanes` cooperating threads that own the elements
// lane, lane + lanes, ... of each run; `all_sum` adds a value over the lanes (a warp shuffle on
// the GPU). The CUDA backend runs these bodies; the CPU computes the same math in two
// vectorised passes per row (backend/cpu/norm_rows.hpp).
#pragma once
#include <cmath>
#include <cstdint>

#include "ligm/backend/kernels/elementwise_math.hpp"  // LIGM_HD, ReduceAcc

namespace ligm::kernels {

// Two sums carried through one pass (std::pair is not usable in device code).
template <class A>
struct Pair {
  A first, second;
};

// Where row i's elements lie: `runs` runs of `inner` contiguous elements, run s starting at
// i * inner + s * run_stride. A [rows, cols] matrix has one run of cols per row; an [N, C, HW]
// tensor normalised per channel has C rows of N runs of HW, run_stride C * HW.
struct RowLayout {
  std::int64_t runs = 1, inner = 0, run_stride = 0;
  static RowLayout matrix(std::int64_t cols) { return {1, cols, 0}; }
  static RowLayout channels(std::int64_t n, std::int64_t c, std::int64_t hw) { return {n, hw, c * hw}; }
  LIGM_HD std::int64_t cols() const { return runs * inner; }
  // The sums of f(offset).first and f(offset).second over this lane's elements of row i, in
  // one pass.
  template <class Acc, class F>
  LIGM_HD void sum2(std::int64_t i, int lane, int lanes, const F& f, Acc& first, Acc& second) const {
    first = second = 0;
    for (std::int64_t s = 0; s < runs; ++s) {
      const std::int64_t base = i * inner + s * run_stride;
      for (std::int64_t k = lane; k < inner; k += lanes) {
        const auto v = f(base + k);
        first += v.first;
        second += v.second;
      }
    }
  }
  template <class Acc, class F>
  LIGM_HD Acc sum(std::int64_t i, int lane, int lanes, const F& f) const {
    Acc total, unused;
    sum2(i, lane, lanes, [&](std::int64_t o) { return Pair<Acc>{f(o), Acc(0)}; }, total, unused);
    return total;
  }
  // f(offset) for this lane's elements of row i.
  template <class F>
  LIGM_HD void each(std::int64_t i, int lane, int lanes, const F& f) const {
    for (std::int64_t s = 0; s < runs; ++s) {
      const std::int64_t base = i * inner + s * run_stride;
      for (std::int64_t k = lane; k < inner; k += lanes) f(base + k);
    }
  }
};

template <class T>
struct NormalizeRows {
  const T* x;
  RowLayout layout;
  bool center;
  double eps;
  const T* weight;  // [rows] or nullptr (1)
  const T* bias;    // [rows] or nullptr (0)
  T* y;             // same layout as x
  T* mean;          // [rows]
  T* rstd;          // [rows]
  bool relu = false;  // y = max(y, 0): batch norm fused with the ReLU after it
  const T* residual = nullptr;  // same layout as x, added before the ReLU, or nullptr
  template <class AllSum>
  LIGM_HD void operator()(std::int64_t i, int lane, int lanes, const AllSum& all_sum) const {
    using Acc = ReduceAcc<T>;
    const Acc n = Acc(layout.cols());
    Acc m = 0;
    if (center) m = all_sum(layout.sum<Acc>(i, lane, lanes, [&](std::int64_t o) { return Acc(x[o]); })) / n;
    const Acc v = all_sum(layout.sum<Acc>(i, lane, lanes, [&](std::int64_t o) {
                    const Acc d = Acc(x[o]) - m;
                    return d * d;
                  })) / n;
    const Acc rs = Acc(1) / std::sqrt(v + Acc(eps));
    if (lane == 0) {
      mean[i] = T(m);
      rstd[i] = T(rs);
    }
    const Acc scale = weight ? rs * Acc(weight[i]) : rs, shift = bias ? Acc(bias[i]) : Acc(0);
    layout.each(i, lane, lanes, [&](std::int64_t o) {
      T v = T((Acc(x[o]) - m) * scale + shift);
      if (residual) v = v + residual[o];  // in T, as a separate add would
      y[o] = relu && !(v > T(0)) ? T(0) : v;
    });
  }
};

template <class T>
struct NormalizeRowsBackward {
  const T* x;
  const T* mean;    // [rows] (ignored when !center)
  const T* rstd;    // [rows]
  const T* weight;  // [rows] or nullptr (1)
  const T* g;       // same layout as x
  RowLayout layout;
  bool center;
  T* dx;            // same layout as x, or nullptr
  T* dweight;       // [rows] or nullptr
  T* dbias;         // [rows] or nullptr
  const T* y = nullptr;  // with a fused ReLU, its output: g counts only where y > 0
  T* dresidual = nullptr;  // same layout as x, or nullptr: the residual's gradient (g, masked)
  template <class AllSum>
  LIGM_HD void operator()(std::int64_t i, int lane, int lanes, const AllSum& all_sum) const {
    using Acc = ReduceAcc<T>;
    const Acc n = Acc(layout.cols());
    const Acc m = center ? Acc(mean[i]) : Acc(0), rs = Acc(rstd[i]);
    Acc sg, sgx;
    const auto grad = [&](std::int64_t o) { return y && !(y[o] > T(0)) ? Acc(0) : Acc(g[o]); };
    layout.sum2(i, lane, lanes, [&](std::int64_t o) { return Pair<Acc>{grad(o), grad(o) * (Acc(x[o]) - m)}; },
                sg, sgx);
    sg = all_sum(sg);
    sgx = all_sum(sgx) * rs;
    if (lane == 0) {
      if (dweight) dweight[i] = T(sgx);
      if (dbias) dbias[i] = T(sg);
    }
    if (!dx && !dresidual) return;
    const Acc mg = center ? sg / n : Acc(0), mgx = sgx / n;
    const Acc scale = weight ? rs * Acc(weight[i]) : rs;
    layout.each(i, lane, lanes, [&](std::int64_t o) {
      if (dx) dx[o] = T(scale * (grad(o) - mg - (Acc(x[o]) - m) * rs * mgx));
      if (dresidual) dresidual[o] = T(grad(o));
    });
  }
};

}  // namespace ligm::kernels
