// PNG images through Debian's stb (libstb-dev): save_image writes one image or a grid of a
// batch, as torchvision.utils.save_image does; load_image reads PNG/JPEG/BMP into [C, H, W]
// floats in [0, 1].
//
//   io::save_image(samples, "samples.png", {.nrow = 8});   // samples [B, C, H, W] in [0, 1]
//
// stb's functions are compiled static into each translation unit that includes this header,
// so nothing needs linking (and no other file may define STB_IMAGE(_WRITE)_IMPLEMENTATION
// non-static in the same translation unit).
#pragma once
#include <string>
#include <vector>

#include "ligm/ops/copy.hpp"
#include "ligm/ops/elementwise.hpp"
#include "ligm/ops/movement.hpp"
#include "ligm/ops/reduce.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#endif
#ifndef STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#include <stb/stb_image_write.h>
#ifndef STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace ligm::io {

struct ImageGridOptions {
  std::int64_t nrow = 8;      // images per row of the grid
  std::int64_t padding = 2;   // pixels between images
  double pad_value = 0.0;
  bool normalize = false;     // rescale each image's range to [0, 1] (else clamp to [0, 1])
};

// Tiles x [B, C, H, W] (C = 1 or 3) into a grid [C, rows * (H + p) + p, nrow * (W + p) + p].
template <class T>
Tensor<T> make_grid(const Tensor<T>& x, const ImageGridOptions& o = {}) {
  check(x.dim() == 4 && (x.shape()[1] == 1 || x.shape()[1] == 3), "make_grid",
        "expects images [B, 1 or 3, H, W], got ", x.describe());
  const std::int64_t B = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3], p = o.padding;
  const std::int64_t cols = std::min(o.nrow, B), rows = (B + cols - 1) / cols;
  auto img = x.detach().to(Device::cpu());
  if (o.normalize) {
    auto lo = img.amin({1, 2, 3}, true), hi = img.amax({1, 2, 3}, true);
    img = div(sub(img, lo), clamp_min(sub(hi, lo), 1e-12));
  }
  img = clamp(img, 0.0, 1.0);
  auto grid = full<T>({C, rows * (H + p) + p, cols * (W + p) + p}, T(o.pad_value));
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t r = b / cols, c = b % cols;
    grid.narrow(1, p + r * (H + p), H).narrow(2, p + c * (W + p), W).copy_(img.select(0, b));
  }
  return grid;
}

// Writes [C, H, W] (C = 1 or 3, values in [0, 1]) or a batch [B, C, H, W] as a grid to a PNG.
template <class T>
void save_image(const Tensor<T>& x, const std::string& path, const ImageGridOptions& o = {}) {
  auto img = x.dim() == 4 ? make_grid(x, o) : clamp(x.detach().to(Device::cpu()), 0.0, 1.0);
  check(img.dim() == 3 && (img.shape()[0] == 1 || img.shape()[0] == 3), "save_image",
        "expects an image [1 or 3, H, W] or a batch [B, 1 or 3, H, W], got ", x.describe());
  const int C = int(img.shape()[0]), H = int(img.shape()[1]), W = int(img.shape()[2]);
  const auto v = img.permute({1, 2, 0}).contiguous().to_vector();  // HWC
  std::vector<unsigned char> px(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) px[i] = static_cast<unsigned char>(double(v[i]) * 255.0 + 0.5);
  check(stbi_write_png(path.c_str(), W, H, C, px.data(), W * C) != 0, "save_image", "cannot write \"", path, "\"");
}

// Reads an image file as [C, H, W] in [0, 1] (C as stored: 1 grey, 3 RGB, 4 RGBA).
template <class T = float>
Tensor<T> load_image(const std::string& path) {
  int w = 0, h = 0, c = 0;
  unsigned char* data = stbi_load(path.c_str(), &w, &h, &c, 0);
  check(data != nullptr, "load_image", "cannot read \"", path, "\": ", stbi_failure_reason());
  std::vector<T> v(std::size_t(w) * std::size_t(h) * std::size_t(c));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = T(data[i]) / T(255);
  stbi_image_free(data);
  return tensor<T>(v, {h, w, c}).permute({2, 0, 1}).contiguous();
}

}  // namespace ligm::io
