// Thread bodies of the random fills: element i of the Philox stream (core/philox.hpp), the
// same numbers the CPU backend draws for the same seed and offset.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ligm/core/philox.hpp"

namespace ligm::kernels {

// The largest value below hi (toward lo): keeps uniform samples in [lo, hi) after rounding.
template <class T>
LIGM_HD T next_below(T hi, T lo) {
  if constexpr (std::is_same_v<T, float>) return ::nextafterf(hi, lo);
  else return ::nextafter(hi, lo);
}

template <class T>
struct RandomUniform {
  T* dst;
  std::uint64_t seed, offset;
  double lo, hi;
  LIGM_HD void operator()(std::int64_t i) const {
    const T v = T(lo + (hi - lo) * philox::uniform(seed, offset, std::uint64_t(i)));
    dst[i] = v < T(hi) ? v : next_below(T(hi), T(lo));
  }
};

template <class T>
struct RandomNormal {
  T* dst;
  std::uint64_t seed, offset;
  double mean, std;
  LIGM_HD void operator()(std::int64_t i) const {
    dst[i] = T(mean + std * philox::normal(seed, offset, std::uint64_t(i)));
  }
};

}  // namespace ligm::kernels
