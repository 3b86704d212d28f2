// IDX files (the MNIST format), gzip-compressed or plain, and Fashion-MNIST from Debian's
// dataset-fashion-mnist package.
//
// An IDX file: two zero bytes, a type byte (0x08: unsigned bytes, the only type MNIST uses),
// the number of dims, each dim as a big-endian uint32, then the data. The reader checks every
// one of these against the file's real size, so a truncated or hostile file is an error that
// names the file, never a crash.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ligm/ops/copy.hpp"
#include "ligm/ops/creation.hpp"

namespace ligm::data {

struct IdxArray {
  Shape shape;
  std::vector<unsigned char> values;  // row-major
};

inline IdxArray read_idx(const std::string& path) {
  const char* op = "read_idx";
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  check(f != nullptr, op, "cannot open ", path);
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const std::string why = gzerror(f, &code);
      gzclose(f);
      fail(op, path, " is not a readable gzip or IDX file (", why, ")");
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), buf, buf + n);
    check(bytes.size() <= (std::size_t(1) << 34), op, path, " is larger than 16 GiB uncompressed");
  }
  gzclose(f);
  check(bytes.size() >= 4 && bytes[0] == 0 && bytes[1] == 0, op, path,
        " is not an IDX file (it does not start with two zero bytes)");
  check(bytes[2] == 0x08, op, path, ": IDX type 0x", std::hex, int(bytes[2]), std::dec,
        " is not supported (only 0x08, unsigned bytes)");
  const int ndims = bytes[3];
  check(ndims >= 1 && bytes.size() >= 4 + 4 * std::size_t(ndims), op, path, ": truncated header (",
        ndims, " dims)");
  IdxArray a;
  std::uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    const unsigned char* p = bytes.data() + 4 + 4 * d;
    const std::uint64_t size = (std::uint64_t(p[0]) << 24) | (std::uint64_t(p[1]) << 16) |
                               (std::uint64_t(p[2]) << 8) | std::uint64_t(p[3]);
    total *= size;
    check(total <= bytes.size(), op, path, ": dims ", a.shape, " x ", size, " exceed the file's ",
          bytes.size(), " bytes");
    a.shape.push_back(std::int64_t(size));
  }
  const std::size_t start = 4 + 4 * std::size_t(ndims);
  check(bytes.size() - start == total, op, path, ": the header promises ", total, " values of shape ",
        a.shape, ", the file holds ", bytes.size() - start);
  a.values.assign(bytes.begin() + std::ptrdiff_t(start), bytes.end());
  return a;
}

// Images [N, H, W] of bytes -> float [N, 1, H, W] in [0, 1].
inline Tensor<float> idx_images(const std::string& path) {
  const IdxArray a = read_idx(path);
  check(a.shape.size() == 3, "idx_images", path, " holds shape ", a.shape, ", expected [N, H, W]");
  std::vector<float> v(a.values.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(a.values[i]) / 255.0f;
  return tensor<float>(v, {a.shape[0], 1, a.shape[1], a.shape[2]});
}

inline Tensor<std::int64_t> idx_labels(const std::string& path) {
  const IdxArray a = read_idx(path);
  check(a.shape.size() == 1, "idx_labels", path, " holds shape ", a.shape, ", expected [N]");
  return tensor<std::int64_t>(std::vector<std::int64_t>(a.values.begin(), a.values.end()), a.shape);
}

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
