// libFuzzer's entry point for the targets of targets.hpp: LIGM_FUZZ_TARGET (an environment
// variable) names the one to run. Built and run by tools/fuzz with clang's -fsanitize=fuzzer.
#include <cstdio>
#include <cstdlib>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const ligm::fuzz::Target* target = [] {
    const char* name = std::getenv("LIGM_FUZZ_TARGET");
    const auto* t = name ? ligm::fuzz::find_target(name) : nullptr;
    if (!t) {
      std::fprintf(stderr, "set LIGM_FUZZ_TARGET to safetensors, npy, idx, checkpoint, image or ops\n");
      std::abort();
    }
    return t;
  }();
  target->run(ligm::fuzz::Bytes(data, data + size));
  return 0;
}
