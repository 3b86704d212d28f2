// Fused optimizer steps: one pass over a parameter updates it and its state, instead of a
// dozen elementwise ops with temporaries. Thread bodies shared by the CPU backend and the
// CUDA kernels (one element per call).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ligm/backend/backend.hpp"  // AdamHyper
#include "ligm/backend/kernels/elementwise_math.hpp"

namespace ligm::kernels {

// Adam (decoupled = false: L2 weight decay added to the gradient) and AdamW (decoupled:
// the parameter shrinks by lr * weight_decay first), torch.optim's formulas in their order:
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
template <class T>
struct AdamStep {
  T* p;
  const T* g;
  T* m;
  T* v;
  T beta1, beta2, eps, weight_decay;
  T shrink, step_size, sqrt_bc2;  // 1 - lr * weight_decay, -lr / bc1, sqrt(bc2)
  bool decoupled;
  // One element: a GPU thread's share.
  LIGM_HD void operator()(std::int64_t i) const { run(i, i + 1); }
  // Elements [lo, hi), the branches hoisted out of the loop and the pointers unaliased, so
  // that the host compiler vectorises the CPU's ranges.
  LIGM_HD void run(std::int64_t lo, std::int64_t hi) const {
    T* __restrict pp = p;
    const T* __restrict gg = g;
    T* __restrict mm = m;
    T* __restrict vv = v;
    const T b1 = beta1, b2 = beta2, c1 = T(1) - beta1, c2 = T(1) - beta2, e = eps, wd = weight_decay,
            s = shrink, step = step_size, bc = sqrt_bc2;
    auto loop = [&](auto mode) {  // 0: no weight decay, 1: decoupled, 2: L2 in the gradient
      for (std::int64_t i = lo; i < hi; ++i) {
        T grad = gg[i], param = pp[i];
        if constexpr (decltype(mode)::value == 1) param *= s;
        if constexpr (decltype(mode)::value == 2) grad += param * wd;
        const T mi = mm[i] * b1 + grad * c1;
        const T vi = vv[i] * b2 + grad * grad * c2;
        mm[i] = mi;
        vv[i] = vi;
        pp[i] = param + step * (mi / (std::sqrt(vi) / bc + e));
      }
    };
    if (wd == T(0)) loop(std::integral_constant<int, 0>{});
    else if (decoupled) loop(std::integral_constant<int, 1>{});
    else loop(std::integral_constant<int, 2>{});
  }
  static AdamStep make(T* p, const T* g, T* m, T* v, const AdamHyper& h) {
    return {p,
            g,
            m,
            v,
            T(h.beta1),
            T(h.beta2),
            T(h.eps),
            T(h.weight_decay),
            T(1 - h.lr * h.weight_decay),
            T(-h.lr / h.bias_correction1),
            T(std::sqrt(h.bias_correction2)),
            h.decoupled};
  }
};

}  // namespace ligm::kernels
