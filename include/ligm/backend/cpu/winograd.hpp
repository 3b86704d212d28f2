// Winograd convolution on the CPU (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", CVPR 2016), F(2x2, 3x3) and F(4x4, 3x3): the forward pass, the input gradient and
// the weight gradient of a 3x3, stride-1, undilated, ungrouped convolution with any padding.
//
// An m x m block of outputs reads an (m + 2) x (m + 2) tile d of the zero-padded input. With
// the 3x3 kernel g,
//
//     Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A,
//
// F(2x2, 3x3), m = 2:
//     B^T = | 1  0 -1  0 |    G = |  1    0    0  |    A^T = | 1  1  1  0 |
//           | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
//           | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
//           | 0  1  0 -1 |        |  0    0    1  |
// F(4x4, 3x3), m = 4:
//     B^T = | 4  0 -5  0  1  0 |    G = |  1/4     0     0  |    A^T = | 1  1  1  1  1  0 |
//           | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6  |          | 0  1 -1  2 -2  0 |
//           | 0  4 -4 -1  1  0 |        | -1/6   1/6  -1/6  |          | 0  1  1  4  4  0 |
//           | 0 -2 -1  2  1  0 |        | 1/24  1/12   1/6  |          | 0  1 -1  8 -8  1 |
//           | 0  2 -1 -2  1  0 |        | 1/24 -1/12   1/6  |
//           | 0  4  0 -5  0  1 |        |   0     0     1   |
//
// Summed over input channels, the (m + 2)^2 element-wise products become as many GEMMs, one per
// position xi of the transformed tile: M[xi] = U[xi] (C_out x C_in) @ V[xi] (C_in x tiles),
// where U = G g G^T and V = B^T d B: 16 multiplies per 2x2 outputs (F2) or 36 per 4x4 (F4),
// where im2col spends 36 or 144. The gradients are the adjoints of the same linear maps:
//
//     dM = A dY A^T,   dV[xi] = U[xi]^T dM[xi],   dx = sum over tiles of B dV B^T (tiles overlap),
//     dU[xi] = sum over tiles of dM[xi] V[xi]^T,   dg = G^T dU G.
//
// The tiles of a chunk of images sit side by side as the GEMMs' columns, so the GEMMs stay wide
// when the planes are small. The transforms run on vectors of consecutive tiles: the padded
// plane is split by row and column phase (index mod m) into m^2 phase planes, where tile
// (th, tw)'s element (i, j) is phase plane (i % m, j % m) at th * half + tw + (i / m) * half +
// j / m (half = tiles_w + 1), linear in the tile's slot th * half + tw. The one extra slot per
// tile row (tw = tiles_w) is computed and ignored: its gradients are zero and its outputs are not
// written. Planes up to 16 x 16 have too few tiles to fill vectors well: there (in batches of 16
// images or more) the chunk's zero-padded planes lie image-major (each position's values of all
// the images side by side) and the vectors run over the images, with no spare slot (Plan).
// F4 does 40% fewer multiplies than F2 on a 28x28 plane, at a larger rounding error
// (its transforms scale by up to 8 and 1/24; float32 stays within 1e-4 of float64, tested);
// the convolution takes F4 where that wins as measured (winograd_tile.hpp; tests force either).
// Float64 runs the same code, so the float64 gradchecks cover it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ligm/backend/backend.hpp"
#include "ligm/backend/cpu/gemm.hpp"
#include "ligm/backend/cpu/parallel.hpp"
#include "ligm/backend/cpu/simd.hpp"
#include "ligm/backend/cpu/winograd_tile.hpp"

namespace ligm::cpu::winograd {

// Where the fast path applies (small channel counts stay with im2col, whose GEMM is as short).
inline bool applies(const Conv2dGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1 &&
         g.groups == 1 && g.c_in >= 4 && g.c_out >= 4 && g.h_out >= 1 && g.w_out >= 1;
}

// The two transform families: m outputs and a = m + 2 inputs per tile side, and the 1-D
// transforms with their adjoints (the 2-D ones apply them along both axes). Input and output
// transforms run on vectors V of element type T; the kernel transforms on scalars.
struct F2 {
  static constexpr int m = 2, a = 4;
  template <class T, class V>
  static void input(const V* d, V* v) {  // v = B^T d
    v[0] = d[0] - d[2], v[1] = d[1] + d[2], v[2] = d[2] - d[1], v[3] = d[1] - d[3];
  }
  template <class T, class V>
  static void input_adjoint(const V* v, V* d) {  // d = B v
    d[0] = v[0], d[1] = v[1] - v[2] + v[3], d[2] = v[1] + v[2] - v[0], d[3] = -v[3];
  }
  template <class T>
  static void kernel(const T* g, T* u) {  // u = G g
    u[0] = g[0], u[1] = T(0.5) * (g[0] + g[1] + g[2]), u[2] = T(0.5) * (g[0] - g[1] + g[2]), u[3] = g[2];
  }
  template <class T>
  static void kernel_adjoint(const T* u, T* g) {  // g = G^T u
    g[0] = u[0] + T(0.5) * (u[1] + u[2]), g[1] = T(0.5) * (u[1] - u[2]), g[2] = T(0.5) * (u[1] + u[2]) + u[3];
  }
  template <class T, class V>
  static void output(const V* m, V* y) {  // y = A^T m
    y[0] = m[0] + m[1] + m[2], y[1] = m[1] - m[2] - m[3];
  }
  template <class T, class V>
  static void output_adjoint(const V* y, V* m) {  // m = A y
    m[0] = y[0], m[1] = y[0] + y[1], m[2] = y[0] - y[1], m[3] = -y[1];
  }
};

struct F4 {
  static constexpr int m = 4, a = 6;
  template <class T, class V>
  static void input(const V* d, V* v) {  // v = B^T d
    const V s12 = d[1] + d[2], d12 = d[1] - d[2], d31 = d[3] - d[1], d42 = d[4] - d[2];
    v[0] = T(4) * d[0] - T(5) * d[2] + d[4];
    v[1] = d[3] + d[4] - T(4) * s12;
    v[2] = d[4] - d[3] + T(4) * d12;
    v[3] = d42 + T(2) * d31;
    v[4] = d42 - T(2) * d31;
    v[5] = T(4) * d[1] - T(5) * d[3] + d[5];
  }
  template <class T, class V>
  static void input_adjoint(const V* v, V* d) {  // d = B v
    const V s12 = v[1] + v[2], d21 = v[2] - v[1], d43 = v[4] - v[3], s34 = v[3] + v[4];
    d[0] = T(4) * v[0];
    d[1] = T(4) * (d21 + v[5]) + T(2) * d43;
    d[2] = -T(5) * v[0] - T(4) * s12 - s34;
    d[3] = -d21 - T(2) * d43 - T(5) * v[5];
    d[4] = v[0] + s12 + s34;
    d[5] = v[5];
  }
  template <class T>
  static void kernel(const T* g, T* u) {  // u = G g (multiplies by the reciprocals: no divisions)
    constexpr T q = T(1) / T(4), s = T(1) / T(6), tw = T(1) / T(12), tf = T(1) / T(24);
    u[0] = q * g[0];
    u[1] = -s * (g[0] + g[1] + g[2]);
    u[2] = -s * (g[0] - g[1] + g[2]);
    u[3] = tf * g[0] + tw * g[1] + s * g[2];
    u[4] = tf * g[0] - tw * g[1] + s * g[2];
    u[5] = g[2];
  }
  template <class T>
  static void kernel_adjoint(const T* u, T* g) {  // g = G^T u
    constexpr T q = T(1) / T(4), s = T(1) / T(6), tw = T(1) / T(12), tf = T(1) / T(24);
    g[0] = q * u[0] - s * (u[1] + u[2]) + tf * (u[3] + u[4]);
    g[1] = s * (u[2] - u[1]) + tw * (u[3] - u[4]);
    g[2] = s * (u[3] + u[4] - u[1] - u[2]) + u[5];
  }
  template <class T, class V>
  static void output(const V* m, V* y) {  // y = A^T m
    const V s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    y[0] = m[0] + s12 + s34;
    y[1] = d12 + T(2) * d34;
    y[2] = s12 + T(4) * s34;
    y[3] = d12 + T(8) * d34 + m[5];
  }
  template <class T, class V>
  static void output_adjoint(const V* y, V* m) {  // m = A y
    const V e = y[0] + y[2], o = y[1] + y[3], e4 = y[0] + T(4) * y[2], o8 = T(2) * y[1] + T(8) * y[3];
    m[0] = y[0], m[1] = e + o, m[2] = e - o, m[3] = e4 + o8, m[4] = e4 - o8, m[5] = y[3];
  }
};

// The tiling of one convolution: tiles_h x tiles_w blocks of m x m outputs per image, in one of
// two layouts (winograd_tile.hpp chooses):
//   phase planes: tiles_h x half slots per image (one spare per row, half = tiles_w + 1), the
//     transforms' vectors running over the slots of one image (column image * slots + slot),
//     read from and written to the plane's m^2 phase planes (split_phases, join_phases);
//   image-major: tiles_h x tiles_w slots, no spare, the vectors running over the chunk's images
//     (column slot * images + image), read from and written to the zero-padded planes of the
//     chunk laid side by side, one image after another at each position (to_image_major): for
//     small planes, whose few slots fill no vector (F4 has four at 7x7, 16 at 14x14) and where
//     the spare slot costs a fifth of the GEMMs (F2 at 7x7).
// `images` images per chunk: on phase planes about 128 GEMM columns for the passes that sum the
// weight gradient over them and about 64 for the others (more columns made V and M outgrow the
// L2 cache; at 28x28, 2 images instead of 3 made the forward pass 5-10% faster and the weight
// gradient slower); image-major about 128 columns and at least 16 images, a float vector's worth.
template <class F>
struct Plan {
  bool image_major;
  std::int64_t tiles_h, tiles_w, half, slots, plane, pad_h, pad_w, images, chunks;
  explicit Plan(const Conv2dGeometry& g, bool weight_pass = false)
      : image_major(image_major_tiles(g.n, g.h_out, g.w_out)),
        tiles_h((g.h_out + F::m - 1) / F::m), tiles_w((g.w_out + F::m - 1) / F::m),
        half(image_major ? tiles_w : tiles_w + 1), slots(tiles_h * half),
        plane((tiles_h + 2) * half),  // a phase plane, with a row to spare for the last slots' reads
        pad_h((tiles_h - 1) * F::m + F::a), pad_w((tiles_w - 1) * F::m + F::a),  // a padded plane
        images(std::clamp<std::int64_t>(image_major ? std::max<std::int64_t>((128 + slots - 1) / slots, 16)
                                                    : ((weight_pass ? 128 : 64) + slots - 1) / slots,
                                        1, std::max<std::int64_t>(g.n, 1))),
        chunks((g.n + images - 1) / images) {}
  std::int64_t cols() const { return images * slots; }  // GEMM columns of a full chunk
  // The distance between the a^2 rows of V or M (or dV, dM) over `channels` channels. On phase
  // planes a cache line more than the rows need, so that the transforms' a^2 loads or stores
  // per vector do not all fall into two L1 sets (channels * cols floats: 32 x 112 is 14 KiB, 2
  // KiB past a multiple of 4 KiB): 32 -> 32 at 28x28 7-13% faster a pass (bench/NOTES.md 55).
  // Image-major, measured both ways and kept without: 64 -> 64 at 14x14 5% faster with the
  // line, 128 -> 128 at 7x7 10% slower.
  std::int64_t stream(std::int64_t channels) const { return channels * cols() + (image_major ? 0 : kStreamPad); }
  static constexpr std::int64_t kStreamPad = 16;
  // A plane's phases, or the chunk's padded planes image-major.
  std::int64_t phase_scratch() const { return image_major ? pad_h * pad_w * images : F::m * F::m * plane; }
  // Where tile element (i, j) of slot t lies in the image-major planes (image 0).
  std::int64_t image_major_tap(std::int64_t t, int i, int j) const {
    return ((t / tiles_w * F::m + i) * pad_w + t % tiles_w * F::m + j) * images;
  }
};

// F4 where winograd_tile.hpp picks it (where it was measured faster).
inline bool use_f4(const Conv2dGeometry& g) { return tile_for(g.n, g.h_out, g.w_out) == 4; }

// U[xi][co][ci] = (G g G^T)[xi] for every kernel g = w[co][ci], the pairs split over the threads
// and taken in blocks: U's a^2 planes lie c_out * c_in values apart, often a multiple of 4 KiB,
// so writing all of them per pair mapped every store to one cache set (at 128 x 128 channels
// the serial per-pair loop took a sixth of a one-thread forward pass).
inline constexpr std::int64_t kKernelBlock = 64;
template <class F, class T>
void transform_kernels(const Conv2dGeometry& g, const T* w, T* u) {
  constexpr int a = F::a;
  const std::int64_t pairs = g.c_out * g.c_in;
  parallel_for(0, (pairs + kKernelBlock - 1) / kKernelBlock, 4, [&](std::int64_t lo, std::int64_t hi) {
    T block[a * a][kKernelBlock];
    for (std::int64_t bl = lo; bl < hi; ++bl) {
      const std::int64_t p0 = bl * kKernelBlock, n = std::min(kKernelBlock, pairs - p0);
      for (std::int64_t q = 0; q < n; ++q) {
        const T* k = w + (p0 + q) * 9;
        T rows[3][a];
        for (int i = 0; i < 3; ++i) F::kernel(k + i * 3, rows[i]);
        for (int b = 0; b < a; ++b) {
          const T col[3] = {rows[0][b], rows[1][b], rows[2][b]};
          T t[a];
          F::kernel(col, t);
          for (int i = 0; i < a; ++i) block[i * a + b][q] = t[i];
        }
      }
      for (int xi = 0; xi < a * a; ++xi) std::copy(block[xi], block[xi] + n, u + xi * pairs + p0);
    }
  });
}

// gw[co][ci] = G^T dU[co][ci] G, the adjoint of transform_kernels (blocked the same way).
template <class F, class T>
void transform_kernels_adjoint(const Conv2dGeometry& g, const T* du, T* gw) {
  constexpr int a = F::a;
  const std::int64_t pairs = g.c_out * g.c_in;
  parallel_for(0, (pairs + kKernelBlock - 1) / kKernelBlock, 4, [&](std::int64_t lo, std::int64_t hi) {
    T block[a * a][kKernelBlock];
    for (std::int64_t bl = lo; bl < hi; ++bl) {
      const std::int64_t p0 = bl * kKernelBlock, n = std::min(kKernelBlock, pairs - p0);
      for (int xi = 0; xi < a * a; ++xi) std::copy(du + xi * pairs + p0, du + xi * pairs + p0 + n, block[xi]);
      for (std::int64_t q = 0; q < n; ++q) {
        T t[a][3];  // G^T along each row i of dU
        for (int i = 0; i < a; ++i) {
          T row[a];
          for (int b = 0; b < a; ++b) row[b] = block[i * a + b][q];
          F::kernel_adjoint(row, t[i]);
        }
        for (int j = 0; j < 3; ++j) {
          T col[a], k[3];
          for (int i = 0; i < a; ++i) col[i] = t[i][j];
          F::kernel_adjoint(col, k);
          for (int i = 0; i < 3; ++i) gw[(p0 + q) * 9 + i * 3 + j] = k[i];
        }
      }
    }
  });
}

// Splits an h x w plane, shifted by (top, left) into zeros, into its m^2 phase planes:
// q[(r % m) m + c % m][(r / m) * half + c / m] = plane[r - top][c - left]. Row by row, source
// column phase j goes to phase plane column (j + left) % m from position (j + left) / m on, by
// vector shuffles. Only the plane's own positions are written: the zeros around it are q's
// already (a workspace's split buffers are zeroed when made, and only splits with one window
// write each), where a fill of all m^2 planes per call and a scalar stride-m scatter took most
// of the split's time.
template <class F, class T>
void split_phases(const T* src, std::int64_t h, std::int64_t w, std::int64_t top, std::int64_t left,
                  const Plan<F>& pl, T* q) {
  constexpr int m = F::m;
  const std::int64_t body = w / m;  // whole groups of m source columns
  for (std::int64_t r = 0; r < h; ++r) {
    const std::int64_t pr = r + top;
    T* const row = q + (pr % m) * m * pl.plane + (pr / m) * pl.half;  // column phase cp at row + cp * plane
    const T* s = src + r * w;
    T* out[m];
    for (int j = 0; j < m; ++j) out[j] = row + (j + left) % m * pl.plane + (j + left) / m;
    deinterleave<m>(s, body, out);
    for (int j = 0; j < w % m; ++j) out[j][body] = s[body * m + j];
  }
}
// The inverse for the plane's [top, top + h) x [left, left + w) window: plane[r][c] = q[...].
template <class F, class T>
void join_phases(const T* q, const Plan<F>& pl, std::int64_t top, std::int64_t left, std::int64_t h,
                 std::int64_t w, T* dst) {
  constexpr int m = F::m;
  const std::int64_t body = w / m;
  for (std::int64_t r = 0; r < h; ++r) {
    const std::int64_t pr = r + top;
    const T* const row = q + (pr % m) * m * pl.plane + (pr / m) * pl.half;
    const T* in[m];
    for (int j = 0; j < m; ++j) in[j] = row + (j + left) % m * pl.plane + (j + left) / m;
    T* const d = dst + r * w;
    interleave<m>(in, body, d);
    for (int j = 0; j < w % m; ++j) d[body * m + j] = in[j][body];
  }
}
// Where tile element (i, j) of slot 0 lies in the phase planes.
template <class F>
inline std::int64_t tap(const Plan<F>& pl, int i, int j) {
  constexpr int m = F::m;
  return ((i % m) * m + j % m) * pl.plane + (i / m) * pl.half + j / m;
}

// The image-major layout: planes of the chunk's images side by side, p[(r + top) * pad_w + c +
// left][b] = plane b[r][c] (p's other values stay zero, as for split_phases), and back.
template <class F, class T, class Src>
void to_image_major(const Src& src, std::int64_t nb, std::int64_t h, std::int64_t w, std::int64_t top,
                    std::int64_t left, const Plan<F>& pl, T* p) {
  for (std::int64_t b = 0; b < nb; ++b) {
    const T* s = src(b);
    for (std::int64_t r = 0; r < h; ++r) {
      T* d = p + ((r + top) * pl.pad_w + left) * pl.images + b;
      for (std::int64_t c = 0; c < w; ++c) d[c * pl.images] = s[r * w + c];
    }
  }
}
template <class F, class T, class Dst>
void from_image_major(const T* p, std::int64_t nb, std::int64_t h, std::int64_t w, std::int64_t top,
                      std::int64_t left, const Plan<F>& pl, const Dst& dst) {
  for (std::int64_t b = 0; b < nb; ++b) {
    T* d = dst(b);
    for (std::int64_t r = 0; r < h; ++r) {
      const T* s = p + ((r + top) * pl.pad_w + left) * pl.images + b;
      for (std::int64_t c = 0; c < w; ++c) d[r * w + c] = s[c * pl.images];
    }
  }
}

// A separable 2-D transform of a P x P block of vectors: f (a 1-D transform, P values in, Q out)
// along each row and each column, rows first or columns first (the same result up to rounding;
// each transform keeps the order it was measured fastest with), out(i, j, value) for the Q x Q
// results. Always inlined: called out of line, it reached `in` and `out` through pointers and
// reloaded their captures around the stores (about 4% of a 28x28 pass).
template <int P, int Q, bool RowsFirst, class V, class In, class Fn, class Out>
[[gnu::always_inline]] inline void separable(const In& in, const Fn& f, const Out& out) {
  V t[P][Q];  // rows first: t[i] = f along row i; columns first: t[j] = f along column j
#pragma GCC unroll 8
  for (int u = 0; u < P; ++u) {
    V d[P];
    for (int w = 0; w < P; ++w) d[w] = RowsFirst ? in(u, w) : in(w, u);
    f(d, t[u]);
  }
#pragma GCC unroll 8
  for (int w = 0; w < Q; ++w) {
    V d[P], r[Q];
    for (int u = 0; u < P; ++u) d[u] = t[u][w];
    f(d, r);
    for (int u = 0; u < Q; ++u) RowsFirst ? out(u, w, r[u]) : out(w, u, r[u]);
  }
}

// The transforms on n consecutive columns of vectors: at(i, j) is where tile element (i, j) of
// the first column lies, `stream` the distance between the a^2 rows of V or M.
// V = B^T d B.
template <class F, class T, class At>
void input_tiles(const At& at, std::int64_t n, T* v, std::int64_t stream) {
  constexpr int a = F::a;
  simd_for<T>(n, [&](auto zero, std::int64_t k) {
    using V = decltype(zero);
    separable<a, a, true, V>([&](int i, int j) { return load<V>(at(i, j) + k); },
                             [](const V* d, V* r) { F::template input<T>(d, r); },
                             [&](int i, int j, const V& x) { store(v + (i * a + j) * stream + k, x); });
  });
}
// dM = A dY A^T, at(i, j) for the m x m block.
template <class F, class T, class At>
void output_grad_tiles(const At& at, std::int64_t n, T* dm, std::int64_t stream) {
  constexpr int m = F::m, a = F::a;
  simd_for<T>(n, [&](auto zero, std::int64_t k) {
    using V = decltype(zero);
    separable<m, a, true, V>([&](int i, int j) { return load<V>(at(i, j) + k); },
                             [](const V* y, V* r) { F::template output_adjoint<T>(y, r); },
                             [&](int i, int j, const V& x) { store(dm + (i * a + j) * stream + k, x); });
  });
}
// Y = A^T M A, written to at(i, j) for the m x m block.
template <class F, class T, class At>
void output_tiles(const T* mm, std::int64_t stream, std::int64_t n, const At& at) {
  constexpr int m = F::m, a = F::a;
  simd_for<T>(n, [&](auto zero, std::int64_t k) {
    using V = decltype(zero);
    separable<a, m, false, V>([&](int i, int j) { return load<V>(mm + (i * a + j) * stream + k); },
                              [](const V* x, V* r) { F::template output<T>(x, r); },
                              [&](int i, int j, const V& x) { store(at(i, j) + k, x); });
  });
}
// d = B dV B^T, added to at(i, j) for the a x a tile (neighbouring tiles overlap; the vectors
// add one after another, so each sum is whole).
template <class F, class T, class At>
void input_grad_tiles(const T* dv, std::int64_t stream, std::int64_t n, const At& at) {
  constexpr int a = F::a;
  simd_for<T>(n, [&](auto zero, std::int64_t k) {
    using V = decltype(zero);
    separable<a, a, false, V>([&](int i, int j) { return load<V>(dv + (i * a + j) * stream + k); },
                              [](const V* x, V* r) { F::template input_adjoint<T>(x, r); },
                              [&](int i, int j, const V& x) { add_to(at(i, j) + k, x); });
  });
}

// V[xi][c][col] for the images [n0, n0 + nb) of x, col = image * slots + slot (ld columns per
// row of V; image-major: col = slot * nb + image). `q`: one plane's phases or the image-major
// planes, zero but where the splits write (Workspace::x_phases).
template <class F, class T>
void transform_input(const Conv2dGeometry& g, const Plan<F>& pl, const T* x, std::int64_t n0, std::int64_t nb,
                     T* v, std::int64_t ld, T* q) {
  const std::int64_t stream = pl.stream(g.c_in);
  const auto plane = [&](std::int64_t b, std::int64_t c) { return x + ((n0 + b) * g.c_in + c) * g.h_in * g.w_in; };
  for (std::int64_t c = 0; c < g.c_in; ++c) {
    if (pl.image_major) {
      to_image_major([&](std::int64_t b) { return plane(b, c); }, nb, g.h_in, g.w_in, g.pad_h, g.pad_w, pl, q);
      for (std::int64_t t = 0; t < pl.slots; ++t)
        input_tiles<F>([&](int i, int j) { return q + pl.image_major_tap(t, i, j); }, nb, v + c * ld + t * nb,
                       stream);
      continue;
    }
    for (std::int64_t b = 0; b < nb; ++b) {
      split_phases(plane(b, c), g.h_in, g.w_in, g.pad_h, g.pad_w, pl, q);
      input_tiles<F>([&](int i, int j) { return q + tap(pl, i, j); }, pl.slots, v + c * ld + b * pl.slots, stream);
    }
  }
}

// dM[xi][co][col] = (A dY A^T)[xi] for the m x m blocks of gy (zero past the output's edge).
template <class F, class T>
void transform_output_grad(const Conv2dGeometry& g, const Plan<F>& pl, const T* gy, std::int64_t n0,
                           std::int64_t nb, T* dm, std::int64_t ld, T* q) {
  const std::int64_t stream = pl.stream(g.c_out);
  const auto plane = [&](std::int64_t b, std::int64_t co) {
    return gy + ((n0 + b) * g.c_out + co) * g.h_out * g.w_out;
  };
  for (std::int64_t co = 0; co < g.c_out; ++co) {
    if (pl.image_major) {
      to_image_major([&](std::int64_t b) { return plane(b, co); }, nb, g.h_out, g.w_out, 0, 0, pl, q);
      for (std::int64_t t = 0; t < pl.slots; ++t)
        output_grad_tiles<F>([&](int i, int j) { return q + pl.image_major_tap(t, i, j); }, nb,
                             dm + co * ld + t * nb, stream);
      continue;
    }
    for (std::int64_t b = 0; b < nb; ++b) {
      split_phases(plane(b, co), g.h_out, g.w_out, 0, 0, pl, q);
      output_grad_tiles<F>([&](int i, int j) { return q + tap(pl, i, j); }, pl.slots, dm + co * ld + b * pl.slots,
                           stream);
    }
  }
}

// y[n][co] = A^T M A for every block, clipped to the output (through the phase planes or the
// image-major planes `q`).
template <class F, class T>
void transform_output(const Conv2dGeometry& g, const Plan<F>& pl, const T* mm, std::int64_t ld, std::int64_t n0,
                      std::int64_t nb, T* y, T* q) {
  const std::int64_t stream = pl.stream(g.c_out);
  for (std::int64_t co = 0; co < g.c_out; ++co) {
    const auto plane = [&](std::int64_t b) { return y + ((n0 + b) * g.c_out + co) * g.h_out * g.w_out; };
    if (pl.image_major) {
      for (std::int64_t t = 0; t < pl.slots; ++t)
        output_tiles<F>(mm + co * ld + t * nb, stream, nb,
                        [&](int i, int j) { return q + pl.image_major_tap(t, i, j); });
      from_image_major(q, nb, g.h_out, g.w_out, 0, 0, pl, plane);
      continue;
    }
    for (std::int64_t b = 0; b < nb; ++b) {
      output_tiles<F>(mm + co * ld + b * pl.slots, stream, pl.slots, [&](int i, int j) { return q + tap(pl, i, j); });
      join_phases(q, pl, 0, 0, g.h_out, g.w_out, plane(b));
    }
  }
}

// gx[n][c] = the overlapping sum of B dV B^T over the tiles, without the padding.
template <class F, class T>
void transform_input_grad(const Conv2dGeometry& g, const Plan<F>& pl, const T* dv, std::int64_t ld,
                          std::int64_t n0, std::int64_t nb, T* gx, T* q) {
  constexpr int m = F::m;
  const std::int64_t stream = pl.stream(g.c_in);
  for (std::int64_t c = 0; c < g.c_in; ++c) {
    const auto plane = [&](std::int64_t b) { return gx + ((n0 + b) * g.c_in + c) * g.h_in * g.w_in; };
    if (pl.image_major) {
      std::fill(q, q + pl.phase_scratch(), T(0));
      for (std::int64_t t = 0; t < pl.slots; ++t)
        input_grad_tiles<F>(dv + c * ld + t * nb, stream, nb,
                            [&](int i, int j) { return q + pl.image_major_tap(t, i, j); });
      from_image_major(q, nb, g.h_in, g.w_in, g.pad_h, g.pad_w, pl, plane);
      continue;
    }
    for (std::int64_t b = 0; b < nb; ++b) {
      std::fill(q, q + m * m * pl.plane, T(0));
      input_grad_tiles<F>(dv + c * ld + b * pl.slots, stream, pl.slots,
                          [&](int i, int j) { return q + tap(pl, i, j); });
      join_phases(q, pl, g.pad_h, g.pad_w, g.h_in, g.w_in, plane(b));
    }
  }
}

// The chunks [lo, hi) of images: f(n0, nb, cols of the chunk).
template <class F, class Fn>
void for_chunks(const Conv2dGeometry& g, const Plan<F>& pl, std::int64_t lo, std::int64_t hi, const Fn& f) {
  for (std::int64_t ch = lo; ch < hi; ++ch) {
    const std::int64_t n0 = ch * pl.images, nb = std::min(pl.images, g.n - n0);
    f(n0, nb, nb * pl.slots);
  }
}

// A thread's scratch: the phase planes (or image-major planes) of the input split (x,
// zero-padded), of the output-side split (dY) and of the output-side joins (Y, dX); the
// input-side tiles (V or dV, [a^2][c_in][cols]) and the output-side ones (M or dM,
// [a^2][c_out][cols]; the a^2 blocks Plan::stream apart). The split buffers start zeroed (the
// splits write only the plane's own positions).
template <class T>
struct Workspace {
  T *x_phases, *y_phases, *phases, *in, *out;
  template <class F>
  Workspace(const Conv2dGeometry& g, const Plan<F>& pl) {
    constexpr int a2 = F::a * F::a;
    const std::int64_t q = pl.phase_scratch();
    x_phases = scratch<T>(static_cast<std::size_t>(3 * q + a2 * (pl.stream(g.c_in) + pl.stream(g.c_out))));
    y_phases = x_phases + q;
    phases = y_phases + q;
    std::fill(x_phases, phases, T(0));
    in = phases + q;
    out = in + a2 * pl.stream(g.c_in);
  }
};

// The calling thread's buffers for U and dU (slots 1 and 2 of scratch: slot 0 is the
// workspace it also uses as a worker). Kept from call to call: fresh ones (2.4 MB each for 128
// channels) page-faulted about 1100 times per ResNet-small step.
enum KernelSlot { kU = 1, kDU = 2 };

// U = G g G^T for all kernels, [a^2][c_out][c_in].
template <class F, class T>
const T* transformed_kernels(const Conv2dGeometry& g, const T* w) {
  T* u = scratch<T, kU>(static_cast<std::size_t>(F::a * F::a * g.c_out * g.c_in));
  transform_kernels<F>(g, w, u);
  return u;
}

// f(workspace, n0, nb, cols) for every chunk of images, the chunks spread over the threads.
template <class T, class F, class Fn>
void each_chunk(const Conv2dGeometry& g, const Plan<F>& pl, const Fn& f) {
  parallel_for(0, pl.chunks, 1, [&](std::int64_t lo, std::int64_t hi) {
    const Workspace<T> ws(g, pl);
    for_chunks(g, pl, lo, hi, [&](std::int64_t n0, std::int64_t nb, std::int64_t cols) { f(ws, n0, nb, cols); });
  });
}

template <class F, class T>
void forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) {
  constexpr int a2 = F::a * F::a;
  const Plan<F> pl(g);
  const std::int64_t ld = pl.cols();
  const T* u = transformed_kernels<F>(g, w);
  each_chunk<T>(g, pl, [&](const Workspace<T>& ws, std::int64_t n0, std::int64_t nb, std::int64_t cols) {
    transform_input(g, pl, x, n0, nb, ws.in, ld, ws.x_phases);
    for (int xi = 0; xi < a2; ++xi)  // M = U V
      gemm_one(false, false, g.c_out, cols, g.c_in, T(1), u + xi * g.c_out * g.c_in, g.c_in,
               ws.in + xi * pl.stream(g.c_in), ld, T(0), ws.out + xi * pl.stream(g.c_out), ld);
    transform_output(g, pl, ws.out, ld, n0, nb, y, ws.phases);
  });
}

template <class F, class T>
void backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  constexpr int a2 = F::a * F::a;
  const Plan<F> pl(g);
  const std::int64_t ld = pl.cols();
  const T* u = transformed_kernels<F>(g, w);
  each_chunk<T>(g, pl, [&](const Workspace<T>& ws, std::int64_t n0, std::int64_t nb, std::int64_t cols) {
    transform_output_grad(g, pl, gy, n0, nb, ws.out, ld, ws.y_phases);
    for (int xi = 0; xi < a2; ++xi)  // dV = U^T dM
      gemm_one(true, false, g.c_in, cols, g.c_out, T(1), u + xi * g.c_out * g.c_in, g.c_in,
               ws.out + xi * pl.stream(g.c_out), ld, T(0), ws.in + xi * pl.stream(g.c_in), ld);
    transform_input_grad(g, pl, ws.in, ld, n0, nb, gx, ws.phases);
  });
}

// dU = sum over the chunks of dM V^T (the chunks split over the threads), then dg = G^T dU G;
// with gx (and w), the input gradient in the same pass: dM, transformed once, then serves
// dV = U^T dM too, written over V once the weight GEMMs are done. Each column of dV is summed
// the same way whatever the chunk's width (backward_input's chunks are narrower), so either way
// the results are identical (tested).
template <class F, class T>
void backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw, const T* w = nullptr,
                     T* gx = nullptr) {
  constexpr int a2 = F::a * F::a;
  const Plan<F> pl(g, true);
  const std::int64_t ld = pl.cols();
  const T* u = gx ? transformed_kernels<F>(g, w) : nullptr;
  const std::int64_t du_size = a2 * g.c_out * g.c_in;
  T* du = scratch<T, kDU>(static_cast<std::size_t>(du_size));
  parallel_sum(pl.chunks, du_size, du,
               [&](std::int64_t lo, std::int64_t hi, T* acc) {
                 const Workspace<T> ws(g, pl);
                 for_chunks(g, pl, lo, hi, [&](std::int64_t n0, std::int64_t nb, std::int64_t cols) {
                   transform_input(g, pl, x, n0, nb, ws.in, ld, ws.x_phases);
                   transform_output_grad(g, pl, gy, n0, nb, ws.out, ld, ws.y_phases);
                   for (int xi = 0; xi < a2; ++xi)  // dU += dM V^T
                     gemm_one(false, true, g.c_out, g.c_in, cols, T(1), ws.out + xi * pl.stream(g.c_out), ld,
                              ws.in + xi * pl.stream(g.c_in), ld, T(1), acc + xi * g.c_out * g.c_in, g.c_in);
                   if (!gx) return;
                   for (int xi = 0; xi < a2; ++xi)  // dV = U^T dM, over V
                     gemm_one(true, false, g.c_in, cols, g.c_out, T(1), u + xi * g.c_out * g.c_in, g.c_in,
                              ws.out + xi * pl.stream(g.c_out), ld, T(0), ws.in + xi * pl.stream(g.c_in), ld);
                   transform_input_grad(g, pl, ws.in, ld, n0, nb, gx, ws.phases);
                 });
               });
  transform_kernels_adjoint<F>(g, du, gw);
}

// The convolutions, with the tile size of winograd_tile.hpp.
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) {
  use_f4(g) ? forward<F4>(g, x, w, y) : forward<F2>(g, x, w, y);
}
template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  use_f4(g) ? backward_input<F4>(g, gy, w, gx) : backward_input<F2>(g, gy, w, gx);
}
template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) {
  use_f4(g) ? backward_weight<F4>(g, x, gy, gw) : backward_weight<F2>(g, x, gy, gw);
}
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* gy, const T* w, T* gx, T* gw) {
  use_f4(g) ? backward_weight<F4>(g, x, gy, gw, w, gx) : backward_weight<F2>(g, x, gy, gw, w, gx);
}

}  // namespace ligm::cpu::winograd
