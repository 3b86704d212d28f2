// Transforms for image batches x [B, C, H, W] (values in [0, 1] for the colour transforms),
// with torchvision's names and meanings. Each is a function object
// `Tensor<T> operator()(const Tensor<T>& x, Generator& gen)` that draws its own parameters per
// image from `gen`, so a batch is augmented image by image and a seed reproduces it. They run
// on the batch's device: random parameters are drawn on the host, the pixels move with tensor
// ops (gather, where, grouped convolution).
//
//   data::Compose<float> aug({data::RandomResizedCrop<float>(28, {0.2, 1.0}), data::RandomHorizontalFlip<float>(),
//                             data::GaussianBlur<float>(3, {0.1, 2.0}, 0.5)});
//   data::TwoViews<float> views(aug, aug);        // SimCLR/BYOL: two independent views
//   auto [v1, v2] = views(x, gen);
#pragma once
#include <array>
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "ligm/data/loader.hpp"
#include "ligm/ops/conv.hpp"
#include "ligm/ops/creation.hpp"
#include "ligm/ops/elementwise.hpp"
#include "ligm/ops/movement.hpp"
#include "ligm/ops/reduce.hpp"

namespace ligm::data {

namespace transforms_detail {
constexpr double kPi = 3.14159265358979323846;

// n uniform draws in [lo, hi) on the host.
inline std::vector<double> uniform(std::int64_t n, double lo, double hi, Generator& gen) {
  return rand<double>({n}, gen, Device::cpu(), lo, hi).to_vector();
}
// Per image: true with probability p, as a [B, 1, 1, 1] mask on `device`.
inline Tensor<bool> coin(std::int64_t n, double p, Generator& gen, Device device) {
  const auto u = uniform(n, 0, 1, gen);
  auto t = Tensor<bool>::empty({n, 1, 1, 1});
  for (std::int64_t i = 0; i < n; ++i) t.data_ptr()[i] = u[std::size_t(i)] < p;
  return t.to(device);
}
template <class T>
void check_images(const Tensor<T>& x, const char* op) {
  check(x.dim() == 4, op, "expects an image batch [B, C, H, W], got ", x.describe());
}
// Per-image values [B] as a [B, 1, 1, 1] tensor on `device`.
template <class T>
Tensor<T> per_image(const std::vector<double>& v, Device device) {
  std::vector<T> c(v.begin(), v.end());
  return tensor<T>(c, {std::int64_t(v.size()), 1, 1, 1}).to(device);
}

// The 2x3 map from an output pixel's centre (u, v) to input coordinates (x, y), where input
// pixel (i, j) has its centre at (j + 0.5, i + 0.5): x = a[0] u + a[1] v + a[2], y = a[3] u + a[4] v + a[5].
using Affine = std::array<double, 6>;

// Resamples every image of x by its own affine map (bilinear; `fill` outside the image) to
// out_h x out_w. Integer translations copy pixels exactly.
template <class T>
Tensor<T> warp_affine(const Tensor<T>& x, const std::vector<Affine>& maps, std::int64_t out_h, std::int64_t out_w,
                      double fill = 0.0) {
  const std::int64_t B = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3], P = out_h * out_w;
  check(std::int64_t(maps.size()) == B, "warp_affine", "needs one map per image: ", maps.size(), " for ", B);
  // Four neighbours per output pixel: flat input index (0 when outside) and weight (0 when outside).
  std::vector<std::int64_t> idx(std::size_t(4 * B * P));
  std::vector<T> wgt(std::size_t(4 * B * P)), outside(std::size_t(B * P));
  for (std::int64_t b = 0; b < B; ++b) {
    const Affine& a = maps[std::size_t(b)];
    for (std::int64_t i = 0; i < out_h; ++i)
      for (std::int64_t j = 0; j < out_w; ++j) {
        const double u = double(j) + 0.5, v = double(i) + 0.5;
        const double sx = a[0] * u + a[1] * v + a[2] - 0.5, sy = a[3] * u + a[4] * v + a[5] - 0.5;
        const double fx = std::floor(sx), fy = std::floor(sy), tx = sx - fx, ty = sy - fy;
        const std::int64_t x0 = std::int64_t(fx), y0 = std::int64_t(fy), p = i * out_w + j;
        double inside = 0;
        for (int k = 0; k < 4; ++k) {
          const std::int64_t yy = y0 + (k >> 1), xx = x0 + (k & 1);
          const double w = ((k >> 1) ? ty : 1 - ty) * ((k & 1) ? tx : 1 - tx);
          const bool in = yy >= 0 && yy < H && xx >= 0 && xx < W;
          const std::size_t at = std::size_t((k * B + b) * P + p);
          idx[at] = in ? yy * W + xx : 0;
          wgt[at] = in ? T(w) : T(0);
          if (in) inside += w;
        }
        outside[std::size_t(b * P + p)] = T(1 - inside);
      }
  }
  const Device dev = x.device();
  auto flat = x.reshape({B, C, H * W});
  auto index = tensor<std::int64_t>(idx, {4, B, 1, P}).to(dev);
  auto weight = tensor<T>(wgt, {4, B, 1, P}).to(dev);
  Tensor<T> out = mul(tensor<T>(outside, {B, 1, P}).to(dev), T(fill));
  for (std::int64_t k = 0; k < 4; ++k)
    out = add(out, mul(gather(flat, 2, index.select(0, k).expand({B, C, P})), weight.select(0, k)));
  return out.reshape({B, C, out_h, out_w});
}

// Per-channel 1-d convolution of every image with its own kernel along dim 2 (vertical) or
// 3 (horizontal), with reflected borders (torchvision's GaussianBlur). kernels [B, k].
template <class T>
Tensor<T> separable_pass(const Tensor<T>& x, const Tensor<T>& kernels, std::int64_t dim) {
  const std::int64_t B = x.shape()[0], C = x.shape()[1], n = x.shape()[dim], k = kernels.shape()[1], r = k / 2;
  std::vector<std::int64_t> reflect;
  for (std::int64_t i = -r; i < n + r; ++i) {
    std::int64_t j = i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i);
    reflect.push_back(std::clamp<std::int64_t>(j, 0, n - 1));
  }
  auto padded = index_select(x, dim, tensor<std::int64_t>(reflect, {std::int64_t(reflect.size())}).to(x.device()));
  Shape ks = dim == 2 ? Shape{B * C, 1, k, 1} : Shape{B * C, 1, 1, k};
  auto w = kernels.unsqueeze(1).expand({B, C, k}).reshape(ks);
  auto y = conv2d(padded.reshape({1, B * C, padded.shape()[2], padded.shape()[3]}), w, Tensor<T>(),
                  Conv2dOptions{.groups = B * C});
  return y.reshape(x.shape());
}
}  // namespace transforms_detail

// (x - mean[c]) / std[c].
template <class T = float>
struct Normalize {
  std::vector<double> mean, std;
  Tensor<T> operator()(const Tensor<T>& x, Generator& = default_generator()) const {
    transforms_detail::check_images(x, "Normalize");
    check(std::int64_t(mean.size()) == x.shape()[1] && std::int64_t(std.size()) == x.shape()[1], "Normalize",
          "needs one mean and std per channel: ", mean.size(), " and ", std.size(), " for ", x.shape()[1], " channels");
    std::vector<T> m(mean.begin(), mean.end()), s(std.begin(), std.end());
    const std::int64_t C = x.shape()[1];
    return div(sub(x, tensor<T>(m, {1, C, 1, 1}).to(x.device())), tensor<T>(s, {1, C, 1, 1}).to(x.device()));
  }
};

// Pads by `padding` (fill 0) and crops size x size at a random position per image.
template <class T = float>
struct RandomCrop {
  std::int64_t size;
  std::int64_t padding = 0;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    transforms_detail::check_images(x, "RandomCrop");
    const std::int64_t B = x.shape()[0], H = x.shape()[2] + 2 * padding, W = x.shape()[3] + 2 * padding;
    check(size <= H && size <= W, "RandomCrop", "crop ", size, " is larger than the padded image ", H, "x", W);
    const auto u = transforms_detail::uniform(2 * B, 0, 1, gen);
    std::vector<transforms_detail::Affine> maps;
    for (std::int64_t b = 0; b < B; ++b) {
      const double top = std::floor(u[std::size_t(2 * b)] * double(H - size + 1)) - double(padding);
      const double left = std::floor(u[std::size_t(2 * b + 1)] * double(W - size + 1)) - double(padding);
      maps.push_back({1, 0, left, 0, 1, top});
    }
    return transforms_detail::warp_affine(x, maps, size, size);
  }
};

// torchvision's RandomResizedCrop: a crop of random area (scale of the image) and aspect
// ratio (log-uniform), resized bilinearly to size x size; the centre crop after 10 failed tries.
template <class T = float>
struct RandomResizedCrop {
  std::int64_t size;
  std::pair<double, double> scale = {0.08, 1.0};
  std::pair<double, double> ratio = {3.0 / 4.0, 4.0 / 3.0};
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    transforms_detail::check_images(x, "RandomResizedCrop");
    const std::int64_t B = x.shape()[0];
    const double H = double(x.shape()[2]), W = double(x.shape()[3]);
    const auto u = transforms_detail::uniform(B * 40, 0, 1, gen);
    std::vector<transforms_detail::Affine> maps;
    for (std::int64_t b = 0; b < B; ++b) {
      double h = 0, w = 0, top = 0, left = 0;
      bool found = false;
      for (int t = 0; t < 10 && !found; ++t) {
        const double* r = u.data() + (b * 10 + t) * 4;
        const double area = H * W * (scale.first + r[0] * (scale.second - scale.first));
        const double aspect = std::exp(std::log(ratio.first) + r[1] * (std::log(ratio.second) - std::log(ratio.first)));
        w = std::round(std::sqrt(area * aspect));
        h = std::round(std::sqrt(area / aspect));
        if (w > 0 && h > 0 && w <= W && h <= H) {
          top = std::floor(r[2] * (H - h + 1));
          left = std::floor(r[3] * (W - w + 1));
          found = true;
        }
      }
      if (!found) {  // centre crop at the nearest allowed aspect ratio
        const double in_ratio = W / H;
        if (in_ratio < ratio.first) {
          w = W;
          h = std::round(w / ratio.first);
        } else if (in_ratio > ratio.second) {
          h = H;
          w = std::round(h * ratio.second);
        } else {
          w = W;
          h = H;
        }
        top = std::floor((H - h) / 2);
        left = std::floor((W - w) / 2);
      }
      const double sx = w / double(size), sy = h / double(size);
      maps.push_back({sx, 0, left, 0, sy, top});
    }
    return transforms_detail::warp_affine(x, maps, size, size);
  }
};

template <class T = float>
struct RandomHorizontalFlip {
  double p = 0.5;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    transforms_detail::check_images(x, "RandomHorizontalFlip");
    return where(transforms_detail::coin(x.shape()[0], p, gen, x.device()), flip(x, {3}), x);
  }
};

// Rotates image b by degrees[b] counter-clockwise about its centre (bilinear, `fill` outside).
template <class T>
Tensor<T> rotate(const Tensor<T>& x, const std::vector<double>& degrees, double fill = 0.0) {
  transforms_detail::check_images(x, "rotate");
  const double cx = double(x.shape()[3]) / 2, cy = double(x.shape()[2]) / 2;
  std::vector<transforms_detail::Affine> maps;
  for (double deg : degrees) {
    const double a = deg * transforms_detail::kPi / 180, c = std::cos(a), s = std::sin(a);
    // The output pixel at offset (du, dv) from the centre reads the input at offset
    // (c du - s dv, s du + c dv): with y pointing down, the picture turns counter-clockwise
    // (at 90 degrees, output row i is input column W-1-i).
    maps.push_back({c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy});
  }
  return transforms_detail::warp_affine(x, maps, x.shape()[2], x.shape()[3], fill);
}

// Rotation by an angle drawn uniformly from [-degrees, degrees] (torchvision's RandomRotation).
template <class T = float>
struct RandomRotation {
  double degrees;
  double fill = 0.0;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    transforms_detail::check_images(x, "RandomRotation");
    return rotate(x, transforms_detail::uniform(x.shape()[0], -degrees, degrees, gen), fill);
  }
};

// Gaussian blur with sigma uniform in [sigma.first, sigma.second] per image, applied with
// probability p, reflected borders; kernel_size odd.
template <class T = float>
struct GaussianBlur {
  std::int64_t kernel_size = 3;
  std::pair<double, double> sigma = {0.1, 2.0};
  double p = 1.0;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    transforms_detail::check_images(x, "GaussianBlur");
    check(kernel_size > 0 && kernel_size % 2 == 1, "GaussianBlur", "kernel_size must be odd, got ", kernel_size);
    const std::int64_t B = x.shape()[0], r = kernel_size / 2;
    const auto sig = transforms_detail::uniform(B, sigma.first, sigma.second, gen);
    const auto pick = transforms_detail::coin(B, p, gen, x.device());
    std::vector<T> k;
    for (double s : sig) {
      double total = 0;
      std::vector<double> row;
      for (std::int64_t i = -r; i <= r; ++i) total += row.emplace_back(std::exp(-0.5 * double(i * i) / (s * s)));
      for (double v : row) k.push_back(T(v / total));
    }
    auto kernels = tensor<T>(k, {B, kernel_size}).to(x.device());
    auto blurred = transforms_detail::separable_pass(transforms_detail::separable_pass(x, kernels, 2), kernels, 3);
    return where(pick, blurred, x);
  }
};

// x + N(0, std^2) noise, per image with probability p.
template <class T = float>
struct GaussianNoise {
  double std = 0.1;
  double p = 1.0;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    transforms_detail::check_images(x, "GaussianNoise");
    auto pick = transforms_detail::coin(x.shape()[0], p, gen, x.device());
    return where(pick, add(x, randn<T>(x.shape(), gen, x.device(), 0.0, std)), x);
  }
};

// Pixels >= threshold become max_value - pixel, per image with probability p.
template <class T = float>
struct RandomSolarize {
  double threshold = 0.5;
  double p = 0.2;
  double max_value = 1.0;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    transforms_detail::check_images(x, "RandomSolarize");
    auto pick = transforms_detail::coin(x.shape()[0], p, gen, x.device());
    auto solarized = where(ge(x, scalar_tensor<T>(T(threshold), x.device())), sub(T(max_value), x), x);
    return where(pick, solarized, x);
  }
};

namespace transforms_detail {
// ITU-R 601 luma of RGB images [B, 3, H, W] -> [B, 1, H, W].
template <class T>
Tensor<T> luma(const Tensor<T>& x) {
  return add(add(mul(x.narrow(1, 0, 1), T(0.299)), mul(x.narrow(1, 1, 1), T(0.587))), mul(x.narrow(1, 2, 1), T(0.114)));
}
}  // namespace transforms_detail

// Converts RGB images to grey (three equal channels) with probability p.
template <class T = float>
struct RandomGrayscale {
  double p = 0.2;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    transforms_detail::check_images(x, "RandomGrayscale");
    check(x.shape()[1] == 3, "RandomGrayscale", "needs RGB images [B, 3, H, W], got ", x.describe());
    auto pick = transforms_detail::coin(x.shape()[0], p, gen, x.device());
    return where(pick, transforms_detail::luma(x).expand(x.shape()), x);
  }
};

// torchvision's ColorJitter, per image with probability p: brightness, contrast and
// saturation factors uniform in [1 - v, 1 + v], hue shift uniform in [-hue, hue] turns of the
// colour wheel (hue needs RGB; ligm rotates chroma in YIQ space, a close approximation of
// torchvision's HSV shift), each followed by clamping to [0, 1]; a fixed order.
template <class T = float>
struct ColorJitter {
  double brightness = 0, contrast = 0, saturation = 0, hue = 0;
  double p = 1.0;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    using namespace transforms_detail;
    check_images(x, "ColorJitter");
    const std::int64_t B = x.shape()[0];
    const bool rgb = x.shape()[1] == 3;
    check(rgb || (saturation == 0 && hue == 0), "ColorJitter", "saturation and hue need RGB images, got ",
          x.describe());
    const Device dev = x.device();
    auto y = x;
    if (brightness > 0) y = clamp(mul(y, per_image<T>(uniform(B, 1 - brightness, 1 + brightness, gen), dev)), 0, 1);
    if (contrast > 0) {
      auto m = (rgb ? luma(y) : y.mean({1}, true)).mean({2, 3}, true);
      y = clamp(add(mul(sub(y, m), per_image<T>(uniform(B, 1 - contrast, 1 + contrast, gen), dev)), m), 0, 1);
    }
    if (saturation > 0) {
      auto g = luma(y);
      y = clamp(add(mul(sub(y, g), per_image<T>(uniform(B, 1 - saturation, 1 + saturation, gen), dev)), g), 0, 1);
    }
    if (hue > 0) {
      // YIQ: rotate (I, Q) by 2 pi h.
      const auto h = uniform(B, -hue, hue, gen);
      std::vector<double> c, s;
      for (double v : h) {
        c.push_back(std::cos(2 * kPi * v));
        s.push_back(std::sin(2 * kPi * v));
      }
      auto R = y.narrow(1, 0, 1), G = y.narrow(1, 1, 1), Bc = y.narrow(1, 2, 1);
      auto Y = luma(y);
      auto I = add(add(mul(R, T(0.596)), mul(G, T(-0.274))), mul(Bc, T(-0.322)));
      auto Q = add(add(mul(R, T(0.211)), mul(G, T(-0.523))), mul(Bc, T(0.312)));
      auto ct = per_image<T>(c, dev), st = per_image<T>(s, dev);
      auto I2 = sub(mul(I, ct), mul(Q, st)), Q2 = add(mul(I, st), mul(Q, ct));
      auto r = add(add(Y, mul(I2, T(0.956))), mul(Q2, T(0.621)));
      auto g = add(add(Y, mul(I2, T(-0.272))), mul(Q2, T(-0.647)));
      auto b = add(add(Y, mul(I2, T(-1.106))), mul(Q2, T(1.703)));
      y = clamp(cat<T>({r, g, b}, 1), 0, 1);
    }
    return where(coin(B, p, gen, dev), y, x);
  }
};

// Applies transforms in order.
template <class T = float>
struct Compose {
  std::vector<Transform<T>> transforms;
  Tensor<T> operator()(const Tensor<T>& x, Generator& gen) const {
    Tensor<T> y = x;
    for (const auto& t : transforms) y = t(y, gen);
    return y;
  }
};

// Two independently augmented views of the same batch (SimCLR, BYOL, DINO).
template <class T = float>
struct TwoViews {
  Transform<T> first, second;
  std::pair<Tensor<T>, Tensor<T>> operator()(const Tensor<T>& x, Generator& gen) const {
    return {first(x, gen), second(x, gen)};
  }
};

}  // namespace ligm::data
