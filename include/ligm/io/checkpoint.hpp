// Checkpoints: a model's and an optimizer's state dicts, the random generator's position and
// any metadata (step, scheduler step, ...) in one safetensors file, written atomically (a
// temporary file, then a rename: a crash never leaves a half-written checkpoint behind).
// Resuming from one continues a run bit for bit on the CPU (tests/test_checkpoint.cpp).
//
//   io::Checkpoint<float> c{net.state_dict(), opt.state_dict(), {{"step", std::to_string(step)}}};
//   c.capture_rng(default_generator());
//   io::save_checkpoint(c, "run.ckpt");
//   ...
//   auto c = io::load_checkpoint<float>("run.ckpt");
//   net.load_state_dict(c.model); opt.load_state_dict(c.optimizer); c.restore_rng(default_generator());
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "ligm/core/generator.hpp"
#include "ligm/io/safetensors.hpp"

namespace ligm::io {

template <class T>
struct Checkpoint {
  std::map<std::string, Tensor<T>> model;      // keys "model.<name>" in the file
  std::map<std::string, Tensor<T>> optimizer;  // keys "optimizer.<name>"
  std::map<std::string, std::string> metadata;

  void capture_rng(const Generator& g) {
    metadata["ligm.rng_seed"] = std::to_string(g.seed());
    metadata["ligm.rng_offset"] = std::to_string(g.offset());
  }
  void restore_rng(Generator& g) const {
    check(metadata.count("ligm.rng_seed") && metadata.count("ligm.rng_offset"), "restore_rng",
          "the checkpoint holds no generator state (call capture_rng before saving)");
    g.manual_seed(std::stoull(metadata.at("ligm.rng_seed")));
    g.set_offset(std::stoull(metadata.at("ligm.rng_offset")));
  }
  // A metadata value as an integer ("step"), or `fallback` when absent.
  std::int64_t get_int(const std::string& key, std::int64_t fallback = 0) const {
    auto it = metadata.find(key);
    return it == metadata.end() ? fallback : std::stoll(it->second);
  }
};

template <class T>
void save_checkpoint(const Checkpoint<T>& c, const std::string& path) {
  SafetensorsFile f;
  for (const auto& [k, t] : c.model) f.tensors["model." + k] = to_raw(t);
  for (const auto& [k, t] : c.optimizer) f.tensors["optimizer." + k] = to_raw(t);
  f.metadata = c.metadata;
  f.metadata["ligm.format"] = "checkpoint/1";
  write_file_atomic(path, serialize_safetensors(f), "save_checkpoint");
}

// Tensors come back on the CPU as T (load_state_dict moves them to the model's device).
template <class T>
Checkpoint<T> load_checkpoint(const std::string& path) {
  const SafetensorsFile f = load_safetensors(path);
  auto format = f.metadata.find("ligm.format");
  check(format != f.metadata.end() && format->second == "checkpoint/1", "load_checkpoint", path,
        " is not a ligm checkpoint (no ligm.format = checkpoint/1 in its metadata)");
  Checkpoint<T> c;
  c.metadata = f.metadata;
  c.metadata.erase("ligm.format");
  for (const auto& [k, raw] : f.tensors) {
    if (k.rfind("model.", 0) == 0) {
      c.model[k.substr(6)] = from_raw<T>(raw);
    } else if (k.rfind("optimizer.", 0) == 0) {
      c.optimizer[k.substr(10)] = from_raw<T>(raw);
    } else {
      fail("load_checkpoint", path, ": unexpected tensor \"", k, "\" (expected model.* or optimizer.*)");
    }
  }
  return c;
}

}  // namespace ligm::io
