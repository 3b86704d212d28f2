// ligm's own float32 GEMM for x86 with AVX-512 or AVX2+FMA: C = alpha * op(A) op(B) + beta * C,
// row-major, single-threaded (gemm.hpp splits the work across threads).
//
// The structure is the classic one of GotoBLAS/BLIS, sized for the shapes of our workloads
// (K of 32-768, M in the thousands, N in the hundreds):
//
//   for each block of NC columns of C
//     for each block of KC of the inner dimension:   pack op(B) into panels of NR columns
//       for each block of MC rows of C:               pack op(A) into panels of MR rows
//         for each NR-column panel, each MR-row panel: the micro-kernel
//
// The micro-kernel keeps an MR x NR tile of C in registers (14 x 32 floats = 28 zmm with
// AVX-512, 6 x 16 = 12 ymm with AVX2), and per step of the inner dimension loads one row of
// the B panel (two vectors) and broadcasts MR values of A into 2*MR fused multiply-adds.
// Edges need no scratch tile: a kernel is instantiated for every row count 1..MR, and the
// last column panel is loaded and stored under a mask.
//
// Packing costs O(mk + kn) and pays off only when a panel is reused; small products (the
// attention products of a head, a few dozen rows and columns) read op(A) in place (the kernel
// takes A's row and column strides), and read B in place when op(B) is not transposed.
// Measured one thread on the AMD EPYC VM (Zen 4) against Eigen's kernel and OpenBLAS 0.3.21:
// bench/NOTES.md, entry 16.
#pragma once
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define LIGM_HAVE_SGEMM 1
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace ligm::cpu::sgemm {

#if defined(__AVX512F__)
struct Vec {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16, MR = 14;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static Mask mask(int n) { return static_cast<Mask>((1u << n) - 1u); }  // n in [0, 16]
  static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
};
#else
struct Vec {
  using V = __m256;
  using Mask = __m256i;
  static constexpr int W = 8, MR = 6;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static Mask mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, Mask m, V v) { _mm256_maskstore_ps(p, m, v); }
};
#endif

using V = Vec::V;
inline constexpr int W = Vec::W;
inline constexpr int MR = Vec::MR;
inline constexpr int NR = 2 * W;
inline constexpr std::int64_t KC = 256;  // a B panel (KC x NR) and an A panel stay in L1/L2
inline constexpr std::int64_t MC = 14 * MR;
inline constexpr std::int64_t NC = 768;

// Where the operands of the micro-kernel live (passed by reference: by value, the caller's
// field-by-field stores and the copy onto the stack for the call stalled store forwarding, and
// the GEMMs ran 5-15% slower): element (i, p) of the A panel at
// a[i * a_rs + p * a_cs] (packed: a_rs = 1, a_cs = MR), row p of the B panel at b + p * b_rs.
struct Operands {
  const float* a;
  std::int64_t a_rs, a_cs;
  const float* b;
  std::int64_t b_rs;
  const float* bias = nullptr;  // this panel's columns of a row added to every row (beta 0), or null
};

// C[0:R, 0:cols] = alpha * A_panel B_panel + beta * C (beta 0: C is not read; with op.bias,
// + bias[0:cols] in place of beta * C), with NV vectors
// per row of the tile (2: NR columns; 1: the last panel when it is at most W wide). The B panel
// is NR wide and zero-padded (or fully readable) past `cols` up to NV * W.
template <int R, int NV, bool PackedA>
void micro_kernel(std::int64_t kc, const Operands& op, float* c, std::int64_t ldc, float alpha, float beta,
                  int cols) {
  // Two named arrays and named B vectors, not acc[R][NV]: GCC 12 keeps these in registers but
  // spills a two-dimensional array (measured: 20% slower).
  V acc0[R], acc1[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = Vec::zero();
  const float* a = op.a;
  const float* b = op.b;
  const std::int64_t a_step = PackedA ? MR : op.a_cs;
  for (std::int64_t p = 0; p < kc; ++p) {
    const V b0 = Vec::load(b);
    const V b1 = NV == 2 ? Vec::load(b + W) : b0;
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const V ai = Vec::set1(PackedA ? a[i] : a[i * op.a_rs]);
      acc0[i] = Vec::fma(ai, b0, acc0[i]);
      if constexpr (NV == 2) acc1[i] = Vec::fma(ai, b1, acc1[i]);
    }
    a += a_step;
    b += op.b_rs;
  }
  const V va = Vec::set1(alpha), vb = Vec::set1(beta);
  if (cols == NV * W) {
    const V bias0 = op.bias ? Vec::load(op.bias) : Vec::zero();
    const V bias1 = op.bias && NV == 2 ? Vec::load(op.bias + W) : Vec::zero();
    auto result = [&](V acc, const float* ci, V bias) {  // beta 0 never reads C (it may hold NaN)
      return beta == 0.0f ? Vec::fma(va, acc, bias) : Vec::fma(va, acc, Vec::mul(vb, Vec::load(ci)));
    };
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      float* ci = c + i * ldc;
      Vec::store(ci, result(acc0[i], ci, bias0));
      if constexpr (NV == 2) Vec::store(ci + W, result(acc1[i], ci + W, bias1));
    }
    return;
  }
  const auto m0 = Vec::mask(std::min(cols, W)), m1 = Vec::mask(std::clamp(cols - W, 0, W));
  const V bias0 = op.bias ? Vec::load(op.bias, m0) : Vec::zero();
  const V bias1 = op.bias && NV == 2 ? Vec::load(op.bias + W, m1) : Vec::zero();
  auto masked = [&](V acc, const float* ci, typename Vec::Mask m, V bias) {
    return beta == 0.0f ? Vec::fma(va, acc, bias) : Vec::fma(va, acc, Vec::mul(vb, Vec::load(ci, m)));
  };
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
    Vec::store(ci, m0, masked(acc0[i], ci, m0, bias0));
    if constexpr (NV == 2) Vec::store(ci + W, m1, masked(acc1[i], ci + W, m1, bias1));
  }
}

using KernelFn = void (*)(std::int64_t, const Operands&, float*, std::int64_t, float, float, int);

template <int NV, bool PackedA, std::size_t... R>
constexpr std::array<KernelFn, MR + 1> kernel_table(std::index_sequence<R...>) {
  return {nullptr, &micro_kernel<static_cast<int>(R) + 1, NV, PackedA>...};
}

// The kernel for `rows` (1..MR) rows and `cols` (1..NR) columns of C.
inline KernelFn kernel_for(int rows, int cols, bool packed_a) {
  using Rows = std::make_index_sequence<MR>;
  static constexpr std::array<KernelFn, MR + 1> table[2][2] = {
      {kernel_table<1, false>(Rows{}), kernel_table<1, true>(Rows{})},
      {kernel_table<2, false>(Rows{}), kernel_table<2, true>(Rows{})}};
  return table[cols > W][packed_a][rows];
}

// The row panels of a block of mc rows: full panels of MR rows, and a short remainder (under
// MR / 2) shared with the last full panel (32 rows are 14 + 9 + 9, not 14 + 14 + 4: a short
// tile wastes the kernel's loads and stores).
struct RowSplit {
  std::int64_t full, panels;
  int tail[2] = {0, 0};
  explicit RowSplit(std::int64_t mc) : full(mc / MR), panels(full) {
    const int rem = static_cast<int>(mc % MR);
    if (rem == 0) return;
    if (2 * rem >= MR || full == 0) {
      tail[0] = rem, panels = full + 1;
    } else {
      --full, panels = full + 2;
      tail[0] = (MR + rem + 1) / 2, tail[1] = (MR + rem) / 2;
    }
  }
  std::int64_t start(std::int64_t t) const { return t <= full ? t * MR : full * MR + tail[0]; }
  int rows(std::int64_t t) const { return t < full ? MR : tail[t - full]; }
};

// The transposing copies of the packing: an 8 x 8 block whose rows are `rows` (<= 8) rows of
// src (row stride ld; rows past `rows` read as zero) becomes 8 rows at dst (row stride ld_dst),
// of which the first `width` (<= 8) values are written. Three rounds of shuffles, as in every
// AVX transpose: interleave pairs of rows, then pairs of pairs, then swap 128-bit halves.
inline void transpose_8x8(const float* src, std::int64_t ld, int rows, float* dst,
                          std::int64_t ld_dst, int width) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = i < rows ? _mm256_loadu_ps(src + i * ld) : _mm256_setzero_ps();
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // The part-filled stores (the last 6 columns of a 14-wide A panel) under an AVX-512 mask
  // register where there is one: AVX's vmaskmovps store is microcoded on AMD's cores (on Zen 4 it
  // was 40% of the packing's time).
#if defined(__AVX512VL__)
  const __mmask8 mask = static_cast<__mmask8>((1u << width) - 1u);
  auto store = [&](float* p, __m256 v) { _mm256_mask_storeu_ps(p, mask, v); };
#else
  const __m256i mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(width), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  auto store = [&](float* p, __m256 v) { _mm256_maskstore_ps(p, mask, v); };
#endif
  for (int i = 0; i < 4; ++i) {
    const __m256 lo = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    const __m256 hi = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    if (width == 8) {
      _mm256_storeu_ps(dst + i * ld_dst, lo);
      _mm256_storeu_ps(dst + (i + 4) * ld_dst, hi);
    } else {
      store(dst + i * ld_dst, lo);
      store(dst + (i + 4) * ld_dst, hi);
    }
  }
}

// The rows [0, rows) of a matrix (row stride ld, kc columns) as the columns of a kc x `width`
// panel (width >= rows; columns past `rows` are zero): the transposing half of both packings.
inline void pack_transposed(const float* src, std::int64_t ld, std::int64_t rows, std::int64_t kc,
                            float* out, std::int64_t width) {
  std::int64_t p = 0;
  for (; p + 8 <= kc; p += 8)
    for (std::int64_t i = 0; i < width; i += 8)
      transpose_8x8(src + i * ld + p, ld, static_cast<int>(std::clamp<std::int64_t>(rows - i, 0, 8)),
                    out + p * width + i, width, static_cast<int>(std::min<std::int64_t>(width - i, 8)));
  for (; p < kc; ++p)
    for (std::int64_t i = 0; i < width; ++i) out[p * width + i] = i < rows ? src[i * ld + p] : 0.0f;
}

// op(A)[0:mc, 0:kc] (a points at its first element) into the panels of RowSplit(mc), each
// kc x MR, zero-padded to MR rows.
inline void pack_a(bool ta, const float* a, std::int64_t lda, std::int64_t mc, std::int64_t kc,
                   float* out) {
  const RowSplit split(mc);
  if (ta) {  // op(A)[i][p] = a[p * lda + i]: row p of a holds column p of every panel, read once
    const auto whole = Vec::mask(MR);
    for (std::int64_t p = 0; p < kc; ++p)
      for (std::int64_t t = 0; t < split.panels; ++t) {
        const auto in = Vec::mask(split.rows(t));  // <= MR <= W values
        Vec::store(out + t * kc * MR + p * MR, whole, Vec::load(a + p * lda + split.start(t), in));
      }
    return;
  }
  for (std::int64_t t = 0; t < split.panels; ++t)  // each row of A becomes a column of a panel
    pack_transposed(a + split.start(t) * lda, lda, split.rows(t), kc, out + t * kc * MR, MR);
}

// op(B)[0:kc, 0:nc] into ceil(nc/NR) panels of kc x NR, zero-padded to NR columns.
inline void pack_b(bool tb, const float* b, std::int64_t ldb, std::int64_t kc, std::int64_t nc,
                   float* out) {
  if (tb) {  // op(B)[p][j] = b[j * ldb + p]: each row of B becomes a column of a panel
    for (std::int64_t j = 0; j < nc; j += NR, out += kc * NR)
      pack_transposed(b + j * ldb, ldb, std::min<std::int64_t>(NR, nc - j), kc, out, NR);
    return;
  }
  // Rows of B are rows of the panels: each row is read left to right into a group of up to 8
  // panels at a time. Panels lie kc * NR floats (32 KiB) apart, so storing one row into all of
  // them at once (24 at n = 768) sent every store to one L1 set: packing 256 x 768 took 40 us
  // from L2, in groups of 8 25 us (from L3 the same either way).
  const std::int64_t full = nc / NR, rest = nc - full * NR;
  const auto m0 = Vec::mask(static_cast<int>(std::min<std::int64_t>(rest, W)));
  const auto m1 = Vec::mask(static_cast<int>(std::max<std::int64_t>(rest - W, 0)));
  constexpr std::int64_t kGroup = 8;
  for (std::int64_t j0 = 0; j0 < full; j0 += kGroup) {
    const std::int64_t j1 = std::min(full, j0 + kGroup);
    for (std::int64_t p = 0; p < kc; ++p) {
      const float* row = b + p * ldb;
      for (std::int64_t jp = j0; jp < j1; ++jp) {
        float* o = out + jp * kc * NR + p * NR;
        Vec::store(o, Vec::load(row + jp * NR));
        Vec::store(o + W, Vec::load(row + jp * NR + W));
      }
    }
  }
  if (rest > 0)  // the last, part-filled panel
    for (std::int64_t p = 0; p < kc; ++p) {
      float* o = out + full * kc * NR + p * NR;
      Vec::store(o, Vec::load(b + p * ldb + full * NR, m0));
      Vec::store(o + W, Vec::load(b + p * ldb + full * NR + W, m1));
    }
}

// A per-thread, 64-byte aligned buffer of at least n floats, one per use (Slot), apart from
// cpu::scratch (which the convolutions hold while they call the GEMM).
template <int Slot>
float* buffer(std::size_t n) {
  thread_local std::vector<float> storage;
  if (storage.size() < n + 16) storage.resize(n + 16);
  const auto p = reinterpret_cast<std::uintptr_t>(storage.data());
  return reinterpret_cast<float*>((p + 63) & ~std::uintptr_t(63));
}

// C = alpha * op(A) op(B) + beta * C for m, n, k > 0 (gemm_one handles the empty cases); with
// `bias` (n values, beta 0), C = alpha * op(A) op(B) + bias in every row, added as C is stored.
inline void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                 const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
                 float* c, std::int64_t ldc, const float* bias = nullptr) {
  // Pack A when each of its panels meets more than four column panels of B; pack B when it is
  // transposed (its panel rows must be contiguous) or each panel meets more than four row panels.
  const bool pack_all_a = n > 4 * NR;
  const bool pack_all_b = tb || m > 4 * MR;
  float* bp = buffer<0>(static_cast<std::size_t>(KC * ((std::min(NC, n) + NR - 1) / NR * NR)));
  float* ap = pack_all_a ? buffer<1>(static_cast<std::size_t>(KC * ((std::min(MC, m) + MR - 1) / MR * MR)))
                         : nullptr;
  for (std::int64_t jc = 0; jc < n; jc += NC) {
    const std::int64_t nc = std::min(NC, n - jc);
    for (std::int64_t pc = 0; pc < k; pc += KC) {
      const std::int64_t kc = std::min(KC, k - pc);
      const float beta_p = pc == 0 ? beta : 1.0f;
      const float* b0 = tb ? b + jc * ldb + pc : b + pc * ldb + jc;
      // In place, B's last panel is packed anyway when it is narrower than NR (the kernel
      // loads whole rows of a panel).
      const std::int64_t full_cols = pack_all_b ? 0 : nc / NR * NR;
      if (pack_all_b) pack_b(tb, b0, ldb, kc, nc, bp);
      else if (full_cols < nc) pack_b(tb, b0 + full_cols, ldb, kc, nc - full_cols, bp);
      for (std::int64_t ic = 0; ic < m; ic += MC) {
        const std::int64_t mc = std::min(MC, m - ic);
        const float* a0 = ta ? a + pc * lda + ic : a + ic * lda + pc;
        if (pack_all_a) pack_a(ta, a0, lda, mc, kc, ap);
        const RowSplit split(mc);
        for (std::int64_t jr = 0; jr < nc; jr += NR) {
          const int cols = static_cast<int>(std::min<std::int64_t>(NR, nc - jr));
          Operands op{};
          if (pack_all_b) op.b = bp + jr * kc, op.b_rs = NR;
          else if (jr < full_cols) op.b = b0 + jr, op.b_rs = ldb;  // B is not transposed here
          else op.b = bp, op.b_rs = NR;
          op.bias = bias && pc == 0 ? bias + jc + jr : nullptr;
          for (std::int64_t t = 0; t < split.panels; ++t) {
            const std::int64_t ir = split.start(t);
            if (pack_all_a) {
              op.a = ap + t * kc * MR, op.a_rs = 1, op.a_cs = MR;
            } else {
              op.a = ta ? a0 + ir : a0 + ir * lda;
              op.a_rs = ta ? 1 : lda;
              op.a_cs = ta ? lda : 1;
            }
            kernel_for(split.rows(t), cols, pack_all_a)(kc, op, c + (ic + ir) * ldc + jc + jr, ldc,
                                                        alpha, beta_p, cols);
          }
        }
      }
    }
  }
}

}  // namespace ligm::cpu::sgemm
#endif
