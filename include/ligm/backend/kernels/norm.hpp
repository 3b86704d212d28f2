// Normalisation of rows, forward and backward side by side: the core of layer_norm, rms_norm,
// group_norm and batch_norm in training (each reshapes its input so that every normalised
// group is one contiguous row; the affine part stays in the ops).
//   forward:  m = mean(x) (0 when !center), v = mean((x - m)^2), r = 1/sqrt(v + eps),
//             xhat = (x - m) r
//   backward: dx = r (g - mean(g) - xhat mean(g xhat))   (no mean(g) term when !center)
// A body handles one row, split over `lanes` cooperating threads that own the columns
// lane, lane + lanes, ...; `all_sum` adds a value over the lanes (a warp shuffle on the GPU,
// the identity for the CPU's single lane).
#pragma once
#include <cmath>
#include <cstdint>

#include "ligm/backend/kernels/reduce.hpp"  // ReduceAcc

namespace ligm::kernels {

template <class T>
struct NormalizeRows {
  const T* x;  // [rows, cols], contiguous
  std::int64_t cols;
  bool center;
  double eps;
  T* xhat;
  T* mean;  // [rows]
  T* rstd;  // [rows]
  template <class AllSum>
  LIGM_HD void operator()(std::int64_t i, int lane, int lanes, const AllSum& all_sum) const {
    using Acc = ReduceAcc<T>;
    const T* r = x + i * cols;
    Acc m = 0;
    if (center) {
      for (std::int64_t c = lane; c < cols; c += lanes) m += Acc(r[c]);
      m = all_sum(m) / Acc(cols);
    }
    Acc v = 0;
    for (std::int64_t c = lane; c < cols; c += lanes) {
      const Acc d = Acc(r[c]) - m;
      v += d * d;
    }
    v = all_sum(v) / Acc(cols);
    const Acc rs = Acc(1) / std::sqrt(v + Acc(eps));
    if (lane == 0) {
      mean[i] = T(m);
      rstd[i] = T(rs);
    }
    for (std::int64_t c = lane; c < cols; c += lanes) xhat[i * cols + c] = T((Acc(r[c]) - m) * rs);
  }
};

template <class T>
struct NormalizeRowsBackward {
  const T* xhat;  // [rows, cols]
  const T* rstd;  // [rows]
  const T* g;     // [rows, cols]
  std::int64_t cols;
  bool center;
  T* dx;
  template <class AllSum>
  LIGM_HD void operator()(std::int64_t i, int lane, int lanes, const AllSum& all_sum) const {
    using Acc = ReduceAcc<T>;
    const T* xr = xhat + i * cols;
    const T* gr = g + i * cols;
    Acc sg = 0, sgx = 0;
    for (std::int64_t c = lane; c < cols; c += lanes) {
      sg += Acc(gr[c]);
      sgx += Acc(gr[c]) * Acc(xr[c]);
    }
    const Acc mg = center ? all_sum(sg) / Acc(cols) : Acc(0);
    const Acc mgx = all_sum(sgx) / Acc(cols);
    const Acc rs = Acc(rstd[i]);
    for (std::int64_t c = lane; c < cols; c += lanes)
      dx[i * cols + c] = T(rs * (Acc(gr[c]) - mg - Acc(xr[c]) * mgx));
  }
};

// The single-lane reduction (the CPU, and host emulation).
struct OneLane {
  template <class A>
  LIGM_HD A operator()(A v) const { return v; }
};

}  // namespace ligm::kernels
