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
#include <charconv>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "ligm/core/generator.hpp"
#include "ligm/io/safetensors.hpp"

namespace ligm::io {
namespace ckpt_detail {
// Metadata value `key` as a whole integer: anything else (empty, a sign where none belongs,
// trailing text, out of range) is a ligm::Error naming the key, not std::stoll's exception.
template <class I>
I parse_int(const std::string& text, const std::string& key, const char* op) {
  I value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  check(ec == std::errc() && end == text.data() + text.size() && !text.empty(), op, "metadata \"", key,
        "\" is \"", text, "\", not an integer of its range");
  return value;
}
}  // namespace ckpt_detail

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
    g.manual_seed(ckpt_detail::parse_int<std::uint64_t>(metadata.at("ligm.rng_seed"), "ligm.rng_seed", "restore_rng"));
    g.set_offset(ckpt_detail::parse_int<std::uint64_t>(metadata.at("ligm.rng_offset"), "ligm.rng_offset", "restore_rng"));
  }
  // A metadata value as an integer ("step"), or `fallback` when absent.
  std::int64_t get_int(const std::string& key, std::int64_t fallback = 0) const {
    auto it = metadata.find(key);
    return it == metadata.end() ? fallback : ckpt_detail::parse_int<std::int64_t>(it->second, key, "get_int");
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
// parse_checkpoint reads the bytes of a checkpoint file; `path` names it in errors.
template <class T>
Checkpoint<T> parse_checkpoint(const std::vector<unsigned char>& bytes, std::string_view path = "buffer") {
  const SafetensorsFile f = parse_safetensors(bytes, path);
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

template <class T>
Checkpoint<T> load_checkpoint(const std::string& path) {
  return parse_checkpoint<T>(read_file(path, "load_checkpoint"), path);
}

}  // namespace ligm::io
