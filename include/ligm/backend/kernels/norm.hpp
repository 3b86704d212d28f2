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
#include <type_traits>

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

// The fused ReLU's mask on the CPU, a bit per value: each run of `inner` values (RowLayout)
// starts a 16-bit word, so a run's vectors (16 floats or 8 doubles at a multiple of their
// width) each fall into one word and threads that share out runs never share a word. The
// value at offset k of the run at `base` (a multiple of inner) is bit k % 16 of word
// (base / inner) * per_run + k / 16.
struct ReluBits {
  static std::int64_t per_run(std::int64_t inner) { return (inner + 15) / 16; }
  // The word that holds value k of run `index` (runs of `inner` values).
  static std::int64_t word(std::int64_t index, std::int64_t inner, std::int64_t k) {
    return index * per_run(inner) + k / 16;
  }
  // The words for `rows` rows of `layout`.
  static std::int64_t words(const RowLayout& layout, std::int64_t rows) {
    return rows * layout.runs * per_run(layout.inner);
  }
};

template <class T>
struct NormalizeRows {
  using value_type = T;
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
  // With relu, on the CPU: where y > 0, a bit per value (ReluBits' layout) for the backward,
  // which then reads it instead of y (a 32nd of the bytes). The device bodies leave it alone.
  std::uint16_t* relu_bits = nullptr;
  // A per-column affine, y = xhat * col_weight[k] + col_bias[k] for the row's k-th value
  // (layer_norm's and rms_norm's), on rows of one run without the per-row affine, a residual
  // or the ReLU. Only on backends whose normalizes_columns() is true (the CPU's); the device
  // bodies leave them alone, and the ops apply the affine as separate ops there.
  const T* col_weight = nullptr;  // [cols] or nullptr (1)
  const T* col_bias = nullptr;    // [cols] or nullptr (0)
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
  using value_type = T;
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
  // The CPU's stand-in for y, written by the forward (NormalizeRows::relu_bits): the mask as
  // bits. The device bodies read y.
  const std::uint16_t* relu_bits = nullptr;
  // The per-column affine (NormalizeRows::col_weight): dx through it, and its gradients, the
  // sums over the rows of g * xhat and of g ([cols] each, or nullptr). CPU only, as there.
  const T* col_weight = nullptr;
  T* dcol_weight = nullptr;
  T* dcol_bias = nullptr;
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

// ---- batch norm's channels on the device: many warps per channel -----------------------------
// A warp per row leaves most of a GPU idle on batch norm (32-128 channels against 100+
// multiprocessors) and walks each channel's N runs of H x W one after the other. Rows laid out
// as NCHW channels (RowLayout runs > 1, run_stride = rows * inner) run instead as the CPU's two
// passes (backend/cpu/norm_rows.hpp) spread over three launches:
//   1. ChannelSums: a warp per (part, channel), a part being `per` consecutive runs: the sums
//      of the first pass, shifted by the row's first element, into partial[part * rows + row];
//   2. ChannelFinish: a thread per channel: the parts added in order, then the row's scalars
//      (mean and rstd, or the affine's gradients) and its coefficients, coef[4 * row + 0..3];
//   3. ChannelApply: a thread per element: the elementwise pass.
// The forward and the backward share them (`Params` is NormalizeRows or NormalizeRowsBackward).
struct ChannelSplit {
  std::int64_t parts = 1, per = 1;  // `parts` parts of `per` runs (the last may have fewer)
  // About 4096 warps in all (fewer when there are fewer runs).
  static ChannelSplit of(const RowLayout& layout, std::int64_t rows) {
    const std::int64_t runs = layout.runs > 1 ? layout.runs : 1, want = 4096 / (rows > 0 ? rows : 1);
    const std::int64_t parts = want < 1 ? 1 : (want < runs ? want : runs);
    ChannelSplit s;
    s.per = (runs + parts - 1) / parts;
    s.parts = (runs + s.per - 1) / s.per;  // no empty part
    return s;
  }
  // Whether rows of `layout` are NCHW channels (the CPU sweeps those in memory order too).
  static bool applies(const RowLayout& layout, std::int64_t rows) {
    return layout.runs > 1 && layout.run_stride == rows * layout.inner;
  }
};

template <class T>
LIGM_HD ReduceAcc<T> row_shift(const T* x, const RowLayout& layout, bool center, std::int64_t row) {
  return center ? ReduceAcc<T>(x[row * layout.inner]) : ReduceAcc<T>(0);
}
// The incoming gradient at o, masked by a fused ReLU's output.
template <class T>
LIGM_HD T masked_grad(const NormalizeRowsBackward<T>& p, std::int64_t o) {
  return p.y && !(p.y[o] > T(0)) ? T(0) : p.g[o];
}

template <class Params>
struct ChannelSums {
  using T = typename Params::value_type;
  using Acc = ReduceAcc<T>;
  Params p;
  std::int64_t rows, per;
  Pair<Acc>* partial;
  template <class AllSum>
  LIGM_HD void operator()(std::int64_t item, int lane, int lanes, const AllSum& all_sum) const {
    const std::int64_t row = item % rows, part = item / rows;
    const Acc x0 = row_shift(p.x, p.layout, p.center, row);
    const std::int64_t r1 = (part + 1) * per < p.layout.runs ? (part + 1) * per : p.layout.runs;
    Acc s1 = 0, s2 = 0;
    for (std::int64_t r = part * per; r < r1; ++r) {
      const std::int64_t base = row * p.layout.inner + r * p.layout.run_stride;
      for (std::int64_t k = lane; k < p.layout.inner; k += lanes) {
        const Acc d = Acc(p.x[base + k]) - x0;
        if constexpr (std::is_same_v<Params, NormalizeRows<T>>) {
          s1 += d, s2 += d * d;
        } else {
          const Acc g = Acc(masked_grad(p, base + k));
          s1 += g, s2 += g * d;
        }
      }
    }
    s1 = all_sum(s1);
    s2 = all_sum(s2);
    if (lane == 0) partial[item] = Pair<Acc>{s1, s2};
  }
};

template <class Params>
struct ChannelFinish {
  using T = typename Params::value_type;
  using Acc = ReduceAcc<T>;
  Params p;
  std::int64_t rows, parts;
  const Pair<Acc>* partial;
  T* coef;  // [rows][4]
  LIGM_HD void operator()(std::int64_t row) const {
    Acc s1 = 0, s2 = 0;
    for (std::int64_t part = 0; part < parts; ++part) {
      s1 += partial[part * rows + row].first;
      s2 += partial[part * rows + row].second;
    }
    const Acc n = Acc(p.layout.cols()), x0 = row_shift(p.x, p.layout, p.center, row);
    T* c = coef + 4 * row;
    if constexpr (std::is_same_v<Params, NormalizeRows<T>>) {  // y = (x - m) scale + shift
      const Acc d1 = p.center ? s1 / n : Acc(0), m = x0 + d1;
      Acc v = s2 / n - d1 * d1;
      if (!(v > Acc(0))) v = Acc(0);
      const Acc r = Acc(1) / std::sqrt(v + Acc(p.eps));
      p.mean[row] = T(m);
      p.rstd[row] = T(r);
      c[0] = T(m), c[1] = T(p.weight ? r * Acc(p.weight[row]) : r), c[2] = p.bias ? p.bias[row] : T(0), c[3] = T(0);
    } else {  // dx = g a + (x - m) b + c, with sum(g) and sum(g xhat)
      const Acc m = p.center ? Acc(p.mean[row]) : Acc(0), r = Acc(p.rstd[row]);
      const Acc sg = s1, sgx = (s2 - (m - x0) * sg) * r;
      if (p.dweight) p.dweight[row] = T(sgx);
      if (p.dbias) p.dbias[row] = T(sg);
      const Acc scale = p.weight ? r * Acc(p.weight[row]) : r;
      const Acc mg = p.center ? sg / n : Acc(0), mgx = sgx / n;
      c[0] = T(m), c[1] = T(scale), c[2] = T(-scale * r * mgx), c[3] = T(-scale * mg);
    }
  }
};

template <class Params>
struct ChannelApply {
  using T = typename Params::value_type;
  Params p;
  std::int64_t rows;
  const T* coef;
  LIGM_HD void operator()(std::int64_t o) const {
    const T* c = coef + 4 * ((o / p.layout.inner) % rows);
    if constexpr (std::is_same_v<Params, NormalizeRows<T>>) {
      T v = (p.x[o] - c[0]) * c[1] + c[2];
      if (p.residual) v = v + p.residual[o];
      p.y[o] = p.relu && !(v > T(0)) ? T(0) : v;
    } else {
      const T g = masked_grad(p, o);
      if (p.dx) p.dx[o] = g * c[1] + (p.x[o] - c[0]) * c[2] + c[3];
      if (p.dresidual) p.dresidual[o] = g;
    }
  }
};

// The three launches for `rows` NCHW channels: rows_launch(n, body) runs body(item, lane,
// lanes, all_sum) for every item < n (a warp each), each_launch(n, body) runs body(i) for
// every i < n; `partial` holds split.parts * rows pairs and `coef` 4 * rows values. Whether the
// elementwise pass runs: the forward always, the backward when dx or dresidual is asked for.
template <class Params, class Rows, class Each>
void channel_passes(const Params& p, std::int64_t rows, const ChannelSplit& split,
                    Pair<ReduceAcc<typename Params::value_type>>* partial, typename Params::value_type* coef,
                    const Rows& rows_launch,
                    const Each& each_launch, bool elementwise) {
  rows_launch(split.parts * rows, ChannelSums<Params>{p, rows, split.per, partial});
  each_launch(rows, ChannelFinish<Params>{p, rows, split.parts, partial, coef});
  if (elementwise) each_launch(rows * p.layout.cols(), ChannelApply<Params>{p, rows, coef});
}

}  // namespace ligm::kernels
