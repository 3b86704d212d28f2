// io: .npy files (written by NumPy, round trips, hostile files), PNG grids, metrics JSON
// lines, the progress bar, bfloat16 safetensors.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <ligm/io/io.hpp>

#include "helpers.hpp"

using namespace th;

namespace {
std::string npy(const std::string& name) { return LIGM_GOLDEN_DIR "/npy/" + name; }
std::vector<unsigned char> bytes_of(const std::string& path) { return io::read_file(path, "test"); }
std::string write_bytes(const std::string& name, const std::vector<unsigned char>& b) {
  const std::string path = "/tmp/ligm_test_" + name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  return path;
}
}  // namespace

TEST_CASE("io: .npy files NumPy wrote load with their values") {
  const std::vector<double> a = {0, 0.25, 0.5, 0.75, 1, 1.25};
  for (const char* f : {"f8_2x3.npy", "f4_2x3.npy", "f8_2x3_fortran.npy", "f8_2x3_v2.npy"}) {
    INFO(f);
    auto t = io::load_npy<double>(npy(f));
    CHECK(t.shape() == Shape{2, 3});
    CHECK(t.to_vector() == a);
  }
  auto s = io::load_npy<std::int64_t>(npy("i8_scalar.npy"));
  CHECK(s.dim() == 0);
  CHECK(s.item() == -7);
  CHECK(io::load_npy<std::int64_t>(npy("i4_4.npy")).to_vector() == std::vector<std::int64_t>{1, -2, 3, -4});
  CHECK(io::load_npy<float>(npy("u1_2x2.npy")).to_vector() == std::vector<float>{0, 255, 7, 128});
  CHECK(io::load_npy<std::int64_t>(npy("b1_3.npy")).to_vector() == std::vector<std::int64_t>{1, 0, 1});
  CHECK(io::load_npy<float>(npy("f4_empty_0x3.npy")).shape() == Shape{0, 3});
}

TEST_CASE("io: .npy round trips and hostile files") {
  auto x = randn<float>({3, 1, 4});
  io::save_npy(x, "/tmp/ligm_test_x.npy");
  CHECK(io::load_npy<float>("/tmp/ligm_test_x.npy").to_vector() == x.to_vector());
  auto v = arange<std::int64_t>(0, 5);
  io::save_npy(v, "/tmp/ligm_test_v.npy");
  CHECK(io::load_npy<std::int64_t>("/tmp/ligm_test_v.npy").to_vector() == v.to_vector());
  io::save_npy(scalar_tensor<double>(2.5), "/tmp/ligm_test_s.npy");
  CHECK(io::load_npy<double>("/tmp/ligm_test_s.npy").item() == 2.5);
  CHECK(bytes_of("/tmp/ligm_test_x.npy").size() % 16 == 0);  // 64-byte aligned header + 48 bytes

  const auto good = bytes_of(npy("f8_2x3.npy"));
  auto edit = [&](const std::string& name, auto&& change) {
    auto b = good;
    change(b);
    return write_bytes(name, b);
  };
  check_error([&] { io::load_npy<float>(edit("magic.npy", [](auto& b) { b[1] = 'X'; })); }, {"load_npy", "not a .npy file"});
  check_error([&] { io::load_npy<float>(edit("version.npy", [](auto& b) { b[6] = 9; })); }, {"unsupported .npy version 9"});
  check_error([&] { io::load_npy<float>(edit("hlen.npy", [](auto& b) { b[8] = 0xFF; b[9] = 0xFF; })); },
              {"does not fit in the file"});
  check_error([&] { io::load_npy<float>(edit("trunc.npy", [](auto& b) { b.resize(b.size() - 5); })); },
              {"needs 48 bytes", "holds 43"});
  auto replace = [&](const std::string& name, const std::string& from, const std::string& to) {
    return edit(name, [&](auto& b) {
      std::string s(b.begin(), b.end());
      const auto at = s.find(from);
      REQUIRE(at != std::string::npos);
      s.replace(at, from.size(), to);
      b.assign(s.begin(), s.end());
    });
  };
  check_error([&] { io::load_npy<float>(replace("bigend.npy", "<f8", ">f8")); }, {"dtype >f8 is not supported"});
  check_error([&] { io::load_npy<float>(replace("shape.npy", "(2, 3)", "(9999999, 9999999, 9999)")); }, {"too large"});
  check_error([&] { io::load_npy<float>(replace("shape2.npy", "(2, 3)", "(2, x)")); }, {"bad character in shape"});
  check_error([&] { io::load_npy<float>(replace("fortran.npy", "False", "Maybe")); }, {"bad fortran_order"});
  check_error([] { io::load_npy<float>("/tmp/ligm_no_such.npy"); }, {"load_npy", "cannot open"});
}

TEST_CASE("io: PNG image grids") {
  // Two 1x2x3 images: a ramp and its reverse; grid of 2 per row, padding 1 (value 1).
  auto ramp = div(arange<float>(0, 6), 5.0f).reshape({1, 1, 2, 3});
  auto batch = cat<float>({ramp, sub(1.0f, ramp)}, 0);
  io::save_image(batch, "/tmp/ligm_test_grid.png", {.nrow = 2, .padding = 1, .pad_value = 1.0});
  auto back = io::load_image<float>("/tmp/ligm_test_grid.png");
  CHECK(back.shape() == Shape{1, 4, 9});  // 1 + 2 + 1 rows, 1 + 3 + 1 + 3 + 1 columns
  auto cell = back.narrow(1, 1, 2).narrow(2, 1, 3);
  check_close(cell, ramp.select(0, 0), 0.5 / 255, 0, "first image");
  CHECK(back.select(1, 0).min().item() == 1.0f);  // padding row
  // RGB, values clamped; a single image [3, H, W] without a grid.
  auto rgb = rand<float>({3, 5, 4});
  io::save_image(mul(rgb, 1.0f), "/tmp/ligm_test_rgb.png");
  check_close(io::load_image<float>("/tmp/ligm_test_rgb.png"), rgb, 0.5 / 255 + 1e-6, 0, "rgb");
  check_error([&] { io::save_image(rand<float>({2, 2, 4, 4}), "/tmp/x.png"); }, {"make_grid", "1 or 3"});
  check_error([] { io::load_image<float>("/tmp/ligm_no_such.png"); }, {"load_image", "cannot open"});
}

TEST_CASE("io: metrics as JSON lines") {
  const std::string path = "/tmp/ligm_test_metrics.jsonl";
  {
    io::MetricsLog log(path);
    log.write({{"step", 1}, {"loss", 2.5}});
    log.write({{"step", 2}, {"loss", 2.0}, {"split", "train"}});
  }
  {
    io::MetricsLog log(path, /*append=*/true);
    log.write({{"step", 3}, {"loss", 1.5}});
    check_error([&] { log.write(nlohmann::json::array({1, 2})); }, {"MetricsLog", "JSON object"});
  }
  auto rows = io::read_metrics(path);
  REQUIRE(rows.size() == 3);
  CHECK(rows[2]["loss"].get<double>() == 1.5);
  CHECK(rows[1]["split"] == "train");
  std::ofstream(path, std::ios::app) << "not json\n";
  check_error([&] { io::read_metrics(path); }, {"read_metrics", ":4 is not a JSON object"});
}

TEST_CASE("io: the progress bar reports count, rate, ETA and values, and is quiet off a terminal") {
  setenv("LIGM_PROGRESS", "0", 1);
  io::ProgressBar quiet(10, "quiet");
  CHECK_FALSE(quiet.enabled());
  unsetenv("LIGM_PROGRESS");
  std::FILE* sink = std::tmpfile();
  io::ProgressBar file_bar(10, "file", sink);
  CHECK_FALSE(file_bar.enabled());  // not a terminal
  setenv("LIGM_PROGRESS", "1", 1);
  io::ProgressBar bar(4, "epoch 1", sink);
  CHECK(bar.enabled());
  bar.update(2, {{"loss", 0.4321}});
  const std::string line = bar.line();
  CHECK(line.find("epoch 1") == 0);
  CHECK(line.find(" 50% [############............] 2/4") != std::string::npos);
  CHECK(line.find("loss=0.4321") != std::string::npos);
  CHECK(line.find("it/s]") != std::string::npos);
  bar.update(2);
  bar.close();
  std::rewind(sink);
  char buf[512] = {};
  CHECK(std::fread(buf, 1, sizeof buf - 1, sink) > 0);
  CHECK(std::string(buf).find("100%") != std::string::npos);
  std::fclose(sink);
  unsetenv("LIGM_PROGRESS");
}

TEST_CASE("io: bfloat16 tensors in safetensors files load as floats") {
  // 1.0 = 0x3F80, -2.5 = 0xC020, 0.15625 = 0x3E20 (exact in bfloat16).
  io::RawTensor r{"BF16", {3}, {0x80, 0x3F, 0x20, 0xC0, 0x20, 0x3E}};
  io::SafetensorsFile f;
  f.tensors["w"] = r;
  io::save_safetensors(f, "/tmp/ligm_test_bf16.safetensors");
  auto back = io::load_safetensors("/tmp/ligm_test_bf16.safetensors");
  CHECK(io::from_raw<float>(back.tensors.at("w")).to_vector() == std::vector<float>{1.0f, -2.5f, 0.15625f});
}

TEST_CASE("io: readers parse bytes in memory and reject what the fuzzer found") {
  // .npy from bytes, as from a file.
  const auto x = tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  io::save_npy(x, "/tmp/ligm_test_mem.npy");
  CHECK(io::parse_npy<float>(bytes_of("/tmp/ligm_test_mem.npy")).to_vector() == x.to_vector());
  // A float that no int64 can hold is an error, not an undefined cast (NaN, inf, 2^63).
  for (double v : {std::nan(""), HUGE_VAL, 0x1p63, -0x1p64}) {
    io::RawTensor r{"F64", {1}, std::vector<unsigned char>(8)};
    std::memcpy(r.data.data(), &v, 8);
    check_error([&] { io::from_raw<std::int64_t>(r); }, {"from_raw", "does not fit in int64"});
  }
  io::RawTensor edge{"F64", {1}, std::vector<unsigned char>(8)};
  const double lowest = -0x1p63;
  std::memcpy(edge.data.data(), &lowest, 8);
  CHECK(io::from_raw<std::int64_t>(edge).item() == std::numeric_limits<std::int64_t>::min());
  check_error([] { io::from_raw<float>(io::RawTensor{"F32", {3}, std::vector<unsigned char>(8)}); },
              {"from_raw", "holds 8 bytes"});
  // Images: PNG and BMP from bytes; stb's JPEG decoder is not compiled (it overflows a table on
  // a crafted file); a PNG chunk that claims more bytes than the file has (stb allocated 2 GB
  // for a 75-byte file), an empty data chunk, a BMP short of its rows.
  const auto rgb = rand<float>({3, 4, 5});
  io::save_image(rgb, "/tmp/ligm_test_mem.png");
  const auto png = bytes_of("/tmp/ligm_test_mem.png");
  check_close(io::decode_image<float>(png, "mem"), rgb, 0.5 / 255 + 1e-6, 0, "png from bytes");
  const std::string corpus = LIGM_FUZZ_CORPUS_DIR "/image/";
  check_error([&] { io::load_image<float>(corpus + "jpeg-huffman-table-overflow"); }, {"load_image", "cannot read"});
  check_error([&] { io::load_image<float>(corpus + "png-idat-length-2gb"); }, {"load_image", "declares", "truncated?"});
  check_error([&] { io::load_image<float>(corpus + "png-empty-idat-null-copy"); }, {"empty PNG image data chunk"});
  auto cut = png;
  cut.resize(cut.size() - 20);
  check_error([&] { io::decode_image<float>(cut, "cut.png"); }, {"cut.png", "truncated?"});
  const std::vector<unsigned char> bmp_header = {'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0,
                                                 0, 16, 0, 0, 0, 16, 0, 0, 1, 0, 24, 0, 0, 0, 0, 0};
  auto bmp = bmp_header;  // 4096 x 4096 pixels of 24 bits declared, none there
  bmp.resize(54);
  check_error([&] { io::decode_image<float>(bmp, "big.bmp"); }, {"big.bmp", "4096 x 4096", "holds 0 bytes"});
}

TEST_CASE("io: an atomic write that fails leaves the old file and no temporary behind") {
  const std::string path = "/tmp/ligm_test_atomic.bin";
  write_file_atomic(path, {1, 2, 3}, "test");
  CHECK(read_file(path, "test") == std::vector<unsigned char>{1, 2, 3});
  write_file_atomic(path, {4, 5}, "test");
  CHECK(read_file(path, "test") == std::vector<unsigned char>{4, 5});
  // The rename cannot replace a folder: the write fails, the temporary is removed.
  const std::string dir = "/tmp/ligm_test_atomic_dir";
  std::filesystem::create_directories(dir);
  check_error([&] { write_file_atomic(dir, {7}, "save_checkpoint"); }, {"save_checkpoint", "cannot rename", dir});
  CHECK(!std::filesystem::exists(dir + ".tmp"));
  CHECK(std::filesystem::is_directory(dir));
  check_error([] { write_file_atomic("/nonexistent/dir/x.bin", {7}, "save_npy"); }, {"save_npy", "cannot open", "x.bin.tmp"});
  std::filesystem::remove(dir);
  std::remove(path.c_str());
}
