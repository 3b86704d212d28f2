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

// Pooling and interpolation run the CUDA kernels' thread bodies (backend/kernels/pool.hpp),
// one output plane per task: the backward bodies scatter into their own input plane only, so
// planes never race, and both devices compute the same windows with the same arithmetic.
template <class Body>
void for_each_plane(std::int64_t planes, std::int64_t per_plane, const Body& body) {
  parallel_for(0, planes, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(per_plane, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t o = lo * per_plane; o < hi * per_plane; ++o) body(o);
               });
}

template <class T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int64_t* argmax) {
  for_each_plane(g.n * g.c, g.h_out * g.w_out, kernels::MaxPool2dForward<T>{g, x, y, argmax});
}

template <class T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int64_t* argmax, T* gx) {
  std::fill(gx, gx + g.n * g.c * g.h_in * g.w_in, T(0));
  for_each_plane(g.n * g.c, g.h_out * g.w_out, kernels::MaxPool2dBackward<T>{g, gy, argmax, gx});
}

template <class T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  for_each_plane(g.n * g.c, g.h_out * g.w_out, kernels::AvgPool2d<T, false>{g, x, y});
}

template <class T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) {
  std::fill(gx, gx + g.n * g.c * g.h_in * g.w_in, T(0));
  for_each_plane(g.n * g.c, g.h_out * g.w_out, kernels::AvgPool2d<T, true>{g, gy, gx});
}

template <class T, bool Backward>
void adaptive_avg_pool2d(std::int64_t nc, std::int64_t h, std::int64_t w, std::int64_t ho,
                         std::int64_t wo, const T* src, T* dst) {
  if constexpr (Backward) std::fill(dst, dst + nc * h * w, T(0));
  for_each_plane(nc, ho * wo, kernels::AdaptiveAvgPool2d<T, Backward>{h, w, ho, wo, src, dst});
}

template <class T, bool Backward>
void interpolate(InterpMode mode, bool align_corners, std::int64_t nc, std::int64_t h,
                 std::int64_t w, std::int64_t ho, std::int64_t wo, double ratio_h, double ratio_w,
                 const T* src, T* dst) {
  if constexpr (Backward) std::fill(dst, dst + nc * h * w, T(0));
  for_each_plane(nc, ho * wo,
                 kernels::Interpolate<T, Backward>{mode, align_corners, h, w, ho, wo, ratio_h, ratio_w, src, dst});
}

}  // namespace ligm::cpu
