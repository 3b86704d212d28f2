// Printing tensors, PyTorch style:
//   tensor([[ 1.0000, -2.5000],
//           [ 0.0000,  3.0000]], dtype=float32, grad_fn=<MulBackward>)
#pragma once
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "ligm/autograd/node.hpp"
#include "ligm/ops/copy.hpp"

namespace ligm {
namespace print_detail {
template <class T>
std::string format_value(T v) {
  char buf[64];
  if constexpr (std::is_same_v<T, bool>) return v ? "True" : "False";
  else if constexpr (std::is_integral_v<T>) std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  else std::snprintf(buf, sizeof buf, (std::fabs(v) >= 1e5 || (v != 0 && std::fabs(v) < 1e-4)) ? "%.4e" : "%.4f", double(v));
  return buf;
}

template <class T>
void print_dims(std::ostream& os, const std::vector<std::string>& cells, const Shape& shape,
                std::size_t d, std::size_t& at, std::size_t width, int indent) {
  if (d == shape.size()) {
    os << std::string(width - cells[at].size(), ' ') << cells[at];
    ++at;
    return;
  }
  const std::int64_t n = shape[d];
  const bool summarize = n > 6 && numel_of(shape) > 1000;
  os << '[';
  for (std::int64_t i = 0; i < n; ++i) {
    if (summarize && i == 3) {
      os << "...";
      std::int64_t skip_each = 1;
      for (std::size_t k = d + 1; k < shape.size(); ++k) skip_each *= shape[k];
      at += static_cast<std::size_t>((n - 6) * skip_each);
      i = n - 3;
      os << (d + 1 == shape.size() ? ", " : ",\n" + std::string(indent + d + 1, ' '));
    }
    print_dims<T>(os, cells, shape, d + 1, at, width, indent);
    if (i + 1 < n) os << (d + 1 == shape.size() ? ", " : ",\n" + std::string(shape.size() - d - 1, '\n').substr(1) + std::string(indent + d + 1, ' '));
  }
  os << ']';
}
}  // namespace print_detail

template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  std::vector<T> values;
  {
    NoGradGuard g;
    values = t.to_vector();
  }
  std::vector<std::string> cells;
  std::size_t width = 0;
  for (const T& v : values) {
    cells.push_back(print_detail::format_value(v));
    width = std::max(width, cells.back().size());
  }
  os << "tensor(";
  if (t.numel() == 0) {
    os << "[], size=(";
    for (std::int64_t d = 0; d < t.dim(); ++d) os << (d ? ", " : "") << t.shape()[d];
    os << (t.dim() == 1 ? ",)" : ")");
  } else if (t.dim() == 0) {
    os << cells[0];
  } else {
    std::size_t at = 0;
    print_detail::print_dims<T>(os, cells, t.shape(), 0, at, width, 7);
  }
  if (!std::is_same_v<T, float>) os << ", dtype=" << dtype_name<T>();
  if (!t.device().is_cpu()) os << ", device='" << t.device().str() << "'";
  if (t.grad_fn()) os << ", grad_fn=<" << t.grad_fn()->name << ">";
  else if (t.requires_grad()) os << ", requires_grad=True";
  return os << ')';
}

}  // namespace ligm
