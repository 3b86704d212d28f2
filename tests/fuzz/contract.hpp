// The contract every fuzz target checks: an input either works or is answered with a
// ligm::Error (or std::bad_alloc: asking for more memory than there is is a valid program, and
// tools/fuzz caps allocations at 1 GB). expect_ok_or_error swallows those two; any other
// exception escapes (libFuzzer reports it as a crash, the corpus test as a failure).
#pragma once
#include <new>
#include <vector>

#include "ligm/core/error.hpp"

namespace ligm::fuzz {

using Bytes = std::vector<unsigned char>;

template <class F>
void expect_ok_or_error(F&& f) {
  try {
    f();
  } catch (const Error&) {
  } catch (const std::bad_alloc&) {
  }
}

}  // namespace ligm::fuzz
