// safetensors: byte-exact round trips, a file written by PyTorch, hostile and truncated files.
#include <cstdio>
#include <fstream>

#include <ligm/io/safetensors.hpp>

#include "helpers.hpp"

using namespace th;

namespace {
std::vector<unsigned char> with_header(const std::string& json, std::size_t data_bytes) {
  std::vector<unsigned char> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>((json.size() >> (8 * i)) & 0xFF);
  out.insert(out.end(), json.begin(), json.end());
  out.resize(out.size() + data_bytes, 0);
  return out;
}
}  // namespace

TEST_CASE("round trip: tensors of every dtype, metadata, byte-exact re-serialisation") {
  io::SafetensorsFile f;
  f.tensors["w"] = io::to_raw(tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  f.tensors["b"] = io::to_raw(tensor<double>({0.5}, {1}));
  f.tensors["idx"] = io::to_raw(tensor<std::int64_t>({7, -1}, {2}));
  f.tensors["mask"] = io::to_raw(tensor<bool>({true, false, true}, {3}));
  f.tensors["empty"] = io::to_raw(zeros<float>({0, 4}));
  f.metadata["step"] = "12";
  const auto bytes = io::serialize_safetensors(f);
  CHECK((bytes[0] | (bytes[1] << 8)) % 8 == 0);  // header padded to 8
  const auto back = io::parse_safetensors(bytes);
  CHECK(back.metadata.at("step") == "12");
  CHECK(io::from_raw<float>(back.tensors.at("w")).to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(io::from_raw<float>(back.tensors.at("w")).shape() == Shape{2, 3});
  CHECK(io::from_raw<std::int64_t>(back.tensors.at("idx")).to_vector() == std::vector<std::int64_t>{7, -1});
  CHECK(io::from_raw<bool>(back.tensors.at("mask")).to_vector() == std::vector<bool>{true, false, true});
  CHECK(io::from_raw<double>(back.tensors.at("w")).to_vector()[5] == 6.0);  // cast on load
  CHECK(io::serialize_safetensors(back) == bytes);
  const std::string path = "ligm_test_roundtrip.safetensors";
  io::save_safetensors(f, path);
  CHECK(io::load_safetensors(path).tensors.size() == 5);
  std::remove(path.c_str());
}

TEST_CASE("a file written by PyTorch's side (the goldens) loads") {
  const auto f = io::load_safetensors(LIGM_GOLDEN_DIR "/ops.safetensors");
  CHECK(f.metadata.at("generator") == "tools/make_goldens.py");
  CHECK(f.tensors.at("matmul_2d.out").shape == Shape{3, 5});
}

TEST_CASE("hostile and truncated files are rejected with a clear error") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK_NOTHROW(io::parse_safetensors(with_header(ok, 8)));
  check_error([&] { io::parse_safetensors(with_header(ok, 7)); }, {"load_safetensors", "[0, 8]"});
  check_error([&] { io::parse_safetensors(with_header(ok, 12)); }, {"load_safetensors", "4 bytes after"});
  check_error([] { io::parse_safetensors({1, 2, 3}); }, {"load_safetensors", "too short"});
  auto huge = with_header(ok, 8);
  huge[7] = 0x7F;
  check_error([&] { io::parse_safetensors(huge); }, {"load_safetensors", "100 MB"});
  auto past = with_header(ok, 8);
  past[0] = 0xFF;
  check_error([&] { io::parse_safetensors(past); }, {"load_safetensors", "past the end"});
  check_error([] { io::parse_safetensors(with_header("{not json", 0)); }, {"load_safetensors", "not valid JSON"});
  check_error([] { io::parse_safetensors(with_header("[1,2]", 0)); }, {"load_safetensors", "JSON object"});
  check_error([] { io::parse_safetensors(with_header(R"({"a":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}})", 1)); },
              {"unknown dtype", "X9"});
  check_error([] { io::parse_safetensors(with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)); },
              {"needs 12 bytes", "has 8"});
  check_error([] { io::parse_safetensors(with_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)); },
              {"bad dim"});
  check_error([] {
    io::parse_safetensors(with_header(
        R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", 6));
  }, {"overlap"});
  check_error([] { io::parse_safetensors(with_header(R"({"__metadata__":{"k":1}})", 0)); }, {"__metadata__", "not a string"});
  check_error([] { io::parse_safetensors(with_header(R"({"a":{"dtype":"F32"}})", 0)); }, {"needs dtype, shape and data_offsets"});
  check_error([] { io::load_safetensors("/nonexistent/file.safetensors"); }, {"cannot open"});
}

TEST_CASE("fuzz: random corruptions of a valid file never crash") {
  io::SafetensorsFile f;
  f.tensors["x"] = io::to_raw(randn<float>({3, 4}));
  f.tensors["y"] = io::to_raw(tensor<std::int64_t>({1, 2}, {2}));
  const auto good = io::serialize_safetensors(f);
  Generator gen(99);
  for (int trial = 0; trial < 2000; ++trial) {
    auto bytes = good;
    const auto r = randint(0, 1 << 30, {4}, gen).to_vector();
    switch (r[0] % 3) {
      case 0: bytes[r[1] % bytes.size()] = static_cast<unsigned char>(r[2]); break;
      case 1: bytes.resize(r[1] % bytes.size()); break;
      default: bytes.insert(bytes.begin() + (r[1] % bytes.size()), static_cast<unsigned char>(r[2])); break;
    }
    try {
      io::parse_safetensors(bytes);
    } catch (const Error&) {
    }
  }
  CHECK(true);
}
