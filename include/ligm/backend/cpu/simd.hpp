// Portable vectors for the CPU's hand-vectorised loops (the Winograd transforms, the row
// normalisations): GCC/Clang vector extensions as wide as the machine's registers, unaligned
// loads and stores, and a loop that runs whole vectors and then narrower ones down to scalars.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

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
// Unaligned loads and stores through a vector type aligned as its elements: one vmovups each
// (a memcpy of a whole vector went through the stack in two halves when the compiler prefers
// narrower vectors for copies, and the second half's load stalled on store forwarding). V's
// lanes are T: GCC lets a vector access alias its element type (checked with GCC 12: a vector
// store and a later scalar load of the same float stay ordered) and nothing else; Clang's
// type-based alias analysis lets a vector access alias anything. Not __may_alias__: a store
// that may alias anything made the compiler reload every pointer and stride it had in memory
// after each store (the Winograd transforms' a^2 stores per vector: a load and an imul each).
template <class V, class T>
inline V load(const T* p) {
  if constexpr (std::is_same_v<V, T>) {
    return *p;
  } else {
    static_assert(std::is_same_v<std::remove_cv_t<std::remove_reference_t<decltype(V{}[0])>>, T>);
    typedef V Unaligned __attribute__((aligned(alignof(T))));
    return *reinterpret_cast<const Unaligned*>(p);
  }
}
template <class V, class T>
inline void store(T* p, const V& v) {
  if constexpr (std::is_same_v<V, T>) {
    *p = v;
  } else {
    static_assert(std::is_same_v<std::remove_cv_t<std::remove_reference_t<decltype(V{}[0])>>, T>);
    typedef V Unaligned __attribute__((aligned(alignof(T))));
    *reinterpret_cast<Unaligned*>(p) = v;
  }
}
template <class V, class T>
inline void add_to(T* p, const V& v) {
  store(p, load<V>(p) + v);
}
// A ReLU's mask as bits: positive_bits(v) has bit l set where lane l of v is > 0 (not for
// NaN), keep_bits(v, bits) keeps lane l where bit l is set and zeroes the others. Scalars are
// one lane. AVX-512 compares into and selects by a mask register, AVX and SSE take the sign
// mask of a compare; elsewhere a loop over the lanes.
template <class V>
inline unsigned positive_bits(const V& v) {
  if constexpr (std::is_arithmetic_v<V>) {
    return v > V(0) ? 1u : 0u;
  } else {
    using E = std::remove_cv_t<std::remove_reference_t<decltype(v[0])>>;
    constexpr int lanes = static_cast<int>(sizeof(V) / sizeof(E));
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64 && std::is_same_v<E, float>)
      return _mm512_cmp_ps_mask(__m512(v), _mm512_setzero_ps(), _CMP_GT_OQ);
    if constexpr (sizeof(V) == 64 && std::is_same_v<E, double>)
      return _mm512_cmp_pd_mask(__m512d(v), _mm512_setzero_pd(), _CMP_GT_OQ);
#endif
#if defined(__AVX__)
    if constexpr (sizeof(V) == 32 && std::is_same_v<E, float>)
      return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(__m256(v), _mm256_setzero_ps(), _CMP_GT_OQ)));
    if constexpr (sizeof(V) == 32 && std::is_same_v<E, double>)
      return static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(__m256d(v), _mm256_setzero_pd(), _CMP_GT_OQ)));
#endif
#if defined(__SSE2__)
    if constexpr (sizeof(V) == 16 && std::is_same_v<E, float>)
      return static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(__m128(v), _mm_setzero_ps())));
    if constexpr (sizeof(V) == 16 && std::is_same_v<E, double>)
      return static_cast<unsigned>(_mm_movemask_pd(_mm_cmpgt_pd(__m128d(v), _mm_setzero_pd())));
#endif
    unsigned bits = 0;
    for (int l = 0; l < lanes; ++l) bits |= (v[l] > E(0) ? 1u : 0u) << l;
    return bits;
  }
}
template <class V>
inline V keep_bits(const V& v, unsigned bits) {
  if constexpr (std::is_arithmetic_v<V>) {
    return bits & 1u ? v : V(0);
  } else {
    using E = std::remove_cv_t<std::remove_reference_t<decltype(v[0])>>;
    constexpr int lanes = static_cast<int>(sizeof(V) / sizeof(E));
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64 && std::is_same_v<E, float>)
      return V(_mm512_maskz_mov_ps(static_cast<__mmask16>(bits), __m512(v)));
    if constexpr (sizeof(V) == 64 && std::is_same_v<E, double>)
      return V(_mm512_maskz_mov_pd(static_cast<__mmask8>(bits), __m512d(v)));
#endif
    // Lane l's bit, tested in integer lanes as wide as E: a compare and a select.
    using I = std::conditional_t<sizeof(E) == 4, std::int32_t, std::int64_t>;
    typedef I IV __attribute__((vector_size(sizeof(V))));
    IV lane_bit{};
    for (int l = 0; l < lanes; ++l) lane_bit[l] = I(1) << l;
    const IV on = ((IV{} + I(bits)) & lane_bit) != IV{};
    return on ? v : V{};
  }
}

// The sum of a vector's lanes: its two halves added, down to 16 bytes, then lane by lane, so
// log2(lanes) roundings deep instead of lanes - 1 (and a few instructions, not a chain of
// lanes dependent additions).
template <class T, int Bytes = kVectorBytes>
inline T reduce_add(const typename Simd<T, Bytes>::type& v) {
  if constexpr (Bytes > 16) {
    using H = typename Simd<T, Bytes / 2>::type;
    const T* p = reinterpret_cast<const T*>(&v);
    return reduce_add<T, Bytes / 2>(H(load<H>(p) + load<H>(p + Simd<T, Bytes / 2>::lanes)));
  } else {
    T s = v[0];
    for (int l = 1; l < Simd<T, Bytes>::lanes; ++l) s += v[l];
    return s;
  }
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

// Interleaving m = 2 or 4 rows: deinterleave<m>(in, n, out) writes out[p][k] = in[k * m + p]
// for k < n, interleave<m>(in, n, out) the inverse, out[k * m + p] = in[p][k]. Both run on the
// widest vectors that fit n at least once (log2 m rounds of even/odd shuffles of vector pairs),
// the rest as one more block that overlaps the last (its values written twice, the same), so
// they read and write exactly n * m values; below the narrowest vector, scalars.
namespace simd_detail {
template <class V>
inline constexpr int lanes_of = static_cast<int>(sizeof(V) / sizeof(std::declval<V>()[0]));
template <int Odd, class V, std::size_t... I>
inline V strided(const V& a, const V& b, std::index_sequence<I...>) {  // (a : b)[2 i + Odd]
  return __builtin_shufflevector(a, b, (2 * I + Odd)...);
}
template <int High, class V, std::size_t... I>
inline V zipped(const V& a, const V& b, std::index_sequence<I...>) {  // a0 b0 a1 b1 ... of one half
  constexpr std::size_t n = lanes_of<V>, h = High * n / 2;
  return __builtin_shufflevector(a, b, (I % 2 ? n + h + I / 2 : h + I / 2)...);
}
template <int Odd, class V>
inline V every_second(const V& a, const V& b) {
  return strided<Odd>(a, b, std::make_index_sequence<lanes_of<V>>{});
}
template <int High, class V>
inline V zip(const V& a, const V& b) {
  return zipped<High>(a, b, std::make_index_sequence<lanes_of<V>>{});
}
template <int m, class V>
inline void deinterleave_vectors(const V* v, V* p) {
  static_assert(m == 2 || m == 4);
  if constexpr (m == 2) {
    p[0] = every_second<0>(v[0], v[1]), p[1] = every_second<1>(v[0], v[1]);
  } else {
    const V e0 = every_second<0>(v[0], v[1]), o0 = every_second<1>(v[0], v[1]);
    const V e1 = every_second<0>(v[2], v[3]), o1 = every_second<1>(v[2], v[3]);
    p[0] = every_second<0>(e0, e1), p[2] = every_second<1>(e0, e1);
    p[1] = every_second<0>(o0, o1), p[3] = every_second<1>(o0, o1);
  }
}
template <int m, class V>
inline void interleave_vectors(const V* p, V* v) {
  static_assert(m == 2 || m == 4);
  if constexpr (m == 2) {
    v[0] = zip<0>(p[0], p[1]), v[1] = zip<1>(p[0], p[1]);
  } else {
    const V e0 = zip<0>(p[0], p[2]), e1 = zip<1>(p[0], p[2]);
    const V o0 = zip<0>(p[1], p[3]), o1 = zip<1>(p[1], p[3]);
    v[0] = zip<0>(e0, o0), v[1] = zip<1>(e0, o0), v[2] = zip<0>(e1, o1), v[3] = zip<1>(e1, o1);
  }
}
}  // namespace simd_detail

// block(V{}, k) on the widest vectors of Bytes or fewer whose lanes fit n at least once, for
// k = 0, lanes, ... and then once at n - lanes (overlapping the last block) when lanes does
// not divide n; below the narrowest vector, block(T{}, k) for every k.
template <class T, int Bytes = kVectorBytes, class F>
inline void overlapping_blocks(std::int64_t n, const F& block) {
  if constexpr (Bytes >= 16 && Bytes / static_cast<int>(sizeof(T)) >= 2) {
    constexpr int lanes = Simd<T, Bytes>::lanes;
    if (n < lanes) return overlapping_blocks<T, Bytes / 2>(n, block);
    std::int64_t k = 0;
    for (; k + lanes <= n; k += lanes) block(typename Simd<T, Bytes>::type{}, k);
    if (k < n) block(typename Simd<T, Bytes>::type{}, n - lanes);
  } else {
    for (std::int64_t k = 0; k < n; ++k) block(T{}, k);
  }
}

// out[k] = in[2 k] for k < n: pairs of vectors reduced to their even lanes while the pair lies
// within in[0, 2 n - 1) (it never reads past the last value it takes), on vectors of half the
// width, a quarter, ... down to 16 bytes for what is left, then scalars (the strided
// convolutions' gather of one column phase: a 14-wide row takes one 8-lane and one 4-lane step).
template <class T, int Bytes = kVectorBytes>
inline void every_second(const T* in, std::int64_t n, T* out, std::int64_t k = 0) {
  if constexpr (Bytes >= 16 && Bytes / static_cast<int>(sizeof(T)) >= 2) {
    using V = typename Simd<T, Bytes>::type;
    constexpr int lanes = Simd<T, Bytes>::lanes;
    for (; k + lanes < n; k += lanes)
      store(out + k, simd_detail::every_second<0>(load<V>(in + 2 * k), load<V>(in + 2 * k + lanes)));
    every_second<T, Bytes / 2>(in, n, out, k);
  } else {
    for (; k < n; ++k) out[k] = in[2 * k];
  }
}

template <int m, class T>
inline void deinterleave(const T* in, std::int64_t n, T* const* out) {
  overlapping_blocks<T>(n, [&](auto zero, std::int64_t k) {
    using V = decltype(zero);
    if constexpr (std::is_same_v<V, T>) {
      for (int i = 0; i < m; ++i) out[i][k] = in[k * m + i];
    } else {
      constexpr int lanes = simd_detail::lanes_of<V>;
      V v[m], p[m];
      for (int i = 0; i < m; ++i) v[i] = load<V>(in + k * m + i * lanes);
      simd_detail::deinterleave_vectors<m>(v, p);
      for (int i = 0; i < m; ++i) store(out[i] + k, p[i]);
    }
  });
}
template <int m, class T>
inline void interleave(const T* const* in, std::int64_t n, T* out) {
  overlapping_blocks<T>(n, [&](auto zero, std::int64_t k) {
    using V = decltype(zero);
    if constexpr (std::is_same_v<V, T>) {
      for (int i = 0; i < m; ++i) out[k * m + i] = in[i][k];
    } else {
      constexpr int lanes = simd_detail::lanes_of<V>;
      V p[m], v[m];
      for (int i = 0; i < m; ++i) p[i] = load<V>(in[i] + k);
      simd_detail::interleave_vectors<m>(p, v);
      for (int i = 0; i < m; ++i) store(out + k * m + i * lanes, v[i]);
    }
  });
}

}  // namespace ligm::cpu
