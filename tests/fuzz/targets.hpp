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
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "contract.hpp"
#include "ligm/io/io.hpp"
#include "ligm/ligm.hpp"
#include "ligm/methods/lora/lora.hpp"
#include "ops.hpp"

namespace ligm::fuzz {

namespace lora = methods::lora;

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

// A LoRA / DoRA adapter file loaded as examples/09 does (lora::load_adapter), into the fuzz
// target's own model with adapters on both Linear layers; then a forward pass and a merge, so
// whatever values were loaded are used.
inline nn::Sequential<float> adapter_model(lora::Method method) {
  manual_seed(0);
  nn::Sequential model(nn::Linear(4, 3), nn::ReLU(), nn::Linear(3, 2));
  lora::add_adapters(model, {.method = method, .r = 2, .alpha = 4});
  return model;
}
inline void adapter(const Bytes& b) {
  expect_ok_or_error([&] {
    const auto file = io::parse_safetensors(b);
    for (auto method : {lora::Method::LoRA, lora::Method::DoRA}) {
      auto model = adapter_model(method);
      const auto before = lora::adapter_state_dict(model);
      std::map<std::string, std::vector<float>> values;
      for (const auto& [k, t] : before) values[k] = t.to_vector();
      try {
        lora::load_adapter(model, file);
      } catch (const Error&) {
        // All or nothing: a file that failed to load left every adapter value as it was.
        for (const auto& [k, t] : lora::adapter_state_dict(model))
          if (t.to_vector() != values[k]) throw std::logic_error("adapter: a failed load changed " + k);
        continue;
      }
      NoGradGuard no_grad;
      model(ones<float>({2, 4}));
      lora::merge_adapters(model);
      model(ones<float>({2, 4}));
    }
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
    {"adapter", adapter},
    {"ops", ops},
};

inline const Target* find_target(std::string_view name) {
  for (const auto& t : kTargets)
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace ligm::fuzz
