// Portable vectors for the CPU's hand-vectorised loops (the Winograd transforms, the row
// normalisations): GCC/Clang vector extensions as wide as the machine's registers, unaligned
// loads and stores, and a loop that runs whole vectors and then narrower ones down to scalars.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace ligm::cpu {

// The machine's vector width (GCC/Clang vector extensions); tails run the same code on scalars.
#if defined(__AVX512F__)
inline constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
inline constexpr int kVectorBytes = 32;
#else
inline constexpr int kVectorBytes = 16;
#endif
template <class T, int Bytes = kVectorBytes>
struct Simd {
  typedef T type __attribute__((vector_size(Bytes)));
  static constexpr int lanes = Bytes / sizeof(T);
};
template <class V, class T>
inline V load(const T* p) {
  if constexpr (std::is_same_v<V, T>) {
    return *p;
  } else {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
}
template <class V, class T>
inline void store(T* p, const V& v) {
  if constexpr (std::is_same_v<V, T>) *p = v;
  else std::memcpy(p, &v, sizeof v);
}
template <class V, class T>
inline void add_to(T* p, const V& v) {
  store(p, load<V>(p) + v);
}
// f(V{}, k) for k = 0, lanes, 2 lanes, ... while a whole vector fits, then the rest on vectors
// of half, a quarter, ... the width (down to 16 bytes), then f(T{}, k) on scalars: the slots of
// an image are few with F4 (6 on a 7x7 plane) and a 7x7 channel plane is 49 values, so the tail
// must not fall to scalars at once.
template <class T, int Bytes = kVectorBytes, class F>
inline void simd_for(std::int64_t n, const F& f, std::int64_t k = 0) {
  if constexpr (Bytes >= 16 && Bytes / static_cast<int>(sizeof(T)) >= 2) {
    constexpr int lanes = Simd<T, Bytes>::lanes;
    for (; k + lanes <= n; k += lanes) f(typename Simd<T, Bytes>::type{}, k);
    simd_for<T, Bytes / 2>(n, f, k);
  } else {
    for (; k < n; ++k) f(T{}, k);
  }
}

}  // namespace ligm::cpu
