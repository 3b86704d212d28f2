// data: the IDX reader (Fashion-MNIST, and hostile files), the DataLoader (batches, seeded
// shuffling, drop_last, prefetching gives the same batches).
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <set>

#include "helpers.hpp"

using namespace th;

namespace {
std::string temp_file(const std::string& name, const std::vector<unsigned char>& bytes) {
  const std::string path = "/tmp/ligm_test_" + name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}
}  // namespace

TEST_CASE("data: IDX files, plain or gzip, and the errors of malformed ones") {
  // A plain 2x3 IDX of bytes.
  auto good = temp_file("good.idx", {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255});
  auto a = data::read_idx(good);
  CHECK(a.shape == Shape{2, 3});
  CHECK(a.values.back() == 255);
  check_error([&] { data::read_idx("/tmp/ligm_no_such_file"); }, {"read_idx", "cannot open"});
  check_error([&] { data::read_idx(temp_file("magic.idx", {1, 0, 8, 1, 0, 0, 0, 1, 7})); }, {"not an IDX file"});
  check_error([&] { data::read_idx(temp_file("type.idx", {0, 0, 0x0D, 1, 0, 0, 0, 1, 7})); }, {"not supported"});
  check_error([&] { data::read_idx(temp_file("short.idx", {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2})); },
              {"promises 6 values", "holds 2"});
  check_error([&] { data::read_idx(temp_file("huge.idx", {0, 0, 8, 2, 255, 255, 255, 255, 255, 255, 255, 255})); },
              {"exceed"});
  check_error([&] { data::read_idx(temp_file("hdr.idx", {0, 0, 8, 3, 0, 0})); }, {"truncated header"});
  check_error([&] { data::FashionMNIST::load("train", "/tmp/no_fashion_here"); },
              {"FashionMNIST", "dataset-fashion-mnist"});
  check_error([&] { data::FashionMNIST::load("validation"); }, {"split"});
}

TEST_CASE("data: Fashion-MNIST from Debian's package" * doctest::skip(!std::ifstream(data::kFashionMnistDir + std::string("/t10k-labels-idx1-ubyte.gz")))) {
  auto test = data::FashionMNIST::load("test");
  CHECK(test.images.shape() == Shape{10000, 1, 28, 28});
  CHECK(test.labels.shape() == Shape{10000});
  CHECK(test.images.min().item() == 0.0f);
  CHECK(test.images.max().item() == 1.0f);
  // 1000 images of each class.
  auto counts = sum(one_hot(test.labels, 10), {0}).to_vector();
  CHECK(counts == std::vector<std::int64_t>(10, 1000));
}

TEST_CASE("data: DataLoader batches, shuffles by seed, drops the last batch, prefetches the same batches") {
  auto x = arange<float>(0, 10).reshape({10, 1});
  auto y = arange<std::int64_t>(0, 10);
  data::DataLoader plain(x, y, {.batch_size = 4});
  CHECK(plain.size() == 3);
  std::vector<std::int64_t> sizes, seen;
  for (auto [bx, by] : plain.epoch()) {
    sizes.push_back(bx.shape()[0]);
    for (auto v : by.to_vector()) seen.push_back(v);
    CHECK(bx.reshape({-1}).to<std::int64_t>().to_vector() == by.to_vector());  // pairs stay together
  }
  CHECK(sizes == std::vector<std::int64_t>{4, 4, 2});
  CHECK(seen == arange<std::int64_t>(0, 10).to_vector());
  auto order = [&](bool prefetch, std::uint64_t epoch) {
    data::DataLoader l(x, y, {.batch_size = 3, .shuffle = true, .drop_last = true, .seed = 7, .prefetch = prefetch});
    std::vector<std::int64_t> o;
    for (auto [bx, by] : l.epoch(epoch))
      for (auto v : by.to_vector()) o.push_back(v);
    return o;
  };
  const auto e0 = order(true, 0);
  CHECK(e0.size() == 9);  // drop_last: 3 full batches
  CHECK(std::set<std::int64_t>(e0.begin(), e0.end()).size() == 9);
  CHECK(e0 == order(false, 0));  // prefetching changes nothing
  CHECK(e0 == order(true, 0));   // same seed, same epoch: same order
  CHECK(e0 != order(true, 1));   // the next epoch reshuffles
  check_error([&] { data::DataLoader(x, arange<std::int64_t>(0, 9), {}); }, {"DataLoader", "first dim"});
}

TEST_CASE("data: IDX bytes in memory, gzip members and the errors of broken gzip") {
  const std::vector<unsigned char> plain = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255};
  // gzip of `plain`, written by zlib (one member), then again split in two members.
  auto gz = [](const std::vector<unsigned char>& in) {
    const std::string path = "/tmp/ligm_test_member.gz";
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, in.data(), unsigned(in.size()));
    gzclose(f);
    auto bytes = read_file(path, "test");
    std::remove(path.c_str());
    return bytes;
  };
  const auto one = gz(plain);
  auto two = gz({plain.begin(), plain.begin() + 7});  // a second member follows
  const auto rest = gz({plain.begin() + 7, plain.end()});
  two.insert(two.end(), rest.begin(), rest.end());
  for (const auto& bytes : {plain, one, two}) {
    const auto a = data::parse_idx(bytes, "mem");
    CHECK(a.shape == Shape{2, 3});
    CHECK(a.values == std::vector<unsigned char>(plain.begin() + 12, plain.end()));
  }
  CHECK(data::idx_labels(data::parse_idx({0, 0, 8, 1, 0, 0, 0, 2, 7, 9})).to_vector() == std::vector<std::int64_t>{7, 9});
  check_error([&] { data::idx_images(data::parse_idx(plain, "mem"), "mem"); }, {"idx_images", "mem", "[N, H, W]"});
  // Broken gzip: cut short, followed by bytes that are not another member, corrupted.
  check_error([&] { data::parse_idx({one.begin(), one.end() - 5}, "cut.gz"); }, {"read_idx", "cut.gz", "truncated"});
  auto trailing = one;
  trailing.insert(trailing.end(), {0, 0, 0});
  check_error([&] { data::parse_idx(trailing, "tail.gz"); }, {"tail.gz", "3 bytes after its gzip stream"});
  auto corrupt = one;
  corrupt[corrupt.size() - 6] ^= 0xFF;  // the CRC of the data
  check_error([&] { data::parse_idx(corrupt, "crc.gz"); }, {"crc.gz", "not a readable gzip file"});
}
