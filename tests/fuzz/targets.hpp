// The fuzz targets: the file readers, each taking the bytes of a would-be file and pushing them
// as far through ligm as a user's program would (parse, convert to tensors, load into a model
// and an optimizer), and the ops (ops.hpp: op calls with shapes and arguments from the bytes).
// The contract under test (contract.hpp): any input either works or throws ligm::Error; no
// other exception, no crash, no sanitizer report, no hang.
//
// Two drivers call them: tests/fuzz/fuzz_main.cpp (libFuzzer under ASan + UBSan, tools/fuzz)
// and tests/test_fuzz_corpus.cpp (every file of tests/fuzz/corpus/ in the normal suite, so an
// input that once failed stays fixed on every build).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "contract.hpp"
#include "ligm/io/io.hpp"
#include "ligm/ligm.hpp"
#include "ops.hpp"

namespace ligm::fuzz {

inline void safetensors(const Bytes& b) {
  expect_ok_or_error([&] {
    const auto file = io::parse_safetensors(b);
    for (const auto& kv : file.tensors) {
      expect_ok_or_error([&] { io::from_raw<float>(kv.second); });
      expect_ok_or_error([&] { io::from_raw<std::int64_t>(kv.second); });
      expect_ok_or_error([&] { io::from_raw<bool>(kv.second); });
    }
  });
}

inline void npy(const Bytes& b) {
  expect_ok_or_error([&] { io::parse_npy<float>(b); });
  expect_ok_or_error([&] { io::parse_npy<double>(b); });
  expect_ok_or_error([&] { io::parse_npy<std::int64_t>(b); });
  expect_ok_or_error([&] { io::parse_npy<bool>(b); });
}

inline void idx(const Bytes& b) {
  expect_ok_or_error([&] {
    const auto a = data::parse_idx(b);
    expect_ok_or_error([&] { data::idx_images(a); });
    expect_ok_or_error([&] { data::idx_labels(a); });
  });
}

// A checkpoint loaded as examples/05 does: a model's and an optimizer's state, the generator,
// the step.
inline void checkpoint(const Bytes& b) {
  expect_ok_or_error([&] {
    auto c = io::parse_checkpoint<float>(b);
    manual_seed(0);
    nn::Sequential model(nn::Linear(4, 3), nn::BatchNorm1d(3));
    optim::AdamW opt(model.parameters());
    expect_ok_or_error([&] { model.load_state_dict(c.model, /*strict=*/false); });
    expect_ok_or_error([&] { opt.load_state_dict(c.optimizer); });
    Generator g;
    expect_ok_or_error([&] { c.restore_rng(g); });
    expect_ok_or_error([&] { c.get_int("step"); });
  });
}

inline void image(const Bytes& b) {
  expect_ok_or_error([&] { io::decode_image<float>(b); });
}

struct Target {
  const char* name;
  void (*run)(const Bytes&);
};
inline constexpr Target kTargets[] = {
    {"safetensors", safetensors}, {"npy", npy}, {"idx", idx}, {"checkpoint", checkpoint}, {"image", image},
    {"ops", ops},
};

inline const Target* find_target(std::string_view name) {
  for (const auto& t : kTargets)
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace ligm::fuzz
