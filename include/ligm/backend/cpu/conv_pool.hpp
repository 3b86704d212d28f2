// Convolution (im2col + GEMM), pooling and interpolation kernels for the CPU backend.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ligm/backend/backend.hpp"
#include "ligm/backend/cpu/gemm.hpp"
#include "ligm/backend/cpu/parallel.hpp"
#include "ligm/backend/kernels/pool.hpp"

namespace ligm::cpu {

// col[(c * kh + i) * kw + j][oh * w_out + ow] = x[c][oh*s - p + i*d][ow*s - p + j*d] (0 outside)
template <class T>
void im2col(const Conv2dGeometry& g, std::int64_t channels, const T* x, T* col) {
  const std::int64_t hw_out = g.h_out * g.w_out;
  for (std::int64_t c = 0; c < channels; ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * hw_out;
        const T* plane = x + c * g.h_in * g.w_in;
        for (std::int64_t oh = 0; oh < g.h_out; ++oh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + i * g.dil_h;
          T* out = row + oh * g.w_out;
          if (ih < 0 || ih >= g.h_in) {
            std::fill(out, out + g.w_out, T(0));
            continue;
          }
          const T* in = plane + ih * g.w_in;
          for (std::int64_t ow = 0; ow < g.w_out; ++ow) {
            const std::int64_t iw = ow * g.stride_w - g.pad_w + j * g.dil_w;
            out[ow] = (iw >= 0 && iw < g.w_in) ? in[iw] : T(0);
          }
        }
      }
}

// The adjoint of im2col: x += scatter of col.
template <class T>
void col2im(const Conv2dGeometry& g, std::int64_t channels, const T* col, T* x) {
  const std::int64_t hw_out = g.h_out * g.w_out;
  for (std::int64_t c = 0; c < channels; ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const T* row = col + ((c * g.kh + i) * g.kw + j) * hw_out;
        T* plane = x + c * g.h_in * g.w_in;
        for (std::int64_t oh = 0; oh < g.h_out; ++oh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + i * g.dil_h;
          if (ih < 0 || ih >= g.h_in) continue;
          T* out = plane + ih * g.w_in;
          const T* in = row + oh * g.w_out;
          for (std::int64_t ow = 0; ow < g.w_out; ++ow) {
            const std::int64_t iw = ow * g.stride_w - g.pad_w + j * g.dil_w;
            if (iw >= 0 && iw < g.w_in) out[iw] += in[ow];
          }
        }
      }
}

// Per group: y[n, g] = W_g [Cout_g, Cin_g*kh*kw] @ im2col(x[n, g]).
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) {
  const std::int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const std::int64_t kdim = cin_g * g.kh * g.kw, hw_out = g.h_out * g.w_out;
  parallel_for(0, g.n, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<T> col(static_cast<std::size_t>(kdim * hw_out));
    for (std::int64_t n = lo; n < hi; ++n)
      for (std::int64_t gr = 0; gr < g.groups; ++gr) {
        im2col(g, cin_g, x + (n * g.c_in + gr * cin_g) * g.h_in * g.w_in, col.data());
        gemm_one(false, false, cout_g, hw_out, kdim, T(1), w + gr * cout_g * kdim, kdim,
                 col.data(), hw_out, T(0), y + (n * g.c_out + gr * cout_g) * hw_out, hw_out);
      }
  });
}

// gx[n, g] = col2im(W_g^T @ gy[n, g]).
template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  const std::int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const std::int64_t kdim = cin_g * g.kh * g.kw, hw_out = g.h_out * g.w_out;
  std::fill(gx, gx + g.n * g.c_in * g.h_in * g.w_in, T(0));
  parallel_for(0, g.n, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<T> col(static_cast<std::size_t>(kdim * hw_out));
    for (std::int64_t n = lo; n < hi; ++n)
      for (std::int64_t gr = 0; gr < g.groups; ++gr) {
        gemm_one(true, false, kdim, hw_out, cout_g, T(1), w + gr * cout_g * kdim, kdim,
                 gy + (n * g.c_out + gr * cout_g) * hw_out, hw_out, T(0), col.data(), hw_out);
        col2im(g, cin_g, col.data(), gx + (n * g.c_in + gr * cin_g) * g.h_in * g.w_in);
      }
  });
}

// gw_g = sum_n gy[n, g] @ im2col(x[n, g])^T. Threads split the batch, each with its own
// accumulator, summed at the end.
template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) {
  const std::int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const std::int64_t kdim = cin_g * g.kh * g.kw, hw_out = g.h_out * g.w_out;
  const std::int64_t wsize = g.c_out * kdim;
  const int parts = static_cast<int>(std::min<std::int64_t>(get_num_threads(), g.n));
  std::vector<std::vector<T>> partial(static_cast<std::size_t>(std::max(parts, 1)),
                                      std::vector<T>(static_cast<std::size_t>(wsize), T(0)));
  const std::int64_t per = (g.n + parts - 1) / std::max(parts, 1);
  parallel_for(0, parts, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<T> col(static_cast<std::size_t>(kdim * hw_out));
    for (std::int64_t p = lo; p < hi; ++p)
      for (std::int64_t n = p * per; n < std::min(g.n, (p + 1) * per); ++n)
        for (std::int64_t gr = 0; gr < g.groups; ++gr) {
          im2col(g, cin_g, x + (n * g.c_in + gr * cin_g) * g.h_in * g.w_in, col.data());
          gemm_one(false, true, cout_g, kdim, hw_out, T(1),
                   gy + (n * g.c_out + gr * cout_g) * hw_out, hw_out, col.data(), hw_out, T(1),
                   partial[p].data() + gr * cout_g * kdim, kdim);
        }
  });
  std::fill(gw, gw + wsize, T(0));
  for (const auto& part : partial)
    for (std::int64_t i = 0; i < wsize; ++i) gw[i] += part[i];
}

template <class T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int64_t* argmax) {
  parallel_for(0, g.n * g.c, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) {
      const T* plane = x + p * g.h_in * g.w_in;
      for (std::int64_t oh = 0; oh < g.h_out; ++oh) {
        std::int64_t i0, i1;
        kernels::window_range(oh, g.kh, g.stride_h, g.pad_h, g.dil_h, g.h_in, i0, i1);
        for (std::int64_t ow = 0; ow < g.w_out; ++ow) {
          std::int64_t j0, j1;
          kernels::window_range(ow, g.kw, g.stride_w, g.pad_w, g.dil_w, g.w_in, j0, j1);
          T best = -std::numeric_limits<T>::infinity();
          std::int64_t best_i = -1;
          bool nan = false;
          for (std::int64_t i = i0; i < i1 && !nan; ++i) {
            const std::int64_t row = (oh * g.stride_h - g.pad_h + i * g.dil_h) * g.w_in;
            for (std::int64_t j = j0; j < j1; ++j) {
              const std::int64_t at = row + ow * g.stride_w - g.pad_w + j * g.dil_w;
              const T v = plane[at];
              if (v > best || best_i < 0 || v != v) {  // the first NaN wins, as in PyTorch
                best = v;
                best_i = at;
                if (v != v) {
                  nan = true;
                  break;
                }
              }
            }
          }
          const std::int64_t o = (p * g.h_out + oh) * g.w_out + ow;
          y[o] = best;
          argmax[o] = best_i;
        }
      }
    }
  });
}

template <class T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int64_t* argmax,
                         T* gx) {
  parallel_for(0, g.n * g.c, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) {
      T* plane = gx + p * g.h_in * g.w_in;
      std::fill(plane, plane + g.h_in * g.w_in, T(0));
      for (std::int64_t o = p * g.h_out * g.w_out; o < (p + 1) * g.h_out * g.w_out; ++o)
        if (argmax[o] >= 0) plane[argmax[o]] += gy[o];
    }
  });
}

// Visits every output window; the window rule is kernels::avg_pool_window, shared with CUDA.
template <class T, class F>
void avg_pool2d_windows(const Pool2dGeometry& g, const F& visit) {
  parallel_for(0, g.n * g.c, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p)
      for (std::int64_t oh = 0; oh < g.h_out; ++oh)
        for (std::int64_t ow = 0; ow < g.w_out; ++ow) {
          const kernels::AvgWindow win = kernels::avg_pool_window(g, oh, ow);
          visit(p, (p * g.h_out + oh) * g.w_out + ow, win.h0, win.h1, win.w0, win.w1,
                T(1) / T(win.divisor));
        }
  });
}

template <class T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  avg_pool2d_windows<T>(g, [&](std::int64_t p, std::int64_t o, std::int64_t h0, std::int64_t h1,
                               std::int64_t w0, std::int64_t w1, T scale) {
    const T* plane = x + p * g.h_in * g.w_in;
    T s = 0;
    for (std::int64_t i = h0; i < h1; ++i)
      for (std::int64_t j = w0; j < w1; ++j) s += plane[i * g.w_in + j];
    y[o] = s * scale;
  });
}

template <class T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) {
  std::fill(gx, gx + g.n * g.c * g.h_in * g.w_in, T(0));
  avg_pool2d_windows<T>(g, [&](std::int64_t p, std::int64_t o, std::int64_t h0, std::int64_t h1,
                               std::int64_t w0, std::int64_t w1, T scale) {
    T* plane = gx + p * g.h_in * g.w_in;
    for (std::int64_t i = h0; i < h1; ++i)
      for (std::int64_t j = w0; j < w1; ++j) plane[i * g.w_in + j] += gy[o] * scale;
  });
}

template <class T, bool Backward>
void adaptive_avg_pool2d(std::int64_t nc, std::int64_t h, std::int64_t w, std::int64_t ho,
                         std::int64_t wo, const T* src, T* dst) {
  if constexpr (Backward) std::fill(dst, dst + nc * h * w, T(0));
  parallel_for(0, nc, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p)
      for (std::int64_t oh = 0; oh < ho; ++oh) {
        std::int64_t h0, h1;
        kernels::adaptive_range(oh, h, ho, h0, h1);
        for (std::int64_t ow = 0; ow < wo; ++ow) {
          std::int64_t w0, w1;
          kernels::adaptive_range(ow, w, wo, w0, w1);
          const T scale = T(1) / T((h1 - h0) * (w1 - w0));
          const std::int64_t o = (p * ho + oh) * wo + ow;
          if constexpr (Backward) {
            for (std::int64_t i = h0; i < h1; ++i)
              for (std::int64_t j = w0; j < w1; ++j) dst[(p * h + i) * w + j] += src[o] * scale;
          } else {
            T s = 0;
            for (std::int64_t i = h0; i < h1; ++i)
              for (std::int64_t j = w0; j < w1; ++j) s += src[(p * h + i) * w + j];
            dst[o] = s * scale;
          }
        }
      }
  });
}

template <class T, bool Backward>
void interpolate(InterpMode mode, bool align_corners, std::int64_t nc, std::int64_t h,
                 std::int64_t w, std::int64_t ho, std::int64_t wo, double ratio_h, double ratio_w,
                 const T* src, T* dst) {
  if constexpr (Backward) std::fill(dst, dst + nc * h * w, T(0));
  parallel_for(0, nc, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p)
      for (std::int64_t oh = 0; oh < ho; ++oh) {
        const double sh = kernels::interp_source(mode, align_corners, oh, h, ho, ratio_h);
        const std::int64_t h0 = static_cast<std::int64_t>(sh);
        const std::int64_t h1 = std::min(h0 + 1, h - 1);
        const T lh = mode == InterpMode::Nearest ? T(0) : T(sh - h0);
        for (std::int64_t ow = 0; ow < wo; ++ow) {
          const double sw = kernels::interp_source(mode, align_corners, ow, w, wo, ratio_w);
          const std::int64_t w0 = static_cast<std::int64_t>(sw);
          const std::int64_t w1 = std::min(w0 + 1, w - 1);
          const T lw = mode == InterpMode::Nearest ? T(0) : T(sw - w0);
          const std::int64_t o = (p * ho + oh) * wo + ow;
          const std::int64_t base = p * h * w;
          const std::int64_t i00 = base + h0 * w + w0, i01 = base + h0 * w + w1;
          const std::int64_t i10 = base + h1 * w + w0, i11 = base + h1 * w + w1;
          const T c00 = (1 - lh) * (1 - lw), c01 = (1 - lh) * lw, c10 = lh * (1 - lw),
                  c11 = lh * lw;
          if constexpr (Backward) {
            dst[i00] += c00 * src[o];
            dst[i01] += c01 * src[o];
            dst[i10] += c10 * src[o];
            dst[i11] += c11 * src[o];
          } else {
            dst[o] = c00 * src[i00] + c01 * src[i01] + c10 * src[i10] + c11 * src[i11];
          }
        }
      }
  });
}

}  // namespace ligm::cpu
