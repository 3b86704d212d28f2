// Fused cross-entropy over rows of logits with class-index targets, forward and backward side
// by side. Per row i with target t, log-sum-exp l, class weights w (all 1 when absent) and
// label smoothing e over C classes:
//   loss[i] = (1 - e) w[t] (l - x[t]) + e/C sum_c w[c] (l - x[c])          (0 if t ignored)
//   dloss[i]/dx[c] = (1 - e) w[t] (p[c] - [c == t]) + e/C (W p[c] - w[c]),  p = softmax(x),
//                    W = sum_c w[c]
// The forward body handles one row (and saves l for the backward); the backward body one
// element. The CPU backend runs the same bodies in its loops.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "ligm/backend/kernels/elementwise_math.hpp"  // LIGM_HD

namespace ligm::kernels {

template <class T>
struct CrossEntropyForward {
  const T* logits;  // [rows, cols], contiguous
  std::int64_t cols;
  const std::int64_t* target;
  const T* weight;  // [cols] or nullptr
  std::int64_t ignore_index;
  T smoothing;
  T* loss;  // [rows]
  T* lse;   // [rows]
  LIGM_HD void operator()(std::int64_t i) const {
    const T* x = logits + i * cols;
    T mx = -std::numeric_limits<T>::infinity();
    for (std::int64_t c = 0; c < cols; ++c) mx = mx < x[c] ? x[c] : mx;
    if (mx == -std::numeric_limits<T>::infinity()) mx = 0;
    T s = 0;
    for (std::int64_t c = 0; c < cols; ++c) s += math::exp(x[c] - mx);
    const T l = mx + std::log(s);
    lse[i] = l;
    const std::int64_t t = target[i];
    if (t == ignore_index) {
      loss[i] = 0;
      return;
    }
    T out = (T(1) - smoothing) * (weight ? weight[t] : T(1)) * (l - x[t]);
    if (smoothing != T(0)) {
      T smooth = 0;
      for (std::int64_t c = 0; c < cols; ++c) smooth += (weight ? weight[c] : T(1)) * (l - x[c]);
      out += smoothing / T(cols) * smooth;
    }
    loss[i] = out;
  }
};

template <class T>
struct CrossEntropyBackward {
  const T* logits;
  const T* lse;
  std::int64_t cols;
  const std::int64_t* target;
  const T* weight;      // [cols] or nullptr
  const T* weight_sum;  // one element, W (only read with weights and smoothing)
  std::int64_t ignore_index;
  T smoothing;
  const T* g;  // [rows]: the incoming gradient of each row's loss
  T* grad;     // [rows, cols]
  LIGM_HD void operator()(std::int64_t e) const {
    const std::int64_t i = e / cols, c = e % cols, t = target[i];
    if (t == ignore_index) {
      grad[e] = 0;
      return;
    }
    const T p = math::exp(logits[e] - lse[i]);
    T d = (T(1) - smoothing) * (weight ? weight[t] : T(1)) * (c == t ? p - T(1) : p);
    if (smoothing != T(0)) {
      const T total = weight ? *weight_sum : T(cols);
      d += smoothing / T(cols) * (total * p - (weight ? weight[c] : T(1)));
    }
    grad[e] = g[i] * d;
  }
  // Row i at once: the CPU's loop (no division per element; the column loop vectorises).
  void row(std::int64_t i) const {
    T* out = grad + i * cols;
    const std::int64_t t = target[i];
    if (t == ignore_index) {
      for (std::int64_t c = 0; c < cols; ++c) out[c] = T(0);
      return;
    }
    const T* x = logits + i * cols;
    const T l = lse[i], gi = g[i];
    const T a = gi * (T(1) - smoothing) * (weight ? weight[t] : T(1));  // times (p - [c == t])
    const T s = gi * smoothing / T(cols);                               // times (total p - w_c)
    const T total = weight ? *weight_sum : T(cols);
    if (smoothing == T(0)) {
      for (std::int64_t c = 0; c < cols; ++c) out[c] = a * math::exp(x[c] - l);
    } else if (!weight) {
      for (std::int64_t c = 0; c < cols; ++c) {
        const T p = math::exp(x[c] - l);
        out[c] = a * p + s * (total * p - T(1));
      }
    } else {
      for (std::int64_t c = 0; c < cols; ++c) {
        const T p = math::exp(x[c] - l);
        out[c] = a * p + s * (total * p - weight[c]);
      }
    }
    out[t] -= a;
  }
};

}  // namespace ligm::kernels
