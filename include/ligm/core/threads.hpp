// The number of CPU threads ligm uses. Default: the LIGM_NUM_THREADS environment variable if
// set, otherwise the number of cores.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

namespace ligm {
namespace detail {
inline int default_num_threads() {
  if (const char* env = std::getenv("LIGM_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}
inline std::atomic<int>& num_threads_setting() {
  static std::atomic<int> n{default_num_threads()};
  return n;
}
}  // namespace detail

inline int get_num_threads() { return detail::num_threads_setting().load(); }
inline void set_num_threads(int n) { detail::num_threads_setting().store(std::max(1, n)); }

}  // namespace ligm
