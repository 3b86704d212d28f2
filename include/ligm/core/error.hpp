// ligm::Error and the checks that raise it.
//
// Every failure a user can cause (a shape mismatch, a wrong dtype, an index out of range,
// a device that is not compiled in) raises ligm::Error with a message that names the op
// and the operands, e.g.
//   ligm::matmul: shapes [2, 3] and [4, 5] cannot be multiplied (float32, cpu)
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>
#include <cstdint>

namespace ligm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// Streams one part of a message; integer vectors (shapes, dims) print as [2, 3].
template <class P>
void stream_part(std::ostringstream& os, const P& part) {
  if constexpr (std::is_same_v<P, std::vector<std::int64_t>>) {
    os << '[';
    for (std::size_t i = 0; i < part.size(); ++i) os << (i ? ", " : "") << part[i];
    os << ']';
  } else {
    os << part;
  }
}

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (stream_part(os, parts), ...);
  return os.str();
}
}  // namespace detail

// Throws ligm::Error("ligm::<op>: <parts...>").
template <class... Parts>
[[noreturn]] void fail(std::string_view op, Parts&&... parts) {
  throw Error(detail::concat("ligm::", op, ": ", parts...));
}

template <class... Parts>
void check(bool cond, std::string_view op, Parts&&... parts) {
  if (!cond) fail(op, std::forward<Parts>(parts)...);
}

}  // namespace ligm
