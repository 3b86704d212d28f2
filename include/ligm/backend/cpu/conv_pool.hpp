// Convolution (im2col + GEMM; Winograd F(2x2, 3x3) or F(4x4, 3x3) for 3x3 stride-1 kernels, winograd.hpp),
// pooling and interpolation kernels for the CPU backend.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ligm/backend/backend.hpp"
#include "ligm/backend/cpu/gemm.hpp"
#include "ligm/backend/cpu/parallel.hpp"
#include "ligm/backend/cpu/simd.hpp"
#include "ligm/backend/cpu/winograd.hpp"
#include "ligm/backend/kernels/pool.hpp"

namespace ligm::cpu {

namespace conv_detail {
// ceil(a / b) for b > 0 and any sign of a.
inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b + (a % b != 0) : -((-a) / b); }
// The outputs [o0, o1) of an axis whose tap (offset k*d - p) reads inside the input [0, size).
inline void valid_outputs(std::int64_t tap, std::int64_t s, std::int64_t size, std::int64_t out, std::int64_t& o0,
                          std::int64_t& o1) {
  o0 = std::clamp<std::int64_t>(ceil_div(-tap, s), 0, out);
  o1 = std::clamp<std::int64_t>(ceil_div(size - tap, s), o0, out);
}
}  // namespace conv_detail

namespace conv_detail {
// im2col of one tap (kernel offsets tap_h, tap_w) of a plane when both strides are 1 and the
// output is as wide as the input (a "same" convolution): consecutive output rows read
// consecutive input rows, so the tap's valid rows are one contiguous copy of the plane shifted
// by tap_h * w + tap_w; the columns that wrapped around a row end are zeroed afterwards.
template <class T>
void im2col_shifted_plane(const Conv2dGeometry& g, const T* plane, std::int64_t tap_h, std::int64_t tap_w, T* out) {
  const std::int64_t w = g.w_in;
  std::int64_t oh0, oh1, ow0, ow1;
  valid_outputs(tap_h, 1, g.h_in, g.h_out, oh0, oh1);
  valid_outputs(tap_w, 1, g.w_in, g.w_out, ow0, ow1);
  std::fill(out, out + oh0 * w, T(0));
  std::fill(out + oh1 * w, out + g.h_out * w, T(0));
  // out[k] = plane[start + k] for the valid rows, clipped to the plane (what the clipping
  // leaves out lies in the wrapped columns).
  const std::int64_t start = (oh0 + tap_h) * w + tap_w, n = (oh1 - oh0) * w;
  const std::int64_t k0 = std::max<std::int64_t>(0, -start), k1 = std::min(n, g.h_in * w - start);
  if (k0 < k1) std::copy(plane + start + k0, plane + start + k1, out + oh0 * w + k0);
  for (std::int64_t oh = oh0; oh < oh1; ++oh) {
    T* r = out + oh * w;
    std::fill(r, r + ow0, T(0));
    std::fill(r + std::max(ow0, ow1), r + w, T(0));
  }
}
}  // namespace conv_detail

namespace conv_detail {
// A strided convolution through phase planes: with stride s, input row s r + rp is row r of
// phase rp, so tap offset t = i d - p reads phase t mod s at row oh + floor(t / s), one step per
// output row. When an output row is as wide as a phase row (w_out = ceil(w_in / s_w): padding
// (k - 1) / 2, the ResNet downsampling convolutions), each tap is a shifted contiguous copy of
// one phase plane, as for a stride-1 "same" convolution, instead of a strided gather per row.
struct StridePhases {
  std::int64_t sh, sw, hp, wp;  // strides; the phase planes' rows and columns
  explicit StridePhases(const Conv2dGeometry& g)
      : sh(g.stride_h), sw(g.stride_w), hp((g.h_in + sh - 1) / sh), wp((g.w_in + sw - 1) / sw) {}
  // Also only when the taps outnumber the phases (a 1x1 stride-2 kernel reads one phase of four:
  // splitting all four costs more than gathering it).
  // (Strides beyond the kernel's taps never apply: tested first, they keep the products small.)
  static bool applies(const Conv2dGeometry& g) {
    return (g.stride_h > 1 || g.stride_w > 1) && g.stride_h <= g.kh * g.kw && g.stride_w <= g.kh * g.kw &&
           g.w_out == (g.w_in + g.stride_w - 1) / g.stride_w && g.kh * g.kw > g.stride_h * g.stride_w;
  }
  std::int64_t plane() const { return hp * wp; }
  std::int64_t size(std::int64_t channels) const { return channels * sh * sw * plane(); }  // scratch
  // The stride-1 geometry of one phase plane, for im2col_shifted_plane.
  Conv2dGeometry phase_geometry(const Conv2dGeometry& g) const {
    Conv2dGeometry p = g;
    p.h_in = hp, p.w_in = wp, p.stride_h = p.stride_w = 1;
    return p;
  }
  // Where tap offset t of an axis with stride s reads: phase t mod s, shifted by floor(t / s).
  static std::int64_t phase(std::int64_t t, std::int64_t s) { return ((t % s) + s) % s; }
  static std::int64_t shift(std::int64_t t, std::int64_t s) { return (t - phase(t, s)) / s; }
  // The shift {dh, dw} of tap (i, j) in its phase plane.
  std::pair<std::int64_t, std::int64_t> shifts(const Conv2dGeometry& g, std::int64_t i, std::int64_t j) const {
    return {shift(i * g.dil_h - g.pad_h, sh), shift(j * g.dil_w - g.pad_w, sw)};
  }
  // f(tap, plane, dh, dw) for each tap (c, i, j) of `channels` channels: tap = (c kh + i) kw + j,
  // `plane` the offset of the phase plane it reads (in split_stride_phases' layout), (dh, dw)
  // its shift there.
  template <class F>
  void each_tap(const Conv2dGeometry& g, std::int64_t channels, const F& f) const {
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t i = 0; i < g.kh; ++i)
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const std::int64_t th = i * g.dil_h - g.pad_h, tw = j * g.dil_w - g.pad_w;
          f((c * g.kh + i) * g.kw + j, ((c * sh + phase(th, sh)) * sw + phase(tw, sw)) * plane(), shift(th, sh),
            shift(tw, sw));
        }
  }
};

// q[(c * sh + rp) * sw + cp][r][c'] = x[c][r * sh + rp][c' * sw + cp] (0 past the input): each
// input row is dealt into its row phase's sw column phases (stride 2: simd.hpp's deinterleave).
template <class T>
void split_stride_phases(const Conv2dGeometry& g, const StridePhases& ph, std::int64_t channels, const T* x, T* q) {
  const std::int64_t plane = ph.plane(), sw = ph.sw;
  for (std::int64_t c = 0; c < channels; ++c) {
    T* qc = q + c * ph.sh * sw * plane;
    for (std::int64_t rp = 0; rp < ph.sh; ++rp) {  // rows past the input: zero
      const std::int64_t valid = rp < g.h_in ? (g.h_in - rp + ph.sh - 1) / ph.sh : 0;
      for (std::int64_t cp = 0; cp < sw; ++cp)
        std::fill(qc + (rp * sw + cp) * plane + valid * ph.wp, qc + (rp * sw + cp + 1) * plane, T(0));
    }
    for (std::int64_t ih = 0; ih < g.h_in; ++ih) {
      const T* in = x + (c * g.h_in + ih) * g.w_in;
      T* row = qc + (ih % ph.sh) * sw * plane + (ih / ph.sh) * ph.wp;  // column phase cp at row + cp * plane
      if (sw == 2) {
        const std::int64_t half = g.w_in / 2;
        T* const r[2] = {row, row + plane};
        deinterleave<2>(in, half, r);
        if (g.w_in % 2) r[0][half] = in[2 * half], r[1][half] = T(0);
      } else {
        for (std::int64_t cp = 0; cp < sw; ++cp) {
          T* o = row + cp * plane;
          std::int64_t w = 0;
          for (; w * sw + cp < g.w_in; ++w) o[w] = in[w * sw + cp];
          std::fill(o + w, o + ph.wp, T(0));
        }
      }
    }
  }
}

// x[c][r * sh + rp][c' * sw + cp] = q[...]: the inverse of split_stride_phases on the input.
template <class T>
void join_stride_phases(const Conv2dGeometry& g, const StridePhases& ph, std::int64_t channels, const T* q, T* x) {
  const std::int64_t plane = ph.plane(), sw = ph.sw;
  for (std::int64_t c = 0; c < channels; ++c) {
    const T* qc = q + c * ph.sh * sw * plane;
    for (std::int64_t ih = 0; ih < g.h_in; ++ih) {
      T* out = x + (c * g.h_in + ih) * g.w_in;
      const T* row = qc + (ih % ph.sh) * sw * plane + (ih / ph.sh) * ph.wp;
      if (sw == 2) {
        const std::int64_t half = g.w_in / 2;
        const T* const r[2] = {row, row + plane};
        interleave<2>(r, half, out);
        if (g.w_in % 2) out[2 * half] = r[0][half];
      } else {
        for (std::int64_t cp = 0; cp < sw; ++cp)
          for (std::int64_t w = 0; w * sw + cp < g.w_in; ++w) out[w * sw + cp] = row[cp * plane + w];
      }
    }
  }
}

#if defined(__AVX512F__)
// The taps of a "same" plane (im2col_shifted_plane's case) as masks of 16 outputs: bit q % 16 of
// word q / 16 of a tap's masks is set when its output q = oh * w + ow reads inside the plane.
// With them im2col and col2im move a tap's plane in whole vectors, masked where it reads
// outside: a 7x7 phase plane takes 4 loads and stores instead of a copy and seven pairs of
// fills, whose call and loop overheads made im2col run at a few GB/s on the small planes.
// One table per thread, built when the geometry changes (a convolution calls im2col for each
// image with the same one).
class ShiftedTapMasks {
 public:
  // The masks of tap (i, j) of g; plane geometry gp (g itself, or StridePhases::phase_geometry)
  // and shift(i, j) -> {dh, dw} as im2col uses them.
  template <class Shift>
  static const ShiftedTapMasks& of(const Conv2dGeometry& g, const Conv2dGeometry& gp, const Shift& shift) {
    thread_local ShiftedTapMasks t;
    const std::int64_t key[] = {g.h_in, g.w_in, g.h_out, g.w_out, g.kh, g.kw, g.stride_h, g.stride_w,
                                g.pad_h, g.pad_w, g.dil_h, g.dil_w};
    if (!t.valid_ || !std::equal(std::begin(key), std::end(key), t.key_)) {
      std::copy(std::begin(key), std::end(key), t.key_);
      t.words_ = (gp.h_out * gp.w_in + 15) / 16;
      t.bits_.assign(static_cast<std::size_t>(g.kh * g.kw * t.words_), 0);
      for (std::int64_t i = 0; i < g.kh; ++i)
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const auto [dh, dw] = shift(i, j);
          std::int64_t oh0, oh1, ow0, ow1;
          valid_outputs(dh, 1, gp.h_in, gp.h_out, oh0, oh1);
          valid_outputs(dw, 1, gp.w_in, gp.w_out, ow0, ow1);
          std::uint16_t* b = t.bits_.data() + (i * g.kw + j) * t.words_;
          for (std::int64_t oh = oh0; oh < oh1; ++oh)
            for (std::int64_t q = oh * gp.w_in + ow0; q < oh * gp.w_in + ow1; ++q)
              b[q >> 4] = static_cast<std::uint16_t>(b[q >> 4] | (1u << (q & 15)));
        }
      t.valid_ = true;
    }
    return t;
  }
  const __mmask16* tap(std::int64_t i, std::int64_t j, std::int64_t kw) const { return bits_.data() + (i * kw + j) * words_; }

 private:
  std::int64_t key_[12] = {};
  std::int64_t words_ = 0;
  bool valid_ = false;
  std::vector<std::uint16_t> bits_;
};

// out[q] = src[q] where the tap's masks say so, else 0, for q < hw. src is the plane shifted by
// the tap (dh * w + dw), so it may point before the plane: masked lanes are not read.
inline void im2col_masked_plane(std::int64_t hw, const float* src, const __mmask16* bits, float* out) {
  std::int64_t q = 0;
  for (; q + 16 <= hw; q += 16) _mm512_storeu_ps(out + q, _mm512_maskz_loadu_ps(bits[q >> 4], src + q));
  if (q < hw)
    _mm512_mask_storeu_ps(out + q, static_cast<__mmask16>((1u << (hw - q)) - 1u),
                          _mm512_maskz_loadu_ps(bits[q >> 4], src + q));
}
// The adjoint: dst[q] += col[q] where the masks say so (dst the shifted plane, as src above).
inline void col2im_masked_plane(std::int64_t hw, const float* col, const __mmask16* bits, float* dst) {
  for (std::int64_t q = 0; q < hw; q += 16) {
    const __mmask16 m = bits[q >> 4];
    if (m == 0) continue;
    _mm512_mask_storeu_ps(dst + q, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + q), _mm512_maskz_loadu_ps(m, col + q)));
  }
}
// f(tap, shifted, bits) for each tap of `channels` channels on the stride phase planes
// (StridePhases::each_tap's order): `shifted` where the tap's shifted plane starts in
// split_stride_phases' layout (plane offset + dh * w + dw), `bits` the tap's masks.
template <class F>
void each_masked_tap(const Conv2dGeometry& g, const StridePhases& ph, std::int64_t channels, const F& f) {
  const Conv2dGeometry gp = ph.phase_geometry(g);
  const auto& masks = ShiftedTapMasks::of(g, gp, [&](std::int64_t i, std::int64_t j) { return ph.shifts(g, i, j); });
  ph.each_tap(g, channels, [&](std::int64_t tap, std::int64_t plane, std::int64_t dh, std::int64_t dw) {
    const std::int64_t ij = tap % (g.kh * g.kw);
    f(tap, plane + dh * gp.w_in + dw, masks.tap(ij / g.kw, ij % g.kw, g.kw));
  });
}
#endif

// The adjoint of im2col_shifted_plane: plane += the tap's valid outputs (the wrapped columns,
// zeroed there, add nothing here).
template <class T>
void col2im_shifted_plane(const Conv2dGeometry& g, const T* out, std::int64_t tap_h, std::int64_t tap_w, T* plane) {
  std::int64_t oh0, oh1, ow0, ow1;
  valid_outputs(tap_h, 1, g.h_in, g.h_out, oh0, oh1);
  valid_outputs(tap_w, 1, g.w_in, g.w_out, ow0, ow1);
  for (std::int64_t oh = oh0; oh < oh1; ++oh) {
    T* p = plane + (oh + tap_h) * g.w_in + tap_w;
    const T* o = out + oh * g.w_out;
    for (std::int64_t ow = ow0; ow < ow1; ++ow) p[ow] += o[ow];
  }
}
}  // namespace conv_detail

// col[(c * kh + i) * kw + j][oh * w_out + ow] = x[c][oh*s - p + i*d][ow*s - p + j*d] (0 outside).
// col's rows lie col_ld apart (several images side by side: ImageBlocks). The in-bounds columns
// of each tap are found once, so the inner loop is a plain (for stride 1, contiguous) copy; a
// "same" convolution with stride 1 copies each tap's plane at once, and so does a strided one
// whose output rows are as wide as its phase rows (StridePhases), in scratch `phases` of
// StridePhases::size(channels).
template <class T>
void im2col(const Conv2dGeometry& g, std::int64_t channels, const T* x, T* col, std::int64_t col_ld, T* phases) {
  if (conv_detail::StridePhases::applies(g)) {
    const conv_detail::StridePhases ph(g);
    const Conv2dGeometry gp = ph.phase_geometry(g);
    conv_detail::split_stride_phases(g, ph, channels, x, phases);
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      conv_detail::each_masked_tap(g, ph, channels, [&](std::int64_t tap, std::int64_t shifted, const __mmask16* bits) {
        conv_detail::im2col_masked_plane(gp.h_out * gp.w_out, phases + shifted, bits, col + tap * col_ld);
      });
      return;
    }
#endif
    ph.each_tap(g, channels, [&](std::int64_t tap, std::int64_t plane, std::int64_t dh, std::int64_t dw) {
      conv_detail::im2col_shifted_plane(gp, phases + plane, dh, dw, col + tap * col_ld);
    });
    return;
  }
  if (g.stride_h == 1 && g.stride_w == 1 && g.w_out == g.w_in) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      const auto& masks = conv_detail::ShiftedTapMasks::of(g, g, [&](std::int64_t i, std::int64_t j) {
        return std::pair{i * g.dil_h - g.pad_h, j * g.dil_w - g.pad_w};
      });
      for (std::int64_t c = 0; c < channels; ++c)
        for (std::int64_t i = 0; i < g.kh; ++i)
          for (std::int64_t j = 0; j < g.kw; ++j)
            conv_detail::im2col_masked_plane(g.h_out * g.w_out,
                                             x + c * g.h_in * g.w_in + (i * g.dil_h - g.pad_h) * g.w_in + j * g.dil_w - g.pad_w,
                                             masks.tap(i, j, g.kw), col + ((c * g.kh + i) * g.kw + j) * col_ld);
      return;
    }
#endif
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t i = 0; i < g.kh; ++i)
        for (std::int64_t j = 0; j < g.kw; ++j)
          conv_detail::im2col_shifted_plane(g, x + c * g.h_in * g.w_in, i * g.dil_h - g.pad_h,
                                            j * g.dil_w - g.pad_w, col + ((c * g.kh + i) * g.kw + j) * col_ld);
    return;
  }
  for (std::int64_t c = 0; c < channels; ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * col_ld;
        const T* plane = x + c * g.h_in * g.w_in;
        const std::int64_t tap_w = j * g.dil_w - g.pad_w;
        std::int64_t ow0, ow1;
        conv_detail::valid_outputs(tap_w, g.stride_w, g.w_in, g.w_out, ow0, ow1);
        for (std::int64_t oh = 0; oh < g.h_out; ++oh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + i * g.dil_h;
          T* out = row + oh * g.w_out;
          if (ih < 0 || ih >= g.h_in) {
            std::fill(out, out + g.w_out, T(0));
            continue;
          }
          std::fill(out, out + ow0, T(0));
          if (ow0 < ow1) {
            // Output ow0 reads input column tap_w + ow0 * stride (inside the row; the tap itself
            // may lie far outside it, so no pointer is formed from it).
            const T* in = plane + (ih * g.w_in + (tap_w + ow0 * g.stride_w));
            if (g.stride_w == 1) {
              std::copy(in, in + (ow1 - ow0), out + ow0);
            } else if (g.stride_w == 2) {
              every_second(in, ow1 - ow0, out + ow0);
            } else {
              for (std::int64_t ow = ow0; ow < ow1; ++ow) out[ow] = in[(ow - ow0) * g.stride_w];
            }
          }
          std::fill(out + ow1, out + g.w_out, T(0));
        }
      }
}

// The adjoint of im2col: x += scatter of col (on the strided path of phase planes, x = scatter
// of col: it overwrites x's planes).
template <class T>
void col2im(const Conv2dGeometry& g, std::int64_t channels, const T* col, std::int64_t col_ld, T* x, T* phases) {
  if (conv_detail::StridePhases::applies(g)) {
    const conv_detail::StridePhases ph(g);
    const Conv2dGeometry gp = ph.phase_geometry(g);
    std::fill(phases, phases + ph.size(channels), T(0));
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      conv_detail::each_masked_tap(g, ph, channels, [&](std::int64_t tap, std::int64_t shifted, const __mmask16* bits) {
        conv_detail::col2im_masked_plane(gp.h_out * gp.w_out, col + tap * col_ld, bits, phases + shifted);
      });
      conv_detail::join_stride_phases(g, ph, channels, phases, x);
      return;
    }
#endif
    ph.each_tap(g, channels, [&](std::int64_t tap, std::int64_t plane, std::int64_t dh, std::int64_t dw) {
      conv_detail::col2im_shifted_plane(gp, col + tap * col_ld, dh, dw, phases + plane);
    });
    conv_detail::join_stride_phases(g, ph, channels, phases, x);
    return;
  }
  for (std::int64_t c = 0; c < channels; ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const T* row = col + ((c * g.kh + i) * g.kw + j) * col_ld;
        T* plane = x + c * g.h_in * g.w_in;
        const std::int64_t tap_w = j * g.dil_w - g.pad_w;
        std::int64_t ow0, ow1;
        conv_detail::valid_outputs(tap_w, g.stride_w, g.w_in, g.w_out, ow0, ow1);
        for (std::int64_t oh = 0; oh < g.h_out; ++oh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + i * g.dil_h;
          if (ih < 0 || ih >= g.h_in || ow0 >= ow1) continue;
          T* out = plane + (ih * g.w_in + (tap_w + ow0 * g.stride_w));  // (as in im2col)
          const T* in = row + oh * g.w_out;
          if (g.stride_w == 1) {
            for (std::int64_t ow = ow0; ow < ow1; ++ow) out[ow - ow0] += in[ow];
          } else {
            for (std::int64_t ow = ow0; ow < ow1; ++ow) out[(ow - ow0) * g.stride_w] += in[ow];
          }
        }
      }
}

namespace conv_detail {
// dst [rows, m * hw] = the m images' [rows, hw] planes of src (image stride `image`) side by side,
// and back.
template <class T>
void gather_planes(const T* src, std::int64_t image, std::int64_t rows, std::int64_t hw, std::int64_t m, T* dst) {
  for (std::int64_t b = 0; b < m; ++b)
    for (std::int64_t r = 0; r < rows; ++r) std::copy(src + b * image + r * hw, src + b * image + (r + 1) * hw, dst + r * m * hw + b * hw);
}
template <class T>
void scatter_planes(const T* src, std::int64_t rows, std::int64_t hw, std::int64_t m, T* dst, std::int64_t image) {
  for (std::int64_t b = 0; b < m; ++b)
    for (std::int64_t r = 0; r < rows; ++r) std::copy(src + r * m * hw + b * hw, src + r * m * hw + (b + 1) * hw, dst + b * image + r * hw);
}

// The GEMMs of an im2col convolution run over blocks of images side by side (the columns of
// image b at b * hw), so a small output plane (7x7: 49 columns, one full and one part-filled
// 32-column panel) still makes a GEMM of about 256 columns or more, and the weights are packed
// once per block instead of once per image; the block size balances the threads
// (balanced_block). Per group: W_g [cout_g, kdim] against col [kdim, m * hw].
struct Im2colPlan {
  std::int64_t n, cin_g, cout_g, kdim, hw, per, count, image_in, image_out, phases;
  explicit Im2colPlan(const Conv2dGeometry& g)
      : n(g.n), cin_g(g.c_in / g.groups), cout_g(g.c_out / g.groups), kdim(cin_g * g.kh * g.kw),
        hw(g.h_out * g.w_out),
        per(balanced_block(g.n, (256 + hw - 1) / std::max<std::int64_t>(hw, 1))),
        count((g.n + per - 1) / per), image_in(g.c_in * g.h_in * g.w_in), image_out(g.c_out * hw),
        phases(StridePhases::applies(g) ? StridePhases(g).size(cin_g) : 0) {}
  // The images of block k: from first(k), images(k) of them.
  std::int64_t first(std::int64_t k) const { return k * per; }
  std::int64_t images(std::int64_t k) const { return std::min(per, n - k * per); }
  // A thread's scratch: the column matrix, an output-side [cout_g, per * hw] block, the phases.
  template <class T>
  struct Buffers {
    T *col, *rows, *phases;
  };
  template <class T>
  Buffers<T> buffers() const {
    T* p = scratch<T>(static_cast<std::size_t>((kdim + cout_g) * per * hw + phases));
    return {p, p + kdim * per * hw, p + (kdim + cout_g) * per * hw};
  }
  // The output-side operand [cout_g, m * hw] of group gr for block k of src (y or dy): the
  // plane in place for one image, else gathered into `rows`.
  template <class T>
  const T* gathered(const T* src, std::int64_t k, std::int64_t gr, T* rows) const {
    const T* at = src + first(k) * image_out + gr * cout_g * hw;
    if (images(k) == 1) return at;
    gather_planes(at, image_out, cout_g, hw, images(k), rows);
    return rows;
  }
};
}  // namespace conv_detail

// Per group: y[n, g] = W_g [Cout_g, Cin_g*kh*kw] @ im2col(x[n, g]), a block of images at once.
template <class T>
void im2col_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) {
  const conv_detail::Im2colPlan pl(g);
  parallel_for(0, pl.count, 1, [&](std::int64_t lo, std::int64_t hi) {
    const auto buf = pl.buffers<T>();
    for (std::int64_t k = lo; k < hi; ++k) {
      const std::int64_t n0 = pl.first(k), m = pl.images(k), mc = m * pl.hw;
      for (std::int64_t gr = 0; gr < g.groups; ++gr) {
        for (std::int64_t b = 0; b < m; ++b)
          im2col(g, pl.cin_g, x + (n0 + b) * pl.image_in + gr * pl.cin_g * g.h_in * g.w_in, buf.col + b * pl.hw, mc,
                 buf.phases);
        T* yg = y + n0 * pl.image_out + gr * pl.cout_g * pl.hw;
        gemm_one(false, false, pl.cout_g, mc, pl.kdim, T(1), w + gr * pl.cout_g * pl.kdim, pl.kdim, buf.col, mc, T(0),
                 m == 1 ? yg : buf.rows, m == 1 ? pl.hw : mc);
        if (m > 1) conv_detail::scatter_planes(buf.rows, pl.cout_g, pl.hw, m, yg, pl.image_out);
      }
    }
  });
}

// gx[n, g] = col2im(W_g^T @ gy[n, g]), a block of images at once.
template <class T>
void im2col_conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  const conv_detail::Im2colPlan pl(g);
  const bool phased = conv_detail::StridePhases::applies(g);
  parallel_for(0, pl.count, 1, [&](std::int64_t lo, std::int64_t hi) {
    const auto buf = pl.buffers<T>();
    // This chunk's images, zeroed here for col2im's sums (its strided path writes them whole).
    if (!phased) std::fill(gx + pl.first(lo) * pl.image_in, gx + std::min(pl.first(hi), g.n) * pl.image_in, T(0));
    for (std::int64_t k = lo; k < hi; ++k) {
      const std::int64_t n0 = pl.first(k), m = pl.images(k), mc = m * pl.hw;
      for (std::int64_t gr = 0; gr < g.groups; ++gr) {
        gemm_one(true, false, pl.kdim, mc, pl.cout_g, T(1), w + gr * pl.cout_g * pl.kdim, pl.kdim,
                 pl.gathered(gy, k, gr, buf.rows), m == 1 ? pl.hw : mc, T(0), buf.col, mc);
        for (std::int64_t b = 0; b < m; ++b)
          col2im(g, pl.cin_g, buf.col + b * pl.hw, mc, gx + (n0 + b) * pl.image_in + gr * pl.cin_g * g.h_in * g.w_in,
                 buf.phases);
      }
    }
  });
}

// gw_g = sum_n gy[n, g] @ im2col(x[n, g])^T, blocks of images split over the threads.
template <class T>
void im2col_conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) {
  const conv_detail::Im2colPlan pl(g);
  parallel_sum(pl.count, g.c_out * pl.kdim, gw, [&](std::int64_t lo, std::int64_t hi, T* acc) {
    const auto buf = pl.buffers<T>();
    for (std::int64_t k = lo; k < hi; ++k) {
      const std::int64_t n0 = pl.first(k), m = pl.images(k), mc = m * pl.hw;
      for (std::int64_t gr = 0; gr < g.groups; ++gr) {
        for (std::int64_t b = 0; b < m; ++b)
          im2col(g, pl.cin_g, x + (n0 + b) * pl.image_in + gr * pl.cin_g * g.h_in * g.w_in, buf.col + b * pl.hw, mc,
                 buf.phases);
        gemm_one(false, true, pl.cout_g, pl.kdim, mc, T(1), pl.gathered(gy, k, gr, buf.rows), m == 1 ? pl.hw : mc,
                 buf.col, mc, T(1), acc + gr * pl.cout_g * pl.kdim, pl.kdim);
      }
    }
  });
}

// The convolutions: Winograd where it applies, im2col + GEMM otherwise.
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) {
  if (winograd::applies(g)) return winograd::conv2d_forward(g, x, w, y);
  im2col_conv2d_forward(g, x, w, y);
}
template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  if (winograd::applies(g)) return winograd::conv2d_backward_input(g, gy, w, gx);
  im2col_conv2d_backward_input(g, gy, w, gx);
}
template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) {
  if (winograd::applies(g)) return winograd::conv2d_backward_weight(g, x, gy, gw);
  im2col_conv2d_backward_weight(g, x, gy, gw);
}

// Both gradients (either output may be null): Winograd computes them in one pass over the
// chunks, transforming dY once; otherwise the two above.
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* gy, const T* w, T* gx, T* gw) {
  if (gx && gw && winograd::applies(g)) return winograd::conv2d_backward(g, x, gy, w, gx, gw);
  if (gx) conv2d_backward_input(g, gy, w, gx);
  if (gw) conv2d_backward_weight(g, x, gy, gw);
}

// Pooling and interpolation run the CUDA kernels' thread bodies (backend/kernels/pool.hpp),
// one output plane per task: the backward bodies scatter into their own input plane only, so
// planes never race, and both devices compute the same windows with the same arithmetic.
// A body with a plane(p) loop (no index arithmetic per element) runs that.
template <class Body>
void for_each_plane(std::int64_t planes, std::int64_t per_plane, const Body& body) {
  parallel_for(0, planes, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(per_plane, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 if constexpr (requires { body.plane(lo); }) {
                   for (std::int64_t p = lo; p < hi; ++p) body.plane(p);
                 } else {
                   for (std::int64_t o = lo * per_plane; o < hi * per_plane; ++o) body(o);
                 }
               });
}

namespace pool_detail {
// Max-pooling with 2x2 windows at stride 2 inside the input (no padding, no dilation, no partial
// window): the common case, in two vectorisable passes instead of a branch per tap (on random
// data each of those mispredicts half the time). A pass per row pair keeps each column's winner
// of the two rows; one pass over the whole plane then keeps the winner of each column pair.
// Winner means what the generic kernel computes: the first NaN in row-major order, else the
// largest value, the first in row-major order among equals.
inline bool is_2x2_stride_2(const Pool2dGeometry& g) {
  return g.kh == 2 && g.kw == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0 &&
         g.dil_h == 1 && g.dil_w == 1 && 2 * g.h_out <= g.h_in && 2 * g.w_out <= g.w_in;
}
template <class T>
void max_pool_2x2_plane(const Pool2dGeometry& g, const T* x, T* y, std::int64_t* argmax, T* m, std::int64_t* mi) {
  const std::int64_t w_in = g.w_in, cols = 2 * g.w_out, outs = g.h_out * g.w_out;  // locals: no aliasing
  for (std::int64_t oh = 0; oh < g.h_out; ++oh) {
    const std::int64_t i0 = 2 * oh * w_in, i1 = i0 + w_in;
    const T *r0 = x + i0, *r1 = x + i1;
    T* mr = m + oh * cols;
    std::int64_t* ir = mi + oh * cols;
    for (std::int64_t c = 0; c < cols; ++c) {
      const bool low = !(r1[c] <= r0[c]) & (r0[c] == r0[c]);  // greater, or NaN below a number
      mr[c] = low ? r1[c] : r0[c];
      ir[c] = low ? i1 + c : i0 + c;
    }
  }
  // The column pairs of all rows at once: output o is the pair (2 o, 2 o + 1).
  for (std::int64_t o = 0; o < outs; ++o) {
    const T a = m[2 * o], b = m[2 * o + 1];
    const std::int64_t ia = mi[2 * o], ib = mi[2 * o + 1];
    const bool a_nan = a != a, a_num = a == a, b_nan = b != b, before = ib < ia;  // bitwise: no branches
    const bool right = (a_nan & b_nan & before) | (a_num & (b_nan | (b > a) | ((b == a) & before)));
    y[o] = right ? b : a;
    argmax[o] = right ? ib : ia;
  }
}
}  // namespace pool_detail

template <class T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int64_t* argmax) {
  if (pool_detail::is_2x2_stride_2(g)) {
    parallel_for(0, g.n * g.c, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(g.h_out * g.w_out, 1)),
                 [&](std::int64_t lo, std::int64_t hi) {
                   T* m = scratch<T>(static_cast<std::size_t>(2 * g.h_out * g.w_out));
                   std::int64_t* mi = scratch<std::int64_t>(static_cast<std::size_t>(2 * g.h_out * g.w_out));
                   for (std::int64_t p = lo; p < hi; ++p)
                     pool_detail::max_pool_2x2_plane(g, x + p * g.h_in * g.w_in, y + p * g.h_out * g.w_out,
                                                     argmax + p * g.h_out * g.w_out, m, mi);
                 });
    return;
  }
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
