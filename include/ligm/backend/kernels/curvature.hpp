// The Curvature Tuning unit (Hu, Gamba & Balestriero, arXiv 2502.07783), forward and backward
// side by side, in the numerically stable form (shared/specs/curvature_tuning.md sections 2-3):
//
//   s = 1 - beta + eps (eps = 1e-6),  u = x / s,  z = beta * u
//   CTU(x) = c x sigmoid(z) + (1 - c) (max(x, 0) + s log1p(exp(-|x| / s)))
//
// a beta-SiLU mixed with a temperature softplus; beta >= 1 is ReLU, exactly (the fast path).
// Derivatives, with sz = sigmoid(z):
//   dCTU/dx    = c (sz + z sz (1 - sz)) + (1 - c) sigmoid(u)
//   dCTU/dbeta = c u^2 sz (1 - sz) (1 + eps) - (1 - c) (|u| sigmoid(-|u|) + log1p(exp(-|u|)))
//   dCTU/dc    = x sz - (max(x, 0) + s log1p(exp(-|x| / s)))
// On the fast path the derivatives are ReLU's (dx = [x > 0]) and zero for beta and c.
//
// beta and c are per channel: element i uses entry (i / inner) % channels (channels = 1: one
// shared value). The backward writes the beta and c derivatives per element (or skips them when
// null); the op sums them over the other dims.
#pragma once
#include <cmath>
#include <cstdint>

#include "ligm/backend/kernels/elementwise_math.hpp"  // LIGM_HD

namespace ligm::kernels {

template <class T>
struct Ctu {
  static constexpr T kEps = T(1e-6);
  LIGM_HD static T sigmoid(T t) {
    const T e = std::exp(-std::fabs(t));  // in (0, 1]: never overflows
    return t >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
  }
  // s * softplus(x / s) without overflow.
  LIGM_HD static T scaled_softplus(T x, T s) {
    return (x > T(0) ? x : T(0)) + s * std::log1p(std::exp(-std::fabs(x) / s));
  }
  LIGM_HD static T value(T x, T beta, T c) {
    if (beta >= T(1)) return x > T(0) ? x : T(0);
    const T s = T(1) - beta + kEps, z = beta * (x / s);
    return c * x * sigmoid(z) + (T(1) - c) * scaled_softplus(x, s);
  }
};

template <class T>
struct CtuForward {
  const T* x;
  const T* beta;  // [channels]
  const T* c;     // [channels]
  std::int64_t inner, channels;
  T* y;
  LIGM_HD void operator()(std::int64_t i) const {
    const std::int64_t k = (i / inner) % channels;
    y[i] = Ctu<T>::value(x[i], beta[k], c[k]);
  }
};

template <class T>
struct CtuBackward {
  const T* x;
  const T* beta;
  const T* c;
  std::int64_t inner, channels;
  const T* g;  // the incoming gradient
  T* dx;
  T* dbeta;  // per element, or null
  T* dc;     // per element, or null
  LIGM_HD void operator()(std::int64_t i) const {
    const std::int64_t k = (i / inner) % channels;
    const T xi = x[i], b = beta[k], ci = c[k], gi = g[i];
    if (b >= T(1)) {
      dx[i] = xi > T(0) ? gi : T(0);
      if (dbeta) dbeta[i] = T(0);
      if (dc) dc[i] = T(0);
      return;
    }
    const T eps = Ctu<T>::kEps, s = T(1) - b + eps, u = xi / s, z = b * u;
    const T sz = Ctu<T>::sigmoid(z);
    const T ez = std::exp(-std::fabs(z));
    const T sz_szbar = ez / ((T(1) + ez) * (T(1) + ez));  // sz (1 - sz), no cancellation
    dx[i] = gi * (ci * (sz + z * sz_szbar) + (T(1) - ci) * Ctu<T>::sigmoid(u));
    if (dbeta) {
      const T au = std::fabs(u);
      const T even = -(au * Ctu<T>::sigmoid(-au) + std::log1p(std::exp(-au)));  // u sigmoid(u) - softplus(u)
      dbeta[i] = gi * (ci * u * u * sz_szbar * (T(1) + eps) + (T(1) - ci) * even);
    }
    if (dc) dc[i] = gi * (xi * sz - Ctu<T>::scaled_softplus(xi, s));
  }
};

}  // namespace ligm::kernels
