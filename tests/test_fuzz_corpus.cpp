// Every file of tests/fuzz/corpus/<target>/ through its fuzz target (tests/fuzz/targets.hpp):
// the seeds (valid files of each format) and every input that once crashed a reader, kept as
// a regression test. tools/fuzz finds new ones with libFuzzer; this replays them on every build.
#include <doctest/doctest.h>

#include <filesystem>

#include "fuzz/targets.hpp"
#include "helpers.hpp"

using namespace ligm;
namespace fs = std::filesystem;

TEST_CASE("fuzz corpus: every kept input either loads or is a ligm::Error") {
  const fs::path root = LIGM_FUZZ_CORPUS_DIR;
  REQUIRE(fs::is_directory(root));
  int files = 0;
  for (const auto& t : fuzz::kTargets) {
    const fs::path dir = root / t.name;
    REQUIRE_MESSAGE(fs::is_directory(dir), "no corpus for " << std::string(t.name));
    int seeds = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      INFO(entry.path().string());
      const auto bytes = read_file(entry.path().string(), "fuzz corpus");
      CHECK_NOTHROW(t.run(bytes));
      ++files;
      seeds += entry.path().filename().string().rfind("seed", 0) == 0;
    }
    CHECK_MESSAGE(seeds > 0, std::string(t.name) << " has no seed file");
  }
  MESSAGE(files << " corpus files replayed");
}

TEST_CASE("fuzz targets: the seeds load without an error, so the fuzzer starts from real files") {
  const fs::path root = LIGM_FUZZ_CORPUS_DIR;
  for (const auto& t : fuzz::kTargets)
    for (const auto& entry : fs::directory_iterator(root / t.name)) {
      if (entry.path().filename().string().rfind("seed", 0) != 0) continue;
      INFO(entry.path().string());
      const auto bytes = read_file(entry.path().string(), "fuzz corpus");
      const std::string name = t.name;
      if (name == "safetensors") CHECK(!io::parse_safetensors(bytes).tensors.empty());
      else if (name == "npy") CHECK(io::parse_npy<double>(bytes).numel() >= 0);
      else if (name == "idx") CHECK(!data::parse_idx(bytes).shape.empty());
      else if (name == "checkpoint") CHECK(!io::parse_checkpoint<float>(bytes).model.empty());
      else if (name == "image") CHECK(io::decode_image<float>(bytes).dim() == 3);
      else if (name == "ops") CHECK_NOTHROW(t.run(bytes));  // any bytes are a program
      else if (name == "adapter") {
        // The seed loads into a model with adapters of the same method (the DoRA file has
        // magnitudes, so it fits only DoRA).
        const bool dora = entry.path().filename().string().find("DoRA") != std::string::npos;
        auto model = fuzz::adapter_model(dora ? methods::lora::Method::DoRA : methods::lora::Method::LoRA);
        CHECK_NOTHROW(methods::lora::load_adapter(model, io::parse_safetensors(bytes)));
      }
      else FAIL("a target without a seed check: " << name);
    }
}
