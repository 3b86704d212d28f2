// IDX files (the MNIST format), gzip-compressed or plain, and Fashion-MNIST from Debian's
// dataset-fashion-mnist package.
//
// An IDX file: two zero bytes, a type byte (0x08: unsigned bytes, the only type MNIST uses),
// the number of dims, each dim as a big-endian uint32, then the data. The reader checks every
// one of these against the file's real size, so a truncated or hostile file is an error that
// names the file, never a crash. parse_idx reads the bytes of a file in memory (tests/fuzz
// fuzzes it); read_idx a file.
#pragma once
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ligm/core/file.hpp"
#include "ligm/ops/copy.hpp"
#include "ligm/ops/creation.hpp"

namespace ligm::data {

struct IdxArray {
  Shape shape;
  std::vector<unsigned char> values;  // row-major
};

namespace idx_detail {
constexpr std::size_t kMaxBytes = std::size_t(1) << 34;  // 16 GiB uncompressed

// The bytes of a gzip file (every member, as gzip -d reads them), or `in` itself when it does
// not start with gzip's magic bytes.
inline std::vector<unsigned char> gunzip(const std::vector<unsigned char>& in, std::string_view source,
                                         const char* op) {
  if (in.size() < 2 || in[0] != 0x1f || in[1] != 0x8b) return in;
  struct Stream {  // inflateEnd on every way out
    z_stream z{};
    ~Stream() { inflateEnd(&z); }
  } s;
  check(inflateInit2(&s.z, 16 + MAX_WBITS) == Z_OK, op, "zlib cannot start inflating ", source);
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  std::size_t fed = 0;  // bytes of `in` handed to zlib (in pieces: avail_in is 32-bit)
  for (;;) {
    if (s.z.avail_in == 0 && fed < in.size()) {
      const std::size_t piece = std::min<std::size_t>(in.size() - fed, std::size_t(1) << 30);
      s.z.next_in = const_cast<Bytef*>(in.data() + fed);
      s.z.avail_in = static_cast<uInt>(piece);
      fed += piece;
    }
    s.z.next_out = buf;
    s.z.avail_out = sizeof buf;
    const int status = inflate(&s.z, Z_NO_FLUSH);
    out.insert(out.end(), buf, buf + (sizeof buf - s.z.avail_out));
    check(out.size() <= kMaxBytes, op, source, " is larger than 16 GiB uncompressed");
    const bool input_left = s.z.avail_in > 0 || fed < in.size();
    if (status == Z_STREAM_END) {
      if (!input_left) return out;
      // Another member may follow (gzip -d reads concatenated members); anything else is not gzip.
      const std::size_t at = fed - s.z.avail_in;
      check(in.size() - at >= 2 && in[at] == 0x1f && in[at + 1] == 0x8b, op, source, " has ",
            in.size() - at, " bytes after its gzip stream that are not another gzip member");
      check(inflateReset(&s.z) == Z_OK, op, "zlib cannot restart inflating ", source);
      continue;
    }
    if (status == Z_OK || (status == Z_BUF_ERROR && input_left)) continue;
    check(status != Z_BUF_ERROR, op, source, " ends inside its gzip stream (truncated)");
    fail(op, source, " is not a readable gzip file (", s.z.msg ? s.z.msg : "corrupt data", ")");
  }
}
}  // namespace idx_detail

// The array in `bytes` (an IDX file, gzip-compressed or plain); `source` names it in errors.
inline IdxArray parse_idx(const std::vector<unsigned char>& file, std::string_view source = "buffer") {
  const char* op = "read_idx";
  const std::vector<unsigned char> bytes = idx_detail::gunzip(file, source, op);
  check(bytes.size() >= 4 && bytes[0] == 0 && bytes[1] == 0, op, source,
        " is not an IDX file (it does not start with two zero bytes)");
  check(bytes[2] == 0x08, op, source, ": IDX type 0x", std::hex, int(bytes[2]), std::dec,
        " is not supported (only 0x08, unsigned bytes)");
  const int ndims = bytes[3];
  check(ndims >= 1 && bytes.size() >= 4 + 4 * std::size_t(ndims), op, source, ": truncated header (",
        ndims, " dims)");
  IdxArray a;
  std::uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    const unsigned char* p = bytes.data() + 4 + 4 * d;
    const std::uint64_t size = (std::uint64_t(p[0]) << 24) | (std::uint64_t(p[1]) << 16) |
                               (std::uint64_t(p[2]) << 8) | std::uint64_t(p[3]);
    // total <= the file's size <= 2^34 and size < 2^32: the product cannot wrap.
    total *= size;
    check(total <= bytes.size(), op, source, ": dims ", a.shape, " x ", size, " exceed the file's ",
          bytes.size(), " bytes");
    a.shape.push_back(std::int64_t(size));
  }
  const std::size_t start = 4 + 4 * std::size_t(ndims);
  check(bytes.size() - start == total, op, source, ": the header promises ", total, " values of shape ",
        a.shape, ", the file holds ", bytes.size() - start);
  a.values.assign(bytes.begin() + std::ptrdiff_t(start), bytes.end());
  return a;
}

inline IdxArray read_idx(const std::string& path) { return parse_idx(read_file(path, "read_idx"), path); }

// Images [N, H, W] of bytes -> float [N, 1, H, W] in [0, 1]; `source` names the file in errors.
inline Tensor<float> idx_images(const IdxArray& a, std::string_view source = "buffer") {
  check(a.shape.size() == 3, "idx_images", source, " holds shape ", a.shape, ", expected [N, H, W]");
  std::vector<float> v(a.values.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(a.values[i]) / 255.0f;
  return tensor<float>(v, {a.shape[0], 1, a.shape[1], a.shape[2]});
}
inline Tensor<float> idx_images(const std::string& path) { return idx_images(read_idx(path), path); }

inline Tensor<std::int64_t> idx_labels(const IdxArray& a, std::string_view source = "buffer") {
  check(a.shape.size() == 1, "idx_labels", source, " holds shape ", a.shape, ", expected [N]");
  return tensor<std::int64_t>(std::vector<std::int64_t>(a.values.begin(), a.values.end()), a.shape);
}
inline Tensor<std::int64_t> idx_labels(const std::string& path) { return idx_labels(read_idx(path), path); }

inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// split "train" (60000 images) or "test" (10000); images [N, 1, 28, 28] in [0, 1], labels [N].
struct FashionMNIST {
  Tensor<float> images;
  Tensor<std::int64_t> labels;
  static constexpr const char* classes[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

  static FashionMNIST load(const std::string& split, const std::string& dir = kFashionMnistDir) {
    check(split == "train" || split == "test", "FashionMNIST", "split must be \"train\" or \"test\", got \"",
          split, "\"");
    const std::string prefix = dir + "/" + (split == "train" ? "train" : "t10k");
    const std::string images = prefix + "-images-idx3-ubyte.gz", labels = prefix + "-labels-idx1-ubyte.gz";
    if (gzFile probe = gzopen(images.c_str(), "rb")) {
      gzclose(probe);
    } else {
      fail("FashionMNIST", "cannot open ", images,
           ": install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist)");
    }
    FashionMNIST d{idx_images(images), idx_labels(labels)};
    check(d.images.shape()[0] == d.labels.shape()[0], "FashionMNIST", images, " has ", d.images.shape()[0],
          " images but ", labels, " has ", d.labels.shape()[0], " labels");
    return d;
  }
};

}  // namespace ligm::data
