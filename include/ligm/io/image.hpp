// PNG images through Debian's stb (libstb-dev): save_image writes one image or a grid of a
// batch, as torchvision.utils.save_image does; load_image reads PNG and BMP into [C, H, W]
// floats in [0, 1] (decode_image the same from bytes in memory). stb's other decoders are left
// out: a hostile file must never crash a reader (tools/fuzz), and the JPEG decoder of Debian
// 12's stb (2.27) writes past a Huffman table on a crafted file (found by tools/fuzz; stb 2.28
// checks the table's size; the input is kept in tests/fuzz/corpus/image/).
//
//   io::save_image(samples, "samples.png", {.nrow = 8});   // samples [B, C, H, W] in [0, 1]
//
// stb's functions are compiled static into each translation unit that includes this header,
// so nothing needs linking (and no other file may define STB_IMAGE(_WRITE)_IMPLEMENTATION
// non-static in the same translation unit).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "ligm/core/file.hpp"
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
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
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

namespace image_detail {
inline std::uint64_t be32(const unsigned char* p) {
  return (std::uint64_t(p[0]) << 24) | (std::uint64_t(p[1]) << 16) | (std::uint64_t(p[2]) << 8) | p[3];
}
inline std::uint64_t le32(const unsigned char* p) {
  return (std::uint64_t(p[3]) << 24) | (std::uint64_t(p[2]) << 16) | (std::uint64_t(p[1]) << 8) | p[0];
}
inline std::uint64_t le16(const unsigned char* p) { return std::uint64_t(p[0]) | (std::uint64_t(p[1]) << 8); }
constexpr std::uint64_t kMaxSide = std::uint64_t(1) << 24;  // stb's own limit (STBI_MAX_DIMENSIONS)

// stb trusts a header's sizes and allocates before it reads: a 75-byte PNG whose IDAT chunk
// claimed 2 GB made it allocate 2 GB (found by tools/fuzz). So the file is checked first: every
// PNG chunk fits in the file and the compressed image data can hold the pixels that IHDR
// declares (deflate expands at most 1032:1); a BMP holds the rows its header declares.
inline void check_sizes(const std::vector<unsigned char>& b, std::string_view source) {
  const char* op = "load_image";
  static constexpr unsigned char kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() >= 8 && std::equal(kPng, kPng + 8, b.begin())) {
    std::uint64_t raw = 0, idat = 0, w = 0, h = 0;
    for (std::size_t at = 8; at < b.size();) {
      check(b.size() - at >= 12, op, source, ": the PNG chunk at byte ", at, " runs past the end (truncated?)");
      const std::uint64_t len = be32(&b[at]);
      check(len <= b.size() - at - 12, op, source, ": the PNG chunk at byte ", at, " declares ", len,
            " bytes, the file has ", b.size() - at - 12, " left (truncated?)");
      const std::string_view type(reinterpret_cast<const char*>(&b[at + 4]), 4);
      if (type == "IHDR" && len >= 13) {
        w = be32(&b[at + 8]), h = be32(&b[at + 12]);
        check(w <= kMaxSide && h <= kMaxSide, op, source, ": a ", w, " x ", h, " image is too large");
        const std::uint64_t depth = b[at + 16], color = b[at + 17];
        const std::uint64_t channels = color == 2 ? 3 : color == 4 ? 2 : color == 6 ? 4 : 1;
        raw = h * ((w * channels * std::min<std::uint64_t>(depth, 16) + 7) / 8 + 1);  // + a filter byte a row
      }
      // (An empty IDAT chunk is legal but useless; before any data stb copies it from a null
      // buffer, undefined behaviour that a compiler may exploit: rejected.)
      check(type != "IDAT" || len > 0, op, source, ": empty PNG image data chunk at byte ", at);
      if (type == "IDAT") idat += len;
      at += 12 + len;
      if (type == "IEND") break;
    }
    check(raw <= 1032 * idat + 1024, op, source, ": ", idat, " bytes of compressed image data cannot hold the ",
          w, " x ", h, " image that the header declares (truncated?)");
  } else if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') {
    check(b.size() >= 30, op, source, ": truncated BMP header");
    const std::uint64_t offset = le32(&b[10]), header = le32(&b[14]);
    const bool core = header == 12;  // OS/2's header: 16-bit sides
    const auto w = core ? std::int64_t(le16(&b[18])) : std::int64_t(std::int32_t(std::uint32_t(le32(&b[18]))));
    const auto h = core ? std::int64_t(le16(&b[20])) : std::int64_t(std::int32_t(std::uint32_t(le32(&b[22]))));
    const std::uint64_t bpp = le16(&b[core ? 24 : 28]);
    const std::uint64_t uw = std::uint64_t(w < 0 ? -w : w), uh = std::uint64_t(h < 0 ? -h : h);
    check(uw <= kMaxSide && uh <= kMaxSide, op, source, ": a ", w, " x ", h, " image is too large");
    const std::uint64_t row = (uw * std::min<std::uint64_t>(bpp, 64) + 31) / 32 * 4;
    check(offset <= b.size() && row * uh <= b.size() - offset, op, source, ": the BMP header declares ", w,
          " x ", h, " pixels of ", bpp, " bits, the file holds ", b.size() - std::min<std::uint64_t>(offset, b.size()),
          " bytes of them (truncated?)");
  }
}
}  // namespace image_detail

// Decodes the bytes of a PNG or BMP file as [C, H, W] in [0, 1] (C as stored: 1 grey,
// 2 grey + alpha, 3 RGB, 4 RGBA); `source` names the file in errors.
template <class T = float>
Tensor<T> decode_image(const std::vector<unsigned char>& bytes, std::string_view source = "buffer") {
  check(bytes.size() <= std::size_t(std::numeric_limits<int>::max()), "load_image", source, " is too large (",
        bytes.size(), " bytes)");
  image_detail::check_sizes(bytes, source);
  int w = 0, h = 0, c = 0;
  unsigned char* data = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &c, 0);
  check(data != nullptr, "load_image", "cannot read \"", source, "\": ", stbi_failure_reason());
  std::vector<T> v(std::size_t(w) * std::size_t(h) * std::size_t(c));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = T(data[i]) / T(255);
  stbi_image_free(data);
  return tensor<T>(v, {h, w, c}).permute({2, 0, 1}).contiguous();
}

// Reads an image file as [C, H, W] in [0, 1] (decode_image).
template <class T = float>
Tensor<T> load_image(const std::string& path) {
  return decode_image<T>(read_file(path, "load_image"), path);
}

}  // namespace ligm::io
