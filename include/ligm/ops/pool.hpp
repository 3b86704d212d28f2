// max_pool2d, avg_pool2d, adaptive_avg_pool2d and interpolate (nearest, bilinear).
#pragma once
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ligm/ops/conv.hpp"

namespace ligm {

struct MaxPool2dOptions {
  Pair2 kernel_size;
  std::optional<Pair2> stride = std::nullopt;  // default: kernel_size
  Pair2 padding = 0, dilation = 1;
  bool ceil_mode = false;
};

struct AvgPool2dOptions {
  Pair2 kernel_size;
  std::optional<Pair2> stride = std::nullopt;
  Pair2 padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
  std::int64_t divisor_override = 0;
};

namespace ops_detail {
// PyTorch's pooling output size, including the ceil_mode rule that the last window must start
// inside the input or the left padding.
// (In 128 bits, as conv_out: the arguments may be anything a caller passes.)
inline std::int64_t pool_out(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p,
                             std::int64_t d, bool ceil_mode, const char* op) {
  const __int128 span = __int128(in) + 2 * __int128(p) - __int128(d) * (__int128(k) - 1) - 1 + (ceil_mode ? s - 1 : 0);
  __int128 out = (span >= 0 ? span / s : -1) + 1;
  if (ceil_mode && (out - 1) * s >= __int128(in) + p) --out;
  return output_size(out, op);
}

template <class T>
Pool2dGeometry pool_geometry(const char* op, const Tensor<T>& x, Pair2 k, std::optional<Pair2> stride,
                             Pair2 pad, Pair2 dil, bool ceil_mode) {
  floating_only<T>(op);
  defined_or_fail(x, op, "the input");
  check(x.dim() == 4, op, "expects a 4-d input [N, C, H, W], got ", x.describe());
  check(x.shape()[2] > 0 && x.shape()[3] > 0, op, "the input's planes must not be empty, got ", x.describe());
  const Pair2 s = stride.value_or(k);
  check(k.h > 0 && k.w > 0 && s.h > 0 && s.w > 0 && dil.h > 0 && dil.w > 0, op,
        "kernel_size, stride and dilation must be positive");
  check(pad.h >= 0 && pad.w >= 0 && pad.h <= k.h / 2 && pad.w <= k.w / 2, op,
        "padding should be at most half the kernel size, got padding (", pad.h, ", ", pad.w,
        ") for kernel (", k.h, ", ", k.w, ")");
  Pool2dGeometry g{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], 0, 0, k.h, k.w,
                   s.h, s.w, pad.h, pad.w, dil.h, dil.w};
  g.h_out = pool_out(g.h_in, k.h, s.h, pad.h, dil.h, ceil_mode, op);
  g.w_out = pool_out(g.w_in, k.w, s.w, pad.w, dil.w, ceil_mode, op);
  check(g.h_out > 0 && g.w_out > 0, op, "input of shape ", x.shape(), " is too small for kernel (",
        k.h, ", ", k.w, ")");
  return g;
}
}  // namespace ops_detail

// Values and the flat (h * W + w) index of each maximum within its plane.
template <class T>
std::pair<Tensor<T>, Tensor<std::int64_t>> max_pool2d_with_indices(const Tensor<T>& x,
                                                                   const MaxPool2dOptions& o) {
  auto g = ops_detail::pool_geometry("max_pool2d", x, o.kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode);
  auto xc = x.contiguous();
  auto y = Tensor<T>::empty({g.n, g.c, g.h_out, g.w_out}, x.device());
  auto idx = Tensor<std::int64_t>::empty(y.shape(), x.device());
  ops_detail::be(x).max_pool2d_forward(g, xc.data_ptr(), y.data_ptr(), idx.data_ptr());
  autograd::record("MaxPool2dBackward", y, {x},
                   [g, idx, in = x.shape()](const Tensor<T>& gy, const NeedsGrad&) -> std::vector<Tensor<T>> {
                     auto gyc = gy.contiguous();
                     auto gx = Tensor<T>::empty(in, gy.device());
                     ops_detail::be(gy).max_pool2d_backward(g, gyc.data_ptr(), idx.data_ptr(), gx.data_ptr());
                     return {gx};
                   });
  return {y, idx};
}

template <class T>
Tensor<T> max_pool2d(const Tensor<T>& x, const MaxPool2dOptions& o) {
  return max_pool2d_with_indices(x, o).first;
}

template <class T>
Tensor<T> avg_pool2d(const Tensor<T>& x, const AvgPool2dOptions& o) {
  auto g = ops_detail::pool_geometry("avg_pool2d", x, o.kernel_size, o.stride, o.padding, 1, o.ceil_mode);
  g.count_include_pad = o.count_include_pad;
  g.divisor_override = o.divisor_override;
  auto xc = x.contiguous();
  auto y = Tensor<T>::empty({g.n, g.c, g.h_out, g.w_out}, x.device());
  ops_detail::be(x).avg_pool2d_forward(g, xc.data_ptr(), y.data_ptr());
  return autograd::record("AvgPool2dBackward", y, {x},
                          [g, in = x.shape()](const Tensor<T>& gy, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            auto gyc = gy.contiguous();
                            auto gx = Tensor<T>::empty(in, gy.device());
                            ops_detail::be(gy).avg_pool2d_backward(g, gyc.data_ptr(), gx.data_ptr());
                            return {gx};
                          });
}

template <class T>
Tensor<T> adaptive_avg_pool2d(const Tensor<T>& x, Pair2 output_size) {
  const char* op = "adaptive_avg_pool2d";
  ops_detail::floating_only<T>(op);
  check(x.dim() == 4, op, "expects a 4-d input [N, C, H, W], got ", x.describe());
  check(output_size.h > 0 && output_size.w > 0, op, "output size must be positive");
  const auto nc = x.shape()[0] * x.shape()[1], h = x.shape()[2], w = x.shape()[3];
  check(h > 0 && w > 0, op, "the input's planes must not be empty, got ", x.describe());
  const auto ho = output_size.h, wo = output_size.w;
  auto xc = x.contiguous();
  auto y = Tensor<T>::empty({x.shape()[0], x.shape()[1], ho, wo}, x.device());
  ops_detail::be(x).adaptive_avg_pool2d_forward(nc, h, w, ho, wo, xc.data_ptr(), y.data_ptr());
  return autograd::record("AdaptiveAvgPool2dBackward", y, {x},
                          [nc, h, w, ho, wo, in = x.shape()](const Tensor<T>& gy, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            auto gyc = gy.contiguous();
                            auto gx = Tensor<T>::empty(in, gy.device());
                            ops_detail::be(gy).adaptive_avg_pool2d_backward(nc, h, w, ho, wo, gyc.data_ptr(), gx.data_ptr());
                            return {gx};
                          });
}

struct InterpolateOptions {
  std::optional<Pair2> size = std::nullopt;           // output (H, W), or
  std::optional<double> scale_factor = std::nullopt;  // output = floor(input * scale)
  std::string mode = "nearest";       // "nearest" or "bilinear"
  bool align_corners = false;         // bilinear only
};

template <class T>
Tensor<T> interpolate(const Tensor<T>& x, const InterpolateOptions& o) {
  const char* op = "interpolate";
  ops_detail::floating_only<T>(op);
  check(x.dim() == 4, op, "expects a 4-d input [N, C, H, W], got ", x.describe());
  check(o.size.has_value() != o.scale_factor.has_value(), op, "give exactly one of size and scale_factor");
  check(!o.scale_factor || *o.scale_factor > 0, op, "scale_factor must be positive");
  check(o.mode == "nearest" || o.mode == "bilinear", op, "mode must be \"nearest\" or \"bilinear\", got \"", o.mode, "\"");
  check(!(o.align_corners && o.mode == "nearest"), op, "align_corners only applies to bilinear");
  const auto h = x.shape()[2], w = x.shape()[3];
  check(h > 0 && w > 0, op, "the input's planes must not be empty, got ", x.describe());
  auto scaled = [&](std::int64_t size) {  // (checked before the cast: a float beyond int64 has no integer value)
    const double out = std::floor(double(size) * *o.scale_factor);
    check(out < 0x1p62, op, "scale_factor ", *o.scale_factor, " makes an output dim of ", out);
    return static_cast<std::int64_t>(out);
  };
  const std::int64_t ho = o.size ? o.size->h : scaled(h);
  const std::int64_t wo = o.size ? o.size->w : scaled(w);
  check(ho > 0 && wo > 0, op, "output size (", ho, ", ", wo, ") must be positive");
  const InterpMode mode = o.mode == "nearest" ? InterpMode::Nearest : InterpMode::Bilinear;
  const bool ac = o.align_corners;
  const auto nc = x.shape()[0] * x.shape()[1];
  const double ratio = o.scale_factor ? 1.0 / *o.scale_factor : 0.0;  // PyTorch maps with 1/scale
  auto xc = x.contiguous();
  auto y = Tensor<T>::empty({x.shape()[0], x.shape()[1], ho, wo}, x.device());
  ops_detail::be(x).interpolate_forward(mode, ac, nc, h, w, ho, wo, ratio, ratio, xc.data_ptr(), y.data_ptr());
  return autograd::record("InterpolateBackward", y, {x},
                          [mode, ac, nc, h, w, ho, wo, ratio, in = x.shape()](const Tensor<T>& gy, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            auto gyc = gy.contiguous();
                            auto gx = Tensor<T>::empty(in, gy.device());
                            ops_detail::be(gy).interpolate_backward(mode, ac, nc, h, w, ho, wo, ratio, ratio, gyc.data_ptr(), gx.data_ptr());
                            return {gx};
                          });
}

}  // namespace ligm
