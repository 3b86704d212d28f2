// atomic_add: an atomic += in a kernel, a plain += where the same code runs on the host (the
// host tests emulate a kernel by calling its thread body for every index, one at a time).
#pragma once
#include <cstdint>
#include <type_traits>

#include "ligm/backend/kernels/elementwise_math.hpp"  // LIGM_HD

namespace ligm::kernels {

template <class T>
LIGM_HD void atomic_add(T* p, T v) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, std::int64_t>) {
    // Two's complement: unsigned wrap-around addition is signed addition.
    atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  } else {
    atomicAdd(p, v);
  }
#else
  *p += v;
#endif
}

}  // namespace ligm::kernels
