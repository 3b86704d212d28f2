// Winograd F(2x2, 3x3) convolution on the CPU (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", CVPR 2016): the forward pass, the input gradient and the weight gradient of a
// 3x3, stride-1, undilated, ungrouped convolution with any padding.
//
// A 2x2 block of outputs reads a 4x4 tile d of the zero-padded input. With the 3x3 kernel g,
//
//     Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A,
//
//     B^T = | 1  0 -1  0 |    G = |  1    0    0  |    A^T = | 1  1  1  0 |
//           | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
//           | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
//           | 0  1  0 -1 |        |  0    0    1  |
//
// Summed over input channels, the 16 element-wise products become 16 GEMMs, one per position xi
// of the 4x4 transformed tile: M[xi] = U[xi] (C_out x C_in) @ V[xi] (C_in x tiles), where
// U = G g G^T and V = B^T d B. That is 16 multiplies per 2x2 outputs where im2col spends 36.
// The gradients are the adjoints of the same linear maps:
//
//     dM = A dY A^T,   dV[xi] = U[xi]^T dM[xi],   dx = sum over tiles of B dV B^T (tiles overlap),
//     dU[xi] = sum over tiles of dM[xi] V[xi]^T,   dg = G^T dU G.
//
// The tiles of a chunk of images sit side by side as the GEMMs' columns, so the GEMMs stay wide
// when the planes are small. The transforms run on vectors of consecutive tiles: the padded
// plane is split by row and column parity into four quarter planes, where tile (th, tw)'s
// element (i, j) is quarter (i % 2, j % 2) at th * half + tw + (i / 2) * half + j / 2 (half =
// tiles_w + 1), linear in the tile's slot th * half + tw. The one extra slot per tile row (tw =
// tiles_w) is computed and ignored: its gradients are zero and its outputs are not written.
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

namespace ligm::cpu::winograd {

// Where the fast path applies (small channel counts stay with im2col, whose GEMM is as short).
inline bool applies(const Conv2dGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1 &&
         g.groups == 1 && g.c_in >= 4 && g.c_out >= 4 && g.h_out >= 1 && g.w_out >= 1;
}

// The 1-D transforms and their adjoints (the 2-D ones apply them along both axes).
template <class T>
inline void input_1d(T d0, T d1, T d2, T d3, T* v) {  // v = B^T d
  v[0] = d0 - d2, v[1] = d1 + d2, v[2] = d2 - d1, v[3] = d1 - d3;
}
template <class T>
inline void input_1d_adjoint(T v0, T v1, T v2, T v3, T* d) {  // d = B v
  d[0] = v0, d[1] = v1 - v2 + v3, d[2] = v1 + v2 - v0, d[3] = -v3;
}
template <class T>
inline void kernel_1d(T g0, T g1, T g2, T* u) {  // u = G g
  u[0] = g0, u[1] = T(0.5) * (g0 + g1 + g2), u[2] = T(0.5) * (g0 - g1 + g2), u[3] = g2;
}
template <class T>
inline void kernel_1d_adjoint(T u0, T u1, T u2, T u3, T* g) {  // g = G^T u
  g[0] = u0 + T(0.5) * (u1 + u2), g[1] = T(0.5) * (u1 - u2), g[2] = T(0.5) * (u1 + u2) + u3;
}
template <class T>
inline void output_1d(T m0, T m1, T m2, T m3, T* y) {  // y = A^T m
  y[0] = m0 + m1 + m2, y[1] = m1 - m2 - m3;
}
template <class T>
inline void output_1d_adjoint(T y0, T y1, T* m) {  // m = A y
  m[0] = y0, m[1] = y0 + y1, m[2] = y0 - y1, m[3] = -y1;
}

// The tiling of one convolution: tiles_h x tiles_w blocks of 2x2 outputs per image, in
// tiles_h x half slots (one spare per row); `images` images per chunk, about 128 GEMM columns
// (more columns made V and M outgrow the L2 cache and ran slower on the 2-core VM).
struct Plan {
  std::int64_t tiles_h, tiles_w, half, slots, quarter, images, chunks;
  explicit Plan(const Conv2dGeometry& g)
      : tiles_h((g.h_out + 1) / 2), tiles_w((g.w_out + 1) / 2), half(tiles_w + 1), slots(tiles_h * half),
        quarter((tiles_h + 2) * half),  // a quarter plane, with a row to spare for the last slots' reads
        images(std::clamp<std::int64_t>((128 + slots - 1) / slots, 1, std::max<std::int64_t>(g.n, 1))),
        chunks((g.n + images - 1) / images) {}
  std::int64_t cols() const { return images * slots; }  // GEMM columns of a full chunk
};

// U[xi][co][ci] = (G g G^T)[xi] for every kernel g = w[co][ci].
template <class T>
void transform_kernels(const Conv2dGeometry& g, const T* w, T* u) {
  const std::int64_t pairs = g.c_out * g.c_in;
  for (std::int64_t p = 0; p < pairs; ++p) {
    const T* k = w + p * 9;
    T rows[3][4], t[4];
    for (int i = 0; i < 3; ++i) kernel_1d(k[i * 3], k[i * 3 + 1], k[i * 3 + 2], rows[i]);
    for (int b = 0; b < 4; ++b) {
      kernel_1d(rows[0][b], rows[1][b], rows[2][b], t);
      for (int a = 0; a < 4; ++a) u[(a * 4 + b) * pairs + p] = t[a];
    }
  }
}

// gw[co][ci] = G^T dU[co][ci] G, the adjoint of transform_kernels.
template <class T>
void transform_kernels_adjoint(const Conv2dGeometry& g, const T* du, T* gw) {
  const std::int64_t pairs = g.c_out * g.c_in;
  for (std::int64_t p = 0; p < pairs; ++p) {
    T t[4][3];  // G^T along each row a of dU
    for (int a = 0; a < 4; ++a)
      kernel_1d_adjoint(du[(a * 4) * pairs + p], du[(a * 4 + 1) * pairs + p], du[(a * 4 + 2) * pairs + p],
                        du[(a * 4 + 3) * pairs + p], t[a]);
    for (int j = 0; j < 3; ++j) {
      T k[3];
      kernel_1d_adjoint(t[0][j], t[1][j], t[2][j], t[3][j], k);
      for (int i = 0; i < 3; ++i) gw[p * 9 + i * 3 + j] = k[i];
    }
  }
}

// The machine's vectors (GCC/Clang vector extensions) over consecutive tile slots; the tail
// runs the same code on scalars.
#if defined(__AVX512F__)
inline constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
inline constexpr int kVectorBytes = 32;
#else
inline constexpr int kVectorBytes = 16;
#endif
template <class T>
struct Simd {
  typedef T type __attribute__((vector_size(kVectorBytes)));
  static constexpr int lanes = kVectorBytes / sizeof(T);
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
// f(V{}, k) for k = 0, lanes, 2 lanes, ... while a whole vector fits, then f(T{}, k) for the rest.
template <class T, class F>
inline void simd_for(std::int64_t n, const F& f) {
  std::int64_t k = 0;
  for (; k + Simd<T>::lanes <= n; k += Simd<T>::lanes) f(typename Simd<T>::type{}, k);
  for (; k < n; ++k) f(T{}, k);
}

// Splits an h x w plane, shifted by (top, left) into zeros, into its four quarters by row and
// column parity: q[2 (r % 2) + c % 2][(r / 2) * half + c / 2] = plane[r - top][c - left].
template <class T>
void split_quarters(const T* src, std::int64_t h, std::int64_t w, std::int64_t top, std::int64_t left,
                    const Plan& pl, T* q) {
  std::fill(q, q + 4 * pl.quarter, T(0));
  for (std::int64_t r = 0; r < h; ++r) {
    const std::int64_t pr = r + top;
    T* row = q + (pr % 2) * 2 * pl.quarter + (pr / 2) * pl.half;
    const T* s = src + r * w;
    for (std::int64_t parity = 0; parity < 2; ++parity) {  // columns c with c + left of this parity
      const std::int64_t c0 = (parity + left) % 2;
      T* d = row + parity * pl.quarter + (c0 + left) / 2;
      for (std::int64_t k = 0; c0 + 2 * k < w; ++k) d[k] = s[c0 + 2 * k];
    }
  }
}
// The inverse for the plane's [top, top + h) x [left, left + w) window: plane[r][c] = q[...].
template <class T>
void join_quarters(const T* q, const Plan& pl, std::int64_t top, std::int64_t left, std::int64_t h, std::int64_t w,
                   T* dst) {
  for (std::int64_t r = 0; r < h; ++r) {
    const std::int64_t pr = r + top;
    const T* row = q + (pr % 2) * 2 * pl.quarter + (pr / 2) * pl.half;
    T* d = dst + r * w;
    for (std::int64_t parity = 0; parity < 2; ++parity) {
      const std::int64_t c0 = (parity + left) % 2;
      const T* s = row + parity * pl.quarter + (c0 + left) / 2;
      for (std::int64_t k = 0; c0 + 2 * k < w; ++k) d[c0 + 2 * k] = s[k];
    }
  }
}
// Where tile element (i, j) of slot 0 lies in the quarters.
inline std::int64_t tap(const Plan& pl, int i, int j) {
  return ((i % 2) * 2 + j % 2) * pl.quarter + (i / 2) * pl.half + j / 2;
}

// V[xi][c][col] for the images [n0, n0 + nb) of x, col = image * slots + slot (ld columns per
// row of V). `q` is scratch for one plane's quarters.
template <class T>
void transform_input(const Conv2dGeometry& g, const Plan& pl, const T* x, std::int64_t n0, std::int64_t nb,
                     T* v, std::int64_t ld, T* q) {
  const std::int64_t stream = g.c_in * ld;
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t c = 0; c < g.c_in; ++c) {
      split_quarters(x + ((n0 + b) * g.c_in + c) * g.h_in * g.w_in, g.h_in, g.w_in, g.pad_h, g.pad_w, pl, q);
      T* out = v + c * ld + b * pl.slots;
      simd_for<T>(pl.slots, [&](auto zero, std::int64_t k) {
        using V = decltype(zero);
        V t[4][4];  // t[i] = B^T along row i of the tiles
        for (int i = 0; i < 4; ++i)
          input_1d(load<V>(q + tap(pl, i, 0) + k), load<V>(q + tap(pl, i, 1) + k), load<V>(q + tap(pl, i, 2) + k),
                   load<V>(q + tap(pl, i, 3) + k), t[i]);
        for (int b2 = 0; b2 < 4; ++b2) {
          V col[4];
          input_1d(t[0][b2], t[1][b2], t[2][b2], t[3][b2], col);
          for (int a = 0; a < 4; ++a) store(out + (a * 4 + b2) * stream + k, col[a]);
        }
      });
    }
}

// dM[xi][co][col] = (A dY A^T)[xi] for the 2x2 blocks of gy (zero past the output's edge).
template <class T>
void transform_output_grad(const Conv2dGeometry& g, const Plan& pl, const T* gy, std::int64_t n0, std::int64_t nb,
                           T* dm, std::int64_t ld, T* q) {
  const std::int64_t stream = g.c_out * ld;
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t co = 0; co < g.c_out; ++co) {
      split_quarters(gy + ((n0 + b) * g.c_out + co) * g.h_out * g.w_out, g.h_out, g.w_out, 0, 0, pl, q);
      T* out = dm + co * ld + b * pl.slots;
      simd_for<T>(pl.slots, [&](auto zero, std::int64_t k) {
        using V = decltype(zero);
        V m0[4], m1[4];  // A along each row of the blocks
        output_1d_adjoint(load<V>(q + tap(pl, 0, 0) + k), load<V>(q + tap(pl, 0, 1) + k), m0);
        output_1d_adjoint(load<V>(q + tap(pl, 1, 0) + k), load<V>(q + tap(pl, 1, 1) + k), m1);
        for (int b2 = 0; b2 < 4; ++b2) {
          V col[4];
          output_1d_adjoint(m0[b2], m1[b2], col);
          for (int a = 0; a < 4; ++a) store(out + (a * 4 + b2) * stream + k, col[a]);
        }
      });
    }
}

// y[n][co] = A^T M A for every block, clipped to the output (through the quarters `q`).
template <class T>
void transform_output(const Conv2dGeometry& g, const Plan& pl, const T* m, std::int64_t ld, std::int64_t n0,
                      std::int64_t nb, T* y, T* q) {
  const std::int64_t stream = g.c_out * ld;
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t co = 0; co < g.c_out; ++co) {
      const T* in = m + co * ld + b * pl.slots;
      simd_for<T>(pl.slots, [&](auto zero, std::int64_t k) {
        using V = decltype(zero);
        V t[2][4];  // A^T along the columns of the tiles
        for (int b2 = 0; b2 < 4; ++b2) {
          V col[2];
          output_1d(load<V>(in + b2 * stream + k), load<V>(in + (4 + b2) * stream + k),
                    load<V>(in + (8 + b2) * stream + k), load<V>(in + (12 + b2) * stream + k), col);
          t[0][b2] = col[0], t[1][b2] = col[1];
        }
        for (int a = 0; a < 2; ++a) {
          V row[2];
          output_1d(t[a][0], t[a][1], t[a][2], t[a][3], row);
          store(q + tap(pl, a, 0) + k, row[0]);
          store(q + tap(pl, a, 1) + k, row[1]);
        }
      });
      join_quarters(q, pl, 0, 0, g.h_out, g.w_out, y + ((n0 + b) * g.c_out + co) * g.h_out * g.w_out);
    }
}

// gx[n][c] = the overlapping sum of B dV B^T over the tiles, without the padding.
template <class T>
void transform_input_grad(const Conv2dGeometry& g, const Plan& pl, const T* dv, std::int64_t ld, std::int64_t n0,
                          std::int64_t nb, T* gx, T* q) {
  const std::int64_t stream = g.c_in * ld;
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t c = 0; c < g.c_in; ++c) {
      std::fill(q, q + 4 * pl.quarter, T(0));
      const T* in = dv + c * ld + b * pl.slots;
      // Neighbouring tiles overlap; the vectors add one after another, so each sum is whole.
      simd_for<T>(pl.slots, [&](auto zero, std::int64_t k) {
        using V = decltype(zero);
        V t[4][4];  // t[i] = B along the columns, row i of the tiles
        for (int b2 = 0; b2 < 4; ++b2) {
          V col[4];
          input_1d_adjoint(load<V>(in + b2 * stream + k), load<V>(in + (4 + b2) * stream + k),
                           load<V>(in + (8 + b2) * stream + k), load<V>(in + (12 + b2) * stream + k), col);
          for (int i = 0; i < 4; ++i) t[i][b2] = col[i];
        }
        for (int i = 0; i < 4; ++i) {
          V d[4];
          input_1d_adjoint(t[i][0], t[i][1], t[i][2], t[i][3], d);
          for (int j = 0; j < 4; ++j) add_to(q + tap(pl, i, j) + k, d[j]);
        }
      });
      join_quarters(q, pl, g.pad_h, g.pad_w, g.h_in, g.w_in, gx + ((n0 + b) * g.c_in + c) * g.h_in * g.w_in);
    }
}

// The chunks [lo, hi) of images: f(n0, nb, cols of the chunk).
template <class F>
void for_chunks(const Conv2dGeometry& g, const Plan& pl, std::int64_t lo, std::int64_t hi, const F& f) {
  for (std::int64_t ch = lo; ch < hi; ++ch) {
    const std::int64_t n0 = ch * pl.images, nb = std::min(pl.images, g.n - n0);
    f(n0, nb, nb * pl.slots);
  }
}

// A thread's scratch: a plane's quarters, the input-side tiles (V or dV, [16][c_in][cols]) and
// the output-side ones (M or dM, [16][c_out][cols]).
template <class T>
struct Workspace {
  T *quarters, *in, *out;
  Workspace(const Conv2dGeometry& g, const Plan& pl) {
    const std::int64_t ld = pl.cols();
    quarters = scratch<T>(static_cast<std::size_t>(4 * pl.quarter + 16 * (g.c_in + g.c_out) * ld));
    in = quarters + 4 * pl.quarter;
    out = in + 16 * g.c_in * ld;
  }
};

// U = G g G^T for all kernels, [16][c_out][c_in].
template <class T>
std::vector<T> transformed_kernels(const Conv2dGeometry& g, const T* w) {
  std::vector<T> u(static_cast<std::size_t>(16 * g.c_out * g.c_in));
  transform_kernels(g, w, u.data());
  return u;
}

// f(workspace, n0, nb, cols) for every chunk of images, the chunks spread over the threads.
template <class T, class F>
void each_chunk(const Conv2dGeometry& g, const Plan& pl, const F& f) {
  parallel_for(0, pl.chunks, 1, [&](std::int64_t lo, std::int64_t hi) {
    const Workspace<T> ws(g, pl);
    for_chunks(g, pl, lo, hi, [&](std::int64_t n0, std::int64_t nb, std::int64_t cols) { f(ws, n0, nb, cols); });
  });
}

template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) {
  const Plan pl(g);
  const std::int64_t ld = pl.cols();
  const std::vector<T> u = transformed_kernels(g, w);
  each_chunk<T>(g, pl, [&](const Workspace<T>& ws, std::int64_t n0, std::int64_t nb, std::int64_t cols) {
    transform_input(g, pl, x, n0, nb, ws.in, ld, ws.quarters);
    for (int xi = 0; xi < 16; ++xi)  // M = U V
      gemm_one(false, false, g.c_out, cols, g.c_in, T(1), u.data() + xi * g.c_out * g.c_in, g.c_in,
               ws.in + xi * g.c_in * ld, ld, T(0), ws.out + xi * g.c_out * ld, ld);
    transform_output(g, pl, ws.out, ld, n0, nb, y, ws.quarters);
  });
}

template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  const Plan pl(g);
  const std::int64_t ld = pl.cols();
  const std::vector<T> u = transformed_kernels(g, w);
  each_chunk<T>(g, pl, [&](const Workspace<T>& ws, std::int64_t n0, std::int64_t nb, std::int64_t cols) {
    transform_output_grad(g, pl, gy, n0, nb, ws.out, ld, ws.quarters);
    for (int xi = 0; xi < 16; ++xi)  // dV = U^T dM
      gemm_one(true, false, g.c_in, cols, g.c_out, T(1), u.data() + xi * g.c_out * g.c_in, g.c_in,
               ws.out + xi * g.c_out * ld, ld, T(0), ws.in + xi * g.c_in * ld, ld);
    transform_input_grad(g, pl, ws.in, ld, n0, nb, gx, ws.quarters);
  });
}

// dU = sum over the chunks of dM V^T (the chunks split over the threads), then dg = G^T dU G.
template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) {
  const Plan pl(g);
  const std::int64_t ld = pl.cols();
  std::vector<T> du(static_cast<std::size_t>(16 * g.c_out * g.c_in));
  parallel_sum(pl.chunks, static_cast<std::int64_t>(du.size()), du.data(),
               [&](std::int64_t lo, std::int64_t hi, T* acc) {
                 const Workspace<T> ws(g, pl);
                 for_chunks(g, pl, lo, hi, [&](std::int64_t n0, std::int64_t nb, std::int64_t cols) {
                   transform_input(g, pl, x, n0, nb, ws.in, ld, ws.quarters);
                   transform_output_grad(g, pl, gy, n0, nb, ws.out, ld, ws.quarters);
                   for (int xi = 0; xi < 16; ++xi)  // dU += dM V^T
                     gemm_one(false, true, g.c_out, g.c_in, cols, T(1), ws.out + xi * g.c_out * ld, ld,
                              ws.in + xi * g.c_in * ld, ld, T(1), acc + xi * g.c_out * g.c_in, g.c_in);
                 });
               });
  transform_kernels_adjoint(g, du.data(), gw);
}

}  // namespace ligm::cpu::winograd
