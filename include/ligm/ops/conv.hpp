// conv1d, conv2d (stride, padding, dilation, groups) and conv_transpose2d.
//
// Three backend primitives carry all of them: conv2d forward, its input gradient and its
// weight gradient. A transposed convolution's forward is a convolution's input gradient, and
// its gradients are that convolution's forward and weight gradient.
#pragma once
#include <vector>

#include "ligm/ops/matmul.hpp"

namespace ligm {

// One int for both spatial dims, or {h, w}.
struct Pair2 {
  std::int64_t h = 0, w = 0;
  Pair2() = default;
  Pair2(std::int64_t v) : h(v), w(v) {}  // NOLINT: implicit on purpose
  Pair2(std::int64_t h_, std::int64_t w_) : h(h_), w(w_) {}
};

struct Conv2dOptions {
  Pair2 stride = 1, padding = 0, dilation = 1;
  std::int64_t groups = 1;
};

struct ConvTranspose2dOptions {
  Pair2 stride = 1, padding = 0, output_padding = 0, dilation = 1;
  std::int64_t groups = 1;
};

namespace ops_detail {
template <class T>
void check_conv_args(const char* op, const Tensor<T>& x, const Tensor<T>& w, std::int64_t groups,
                     std::int64_t x_channels, std::int64_t w_in_channels) {
  floating_only<T>(op);
  same_device(x, w, op);
  check(x.dim() == 4 && w.dim() == 4, op, "expects a 4-d input and weight, got input ",
        x.shape(), " and weight ", w.shape(), " (", dtype_name<T>(), ", ", x.device().str(), ")");
  check(groups >= 1 && x_channels % groups == 0, op, "input channels ", x_channels,
        " are not divisible by groups ", groups);
  check(x_channels == w_in_channels, op, "input of shape ", x.shape(), " has ", x_channels,
        " channels but weight of shape ", w.shape(), " expects ", w_in_channels,
        " (groups = ", groups, ")");
  check(w.shape()[2] > 0 && w.shape()[3] > 0, op, "the kernel must not be empty, got weight ", w.shape());
  // (Padding alone would make an output from an empty plane: its windows would read nothing.)
  check(x.shape()[2] > 0 && x.shape()[3] > 0, op, "the input's planes must not be empty, got ", x.describe());
}

// An output size of a convolution or a pooling, computed in 128 bits from arguments of any
// size: huge paddings, strides or dilations end in this error or a "too small" one, never in
// a signed overflow.
inline std::int64_t output_size(__int128 size, const char* op) {
  check(size <= (__int128(1) << 62), op, "stride, padding, dilation and kernel make an output dim beyond 2^62");
  return size < 0 ? -1 : static_cast<std::int64_t>(size);
}
// (in + 2 p - d (k - 1) - 1) / s + 1: the output length of a convolution along one axis.
inline std::int64_t conv_out(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d,
                             const char* op) {
  const __int128 span = __int128(in) + 2 * __int128(p) - __int128(d) * (__int128(k) - 1) - 1;
  return output_size(span < 0 ? 0 : span / s + 1, op);
}
inline std::int64_t cap_stride(std::int64_t stride, std::int64_t in, std::int64_t pad) {
  return static_cast<std::int64_t>(std::min<__int128>(stride, std::max<__int128>(1, __int128(in) + 2 * __int128(pad))));
}
// The channels a weight's per-group channel count stands for (-1, a mismatch, on overflow).
inline std::int64_t times_groups(std::int64_t per_group, std::int64_t groups) {
  std::int64_t all = 0;
  return __builtin_mul_overflow(per_group, groups, &all) ? -1 : all;
}

template <class T>
Tensor<T> add_channel_bias(const Tensor<T>& y, const Tensor<T>& bias, const char* op) {
  if (!bias.defined()) return y;
  check(bias.dim() == 1 && bias.shape()[0] == y.shape()[1], op, "bias of shape ", bias.shape(),
        " does not match ", y.shape()[1], " output channels");
  return add(y, bias.view({1, -1, 1, 1}));
}
}  // namespace ops_detail

// x [N, C_in, H, W], weight [C_out, C_in / groups, kH, kW], bias [C_out].
template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {},
                 const Conv2dOptions& o = {}) {
  const char* op = "conv2d";
  ops_detail::check_conv_args(op, x, weight, o.groups, x.dim() == 4 ? x.shape()[1] : -1,
                              weight.dim() == 4 ? ops_detail::times_groups(weight.shape()[1], o.groups) : -1);
  check(weight.shape()[0] % o.groups == 0, op, "output channels ", weight.shape()[0],
        " are not divisible by groups ", o.groups);
  check(o.stride.h > 0 && o.stride.w > 0 && o.dilation.h > 0 && o.dilation.w > 0 &&
            o.padding.h >= 0 && o.padding.w >= 0,
        op, "stride and dilation must be positive and padding non-negative");
  Conv2dGeometry g{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], weight.shape()[0], 0, 0,
                   weight.shape()[2], weight.shape()[3], o.stride.h, o.stride.w, o.padding.h,
                   o.padding.w, o.dilation.h, o.dilation.w, o.groups};
  g.h_out = ops_detail::conv_out(g.h_in, g.kh, g.stride_h, g.pad_h, g.dil_h, op);
  g.w_out = ops_detail::conv_out(g.w_in, g.kw, g.stride_w, g.pad_w, g.dil_w, op);
  // A stride longer than the padded input leaves one output whatever its length: cap it there,
  // so that the backends' geometry (phase planes of the stride) stays in range.
  g.stride_h = ops_detail::cap_stride(g.stride_h, g.h_in, g.pad_h);
  g.stride_w = ops_detail::cap_stride(g.stride_w, g.w_in, g.pad_w);
  check(g.h_out > 0 && g.w_out > 0, op, "input of shape ", x.shape(), " is too small for kernel ",
        weight.shape(), " with padding (", g.pad_h, ", ", g.pad_w, ") and dilation (", g.dil_h,
        ", ", g.dil_w, ")");
  auto xc = x.contiguous(), wc = weight.contiguous();
  // No input channels (or images, or filters): every sum is empty, the kernels are not called.
  const bool empty = xc.numel() == 0 || wc.numel() == 0;
  auto y = empty ? zeros<T>({g.n, g.c_out, g.h_out, g.w_out}, x.device())
                 : Tensor<T>::empty({g.n, g.c_out, g.h_out, g.w_out}, x.device());
  if (!empty) {
    ops_detail::count_conv_flops(g);
    ops_detail::be(x).conv2d_forward(g, xc.data_ptr(), wc.data_ptr(), y.data_ptr());
  }
  autograd::record("Conv2dBackward", y, {x, weight},
                   [g, empty, xc = autograd::save(xc), wc = autograd::save(wc)](const Tensor<T>& gy, const NeedsGrad& n)
                       -> std::vector<Tensor<T>> {
                     if (empty || gy.numel() == 0)
                       return {n[0] ? zeros<T>(xc.shape(), xc.device()) : Tensor<T>{},
                               n[1] ? zeros<T>(wc.shape(), wc.device()) : Tensor<T>{}};
                     auto gyc = gy.contiguous();
                     Tensor<T> gx, gw;
                     if (n[0]) gx = Tensor<T>::empty(xc.shape(), xc.device());
                     if (n[1]) gw = Tensor<T>::empty(wc.shape(), wc.device());
                     ops_detail::count_conv_flops(g, int(n[0]) + int(n[1]));
                     ops_detail::be(xc).conv2d_backward(g, xc.data_ptr(), gyc.data_ptr(), wc.data_ptr(),
                                                        n[0] ? gx.data_ptr() : nullptr, n[1] ? gw.data_ptr() : nullptr);
                     return {gx, gw};
                   });
  return ops_detail::add_channel_bias(y, bias, op);
}

struct Conv1dOptions {
  std::int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
};

// x [N, C_in, L], weight [C_out, C_in / groups, k]: a conv2d over a height-1 image.
template <class T>
Tensor<T> conv1d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {},
                 const Conv1dOptions& o = {}) {
  check(x.dim() == 3 && weight.dim() == 3, "conv1d", "expects a 3-d input and weight, got input ",
        x.shape(), " and weight ", weight.shape());
  auto y = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias,
                  {{1, o.stride}, {0, o.padding}, {1, o.dilation}, o.groups});
  return y.squeeze(2);
}

// x [N, C_in, H, W], weight [C_in, C_out / groups, kH, kW], bias [C_out].
template <class T>
Tensor<T> conv_transpose2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {},
                           const ConvTranspose2dOptions& o = {}) {
  const char* op = "conv_transpose2d";
  ops_detail::check_conv_args(op, x, weight, o.groups, x.dim() == 4 ? x.shape()[1] : -1,
                              weight.dim() == 4 ? weight.shape()[0] : -1);
  check(o.stride.h > 0 && o.stride.w > 0 && o.dilation.h > 0 && o.dilation.w > 0 && o.padding.h >= 0 &&
            o.padding.w >= 0 && o.output_padding.h >= 0 && o.output_padding.w >= 0,
        op, "stride and dilation must be positive, padding and output_padding non-negative");
  check(o.output_padding.h < std::max(o.stride.h, o.dilation.h) &&
            o.output_padding.w < std::max(o.stride.w, o.dilation.w),
        op, "output_padding must be smaller than stride or dilation");
  const std::int64_t c_out = ops_detail::times_groups(weight.shape()[1], o.groups);
  check(c_out >= 0, op, "weight of shape ", weight.shape(), " with groups = ", o.groups, " has too many channels");
  const std::int64_t kh = weight.shape()[2], kw = weight.shape()[3];
  const std::int64_t h = x.shape()[2], w = x.shape()[3];
  // (in - 1) s - 2 p + d (k - 1) + output_padding + 1, in 128 bits as conv2d's sizes.
  auto out = [&](std::int64_t in, std::int64_t s, std::int64_t p, std::int64_t d, std::int64_t k, std::int64_t extra) {
    return ops_detail::output_size((__int128(in) - 1) * s - 2 * __int128(p) + __int128(d) * (__int128(k) - 1) + extra + 1, op);
  };
  const std::int64_t h_out = out(h, o.stride.h, o.padding.h, o.dilation.h, kh, o.output_padding.h);
  const std::int64_t w_out = out(w, o.stride.w, o.padding.w, o.dilation.w, kw, o.output_padding.w);
  check(h_out > 0 && w_out > 0, op, "output size (", h_out, ", ", w_out, ") is not positive for input ", x.shape());
  // The convolution whose input gradient this is: input [N, C_out, h_out, w_out] -> x.
  Conv2dGeometry g{x.shape()[0], c_out, h_out, w_out, x.shape()[1], h, w, kh, kw,
                   ops_detail::cap_stride(o.stride.h, h_out, o.padding.h), ops_detail::cap_stride(o.stride.w, w_out, o.padding.w),
                   o.padding.h, o.padding.w, o.dilation.h, o.dilation.w, o.groups};
  auto xc = x.contiguous(), wc = weight.contiguous();
  const bool empty = xc.numel() == 0 || wc.numel() == 0;  // as in conv2d: empty sums, no kernel
  auto y = empty ? zeros<T>({g.n, c_out, h_out, w_out}, x.device()) : Tensor<T>::empty({g.n, c_out, h_out, w_out}, x.device());
  if (!empty) {
    ops_detail::count_conv_flops(g);
    ops_detail::be(x).conv2d_backward_input(g, xc.data_ptr(), wc.data_ptr(), y.data_ptr());
  }
  autograd::record("ConvTranspose2dBackward", y, {x, weight},
                   [g, empty, xc = autograd::save(xc), wc = autograd::save(wc)](const Tensor<T>& gy, const NeedsGrad& n)
                       -> std::vector<Tensor<T>> {
                     if (empty || gy.numel() == 0)
                       return {n[0] ? zeros<T>(xc.shape(), xc.device()) : Tensor<T>{},
                               n[1] ? zeros<T>(wc.shape(), wc.device()) : Tensor<T>{}};
                     auto gyc = gy.contiguous();
                     Tensor<T> gx, gw;
                     ops_detail::count_conv_flops(g, int(n[0]) + int(n[1]));
                     if (n[0]) {
                       gx = Tensor<T>::empty(xc.shape(), xc.device());
                       ops_detail::be(xc).conv2d_forward(g, gyc.data_ptr(), wc.data_ptr(), gx.data_ptr());
                     }
                     if (n[1]) {
                       gw = Tensor<T>::empty(wc.shape(), wc.device());
                       ops_detail::be(xc).conv2d_backward_weight(g, gyc.data_ptr(), xc.data_ptr(), gw.data_ptr());
                     }
                     return {gx, gw};
                   });
  return ops_detail::add_channel_bias(y, bias, op);
}

}  // namespace ligm
