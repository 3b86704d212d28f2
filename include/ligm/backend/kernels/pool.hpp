// Pooling and interpolation: the window arithmetic (shared with the CPU backend, so both
// devices pick the same windows, divisors and source pixels) and the thread bodies of the
// CUDA kernels, one thread per output element; backward passes scatter with atomic_add.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "ligm/backend/backend.hpp"  // Pool2dGeometry, InterpMode
#include "ligm/backend/kernels/atomic.hpp"

namespace ligm::kernels {

// Kernel taps [i0, i1) of output position o whose input position o*s - p + i*d lies in
// [0, size).
LIGM_HD void window_range(std::int64_t o, std::int64_t k, std::int64_t s, std::int64_t p,
                          std::int64_t d, std::int64_t size, std::int64_t& i0, std::int64_t& i1) {
  const std::int64_t start = o * s - p;
  if (d == 1) {  // the common case, without divisions
    i0 = start >= 0 ? 0 : -start;
    const std::int64_t end = size - start;
    i1 = end < k ? (end > 0 ? end : 0) : k;
    return;
  }
  i0 = start >= 0 ? 0 : (-start + d - 1) / d;
  const std::int64_t end = start < size ? (size - start + d - 1) / d : 0;
  i1 = end < k ? end : k;
}

// Average pooling window of output (oh, ow), PyTorch's rule: clipped to the padded input for
// the divisor when count_include_pad, to the input itself otherwise.
struct AvgWindow {
  std::int64_t h0, h1, w0, w1, divisor;
};
LIGM_HD AvgWindow avg_pool_window(const Pool2dGeometry& g, std::int64_t oh, std::int64_t ow) {
  std::int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
  std::int64_t h1 = h0 + g.kh < g.h_in + g.pad_h ? h0 + g.kh : g.h_in + g.pad_h;
  std::int64_t w1 = w0 + g.kw < g.w_in + g.pad_w ? w0 + g.kw : g.w_in + g.pad_w;
  const std::int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = h0 > 0 ? h0 : 0;
  w0 = w0 > 0 ? w0 : 0;
  h1 = h1 < g.h_in ? h1 : g.h_in;
  w1 = w1 < g.w_in ? w1 : g.w_in;
  std::int64_t divisor = g.divisor_override ? g.divisor_override
                         : g.count_include_pad ? padded
                                               : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, divisor > 1 ? divisor : 1};
}

// Adaptive pooling window along one axis: [floor(o*in/out), ceil((o+1)*in/out)).
LIGM_HD void adaptive_range(std::int64_t o, std::int64_t in, std::int64_t out, std::int64_t& lo,
                            std::int64_t& hi) {
  lo = (o * in) / out;
  hi = ((o + 1) * in + out - 1) / out;
}

// Source coordinate of output pixel o along an axis of size in -> out (PyTorch's rules);
// ratio > 0 is the caller's 1 / scale_factor, else in / out.
LIGM_HD double interp_source(InterpMode mode, bool align_corners, std::int64_t o,
                             std::int64_t in, std::int64_t out, double ratio) {
  const double r = ratio > 0 ? ratio : double(in) / double(out);
  if (mode == InterpMode::Nearest) {
    const double s = std::floor(double(o) * r);
    return s < double(in - 1) ? s : double(in - 1);
  }
  if (align_corners) return out > 1 ? double(o) * (double(in - 1) / double(out - 1)) : 0.0;
  const double s = (double(o) + 0.5) * r - 0.5;
  return s > 0.0 ? s : 0.0;
}

// The four taps of output pixel o (flat over [nc, ho, wo]) and their weights; nearest mode
// puts all the weight on the first tap.
template <class T>
struct InterpTaps {
  std::int64_t at[4];
  T w[4];
};
template <class T>
LIGM_HD InterpTaps<T> interp_taps(InterpMode mode, bool align_corners, std::int64_t h,
                                  std::int64_t w, std::int64_t ho, std::int64_t wo,
                                  double ratio_h, double ratio_w, std::int64_t o) {
  const std::int64_t ow = o % wo, oh = (o / wo) % ho, p = o / (wo * ho);
  const double sh = interp_source(mode, align_corners, oh, h, ho, ratio_h);
  const double sw = interp_source(mode, align_corners, ow, w, wo, ratio_w);
  const std::int64_t h0 = static_cast<std::int64_t>(sh), w0 = static_cast<std::int64_t>(sw);
  const std::int64_t h1 = h0 + 1 < h - 1 ? h0 + 1 : h - 1, w1 = w0 + 1 < w - 1 ? w0 + 1 : w - 1;
  const T lh = mode == InterpMode::Nearest ? T(0) : T(sh - double(h0));
  const T lw = mode == InterpMode::Nearest ? T(0) : T(sw - double(w0));
  const std::int64_t base = p * h * w;
  return {{base + h0 * w + w0, base + h0 * w + w1, base + h1 * w + w0, base + h1 * w + w1},
          {(1 - lh) * (1 - lw), (1 - lh) * lw, lh * (1 - lw), lh * lw}};
}

// ---- thread bodies (one per output element o, flat over [n*c, h_out, w_out]) -------------

template <class T>
struct MaxPool2dForward {
  Pool2dGeometry g;
  const T* x;
  T* y;
  std::int64_t* argmax;  // flat index inside the input plane, -1 for an empty window
  LIGM_HD void operator()(std::int64_t o) const {
    const std::int64_t ow = o % g.w_out, oh = (o / g.w_out) % g.h_out, p = o / (g.w_out * g.h_out);
    at(p, oh, ow, o);
  }
  // Every output of plane p in order: the CPU's loop, with no divisions per element.
  LIGM_HD void plane(std::int64_t p) const {
    std::int64_t o = p * g.h_out * g.w_out;
    for (std::int64_t oh = 0; oh < g.h_out; ++oh)
      for (std::int64_t ow = 0; ow < g.w_out; ++ow) at(p, oh, ow, o++);
  }
  // Output (oh, ow) of plane p, flat index o.
  LIGM_HD void at(std::int64_t p, std::int64_t oh, std::int64_t ow, std::int64_t o) const {
    const T* plane = x + p * g.h_in * g.w_in;
    std::int64_t i0, i1, j0, j1;
    window_range(oh, g.kh, g.stride_h, g.pad_h, g.dil_h, g.h_in, i0, i1);
    window_range(ow, g.kw, g.stride_w, g.pad_w, g.dil_w, g.w_in, j0, j1);
    T best = -std::numeric_limits<T>::infinity();
    std::int64_t best_i = -1;
    for (std::int64_t i = i0; i < i1; ++i) {
      const std::int64_t row = (oh * g.stride_h - g.pad_h + i * g.dil_h) * g.w_in + ow * g.stride_w - g.pad_w;
      for (std::int64_t j = j0; j < j1; ++j) {
        const std::int64_t at = row + j * g.dil_w;
        const T v = plane[at];
        if (!(v <= best) || best_i < 0) {  // greater, or NaN: the first NaN wins, as in PyTorch
          if (math::is_nan(v)) {
            y[o] = v;
            argmax[o] = at;
            return;
          }
          best = v;
          best_i = at;
        }
      }
    }
    y[o] = best;
    argmax[o] = best_i;
  }
};

// gx (zeroed first) += gy at each window's argmax.
template <class T>
struct MaxPool2dBackward {
  Pool2dGeometry g;
  const T* gy;
  const std::int64_t* argmax;
  T* gx;
  LIGM_HD void operator()(std::int64_t o) const {
    if (argmax[o] < 0) return;
    const std::int64_t p = o / (g.h_out * g.w_out);
    atomic_add(gx + p * g.h_in * g.w_in + argmax[o], gy[o]);
  }
  LIGM_HD void plane(std::int64_t p) const {
    const std::int64_t n = g.h_out * g.w_out;
    T* dst = gx + p * g.h_in * g.w_in;
    for (std::int64_t o = p * n; o < (p + 1) * n; ++o)
      if (argmax[o] >= 0) atomic_add(dst + argmax[o], gy[o]);
  }
};

template <class T, bool Backward>
struct AvgPool2d {
  Pool2dGeometry g;
  const T* src;  // forward: x; backward: gy
  T* dst;        // forward: y; backward: gx (zeroed first)
  LIGM_HD void operator()(std::int64_t o) const {
    const std::int64_t ow = o % g.w_out, oh = (o / g.w_out) % g.h_out, p = o / (g.w_out * g.h_out);
    const AvgWindow win = avg_pool_window(g, oh, ow);
    const T scale = T(1) / T(win.divisor);
    const std::int64_t plane = p * g.h_in * g.w_in;
    if constexpr (Backward) {
      const T v = src[o] * scale;
      for (std::int64_t i = win.h0; i < win.h1; ++i)
        for (std::int64_t j = win.w0; j < win.w1; ++j) atomic_add(dst + plane + i * g.w_in + j, v);
    } else {
      T s = 0;
      for (std::int64_t i = win.h0; i < win.h1; ++i)
        for (std::int64_t j = win.w0; j < win.w1; ++j) s += src[plane + i * g.w_in + j];
      dst[o] = s * scale;
    }
  }
};

template <class T, bool Backward>
struct AdaptiveAvgPool2d {
  std::int64_t h, w, ho, wo;
  const T* src;  // forward: x [nc, h, w]; backward: gy [nc, ho, wo]
  T* dst;        // forward: y; backward: gx (zeroed first)
  LIGM_HD void operator()(std::int64_t o) const {
    const std::int64_t ow = o % wo, oh = (o / wo) % ho, p = o / (wo * ho);
    std::int64_t h0, h1, w0, w1;
    adaptive_range(oh, h, ho, h0, h1);
    adaptive_range(ow, w, wo, w0, w1);
    const T scale = T(1) / T((h1 - h0) * (w1 - w0));
    if constexpr (Backward) {
      const T v = src[o] * scale;
      for (std::int64_t i = h0; i < h1; ++i)
        for (std::int64_t j = w0; j < w1; ++j) atomic_add(dst + (p * h + i) * w + j, v);
    } else {
      T s = 0;
      for (std::int64_t i = h0; i < h1; ++i)
        for (std::int64_t j = w0; j < w1; ++j) s += src[(p * h + i) * w + j];
      dst[o] = s * scale;
    }
  }
};

template <class T, bool Backward>
struct Interpolate {
  InterpMode mode;
  bool align_corners;
  std::int64_t h, w, ho, wo;
  double ratio_h, ratio_w;
  const T* src;  // forward: x; backward: gy
  T* dst;        // forward: y; backward: gx (zeroed first)
  LIGM_HD void operator()(std::int64_t o) const {
    const InterpTaps<T> t = interp_taps<T>(mode, align_corners, h, w, ho, wo, ratio_h, ratio_w, o);
    if constexpr (Backward) {
      for (int k = 0; k < 4; ++k) atomic_add(dst + t.at[k], t.w[k] * src[o]);
    } else {
      dst[o] = t.w[0] * src[t.at[0]] + t.w[1] * src[t.at[1]] + t.w[2] * src[t.at[2]] +
               t.w[3] * src[t.at[3]];
    }
  }
};

}  // namespace ligm::kernels
