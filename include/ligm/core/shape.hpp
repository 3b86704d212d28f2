// Shapes, strides and broadcasting. Strides are in elements (not bytes), row-major by default.
#pragma once
#include <array>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "ligm/core/error.hpp"

namespace ligm {

using Shape = std::vector<std::int64_t>;

inline std::int64_t numel_of(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

inline Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  std::int64_t acc = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    st[i] = acc;
    acc *= shape[i] > 0 ? shape[i] : 1;
  }
  return st;
}

// True when (shape, strides) is row-major contiguous (size-1 dims may have any stride).
inline bool is_contiguous_strides(const Shape& shape, const Shape& strides) {
  std::int64_t expected = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

inline std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << shape_str(s); }

// Wraps a possibly negative dim into [0, ndim).
inline std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim, std::string_view op) {
  const std::int64_t n = ndim == 0 ? 1 : ndim;
  check(dim >= -n && dim < n, op, "dim ", dim, " is out of range for a tensor of ", ndim,
        " dims");
  return dim < 0 ? dim + n : dim;
}

// The number of elements of a slice [start, end) by step (0 <= start <= end, step > 0), in a
// form that cannot overflow: slice() and the slice's gradient in backward() both use it.
inline std::int64_t slice_length(std::int64_t start, std::int64_t end, std::int64_t step) {
  return end == start ? 0 : (end - start - 1) / step + 1;
}

// wrap_dim for an op that reads the dim's size or stride: a 0-dim tensor has none (wrap_dim
// lets 0 and -1 through for it, as PyTorch's reductions do).
inline std::int64_t wrap_sized_dim(std::int64_t dim, std::int64_t ndim, std::string_view op) {
  check(ndim > 0, op, "dim ", dim, " of a 0-dim tensor: it has no dims");
  return wrap_dim(dim, ndim, op);
}

// Broadcast shape of a and b into out; false (out unspecified) when they are incompatible.
inline bool try_broadcast(const Shape& a, const Shape& b, Shape& out) {
  const std::size_t n = std::max(a.size(), b.size());
  out.assign(n, 1);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    out[i] = da == 1 ? db : da;
  }
  return true;
}

// NumPy/PyTorch broadcasting: align trailing dims; sizes must match or be 1. `context`
// (e.g. "; float32, cpu") is appended to the error message.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op,
                              std::string_view context = {}) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    check(da == db || da == 1 || db == 1, op, "shapes ", a, " and ", b,
          " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, context, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Merges neighbouring dims that every operand walks as one (stride[d] == stride[d+1] *
// shape[d+1]) and drops size-1 dims, so rows are as long as possible. Linear indices are
// unchanged (row-major order is preserved).
template <std::size_t K>
struct Collapsed {
  Shape shape;
  std::array<Shape, K> strides;
};

template <std::size_t K>
Collapsed<K> collapse_dims(const Shape& shape, const std::array<const Shape*, K>& strides) {
  Collapsed<K> c;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !c.shape.empty();
    for (std::size_t k = 0; merge && k < K; ++k)
      merge = c.strides[k].back() == (*strides[k])[d] * shape[d];
    if (merge) {
      c.shape.back() *= shape[d];
      for (std::size_t k = 0; k < K; ++k) c.strides[k].back() = (*strides[k])[d];
    } else {
      c.shape.push_back(shape[d]);
      for (std::size_t k = 0; k < K; ++k) c.strides[k].push_back((*strides[k])[d]);
    }
  }
  return c;
}

}  // namespace ligm
