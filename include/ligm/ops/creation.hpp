// Creation ops: zeros, ones, full, arange, linspace, eye, rand, randn, randint, randperm,
// the *_like variants, and tensor() from host values.
#pragma once
#include <cmath>
#include <initializer_list>
#include <numeric>
#include <vector>

#include "ligm/core/generator.hpp"
#include "ligm/core/philox.hpp"
#include "ligm/ops/common.hpp"

namespace ligm {

template <class T>
Tensor<T> empty(const Shape& shape, Device device = Device::cpu()) {
  return Tensor<T>::empty(shape, device);
}

template <class T>
Tensor<T> full(const Shape& shape, T value, Device device = Device::cpu()) {
  auto t = Tensor<T>::empty(shape, device);
  backend_for<T>(device).fill(t.ref(), value);
  return t;
}
template <class T> Tensor<T> zeros(const Shape& s, Device d = Device::cpu()) { return full<T>(s, T(0), d); }
template <class T> Tensor<T> ones(const Shape& s, Device d = Device::cpu()) { return full<T>(s, T(1), d); }

template <class T> Tensor<T> empty_like(const Tensor<T>& t) { return Tensor<T>::empty(t.shape(), t.device()); }
template <class T> Tensor<T> zeros_like(const Tensor<T>& t) { return zeros<T>(t.shape(), t.device()); }
template <class T> Tensor<T> ones_like(const Tensor<T>& t) { return ones<T>(t.shape(), t.device()); }
template <class T> Tensor<T> full_like(const Tensor<T>& t, T v) { return full<T>(t.shape(), v, t.device()); }

// A tensor holding host values (row-major), e.g. tensor<float>({1, 2, 3, 4}, {2, 2}).
template <class T>
Tensor<T> tensor(const std::vector<T>& values, Shape shape, Device device = Device::cpu()) {
  check(numel_of(shape) == static_cast<std::int64_t>(values.size()), "tensor", values.size(),
        " values do not fill shape ", shape);
  auto t = Tensor<T>::empty(shape, device);
  if (!values.empty()) {
    if constexpr (std::is_same_v<T, bool>) {  // std::vector<bool> is packed
      std::vector<unsigned char> bytes(values.begin(), values.end());
      allocator_for(device).copy_from_host(t.data_ptr(), bytes.data(), bytes.size());
    } else {
      allocator_for(device).copy_from_host(t.data_ptr(), values.data(), values.size() * sizeof(T));
    }
  }
  return t;
}
// A 1-d tensor of the given values.
template <class T>
Tensor<T> tensor(std::initializer_list<T> values, Device device = Device::cpu()) {
  return tensor<T>(std::vector<T>(values), Shape{static_cast<std::int64_t>(values.size())}, device);
}
// A 0-d tensor.
template <class T>
Tensor<T> scalar_tensor(T value, Device device = Device::cpu()) {
  return full<T>(Shape{}, value, device);
}

template <class T>
Tensor<T> arange(double start, double end, double step = 1, Device device = Device::cpu()) {
  check(step != 0, "arange", "step must be nonzero");
  check((end - start) * step >= 0, "arange", "upper bound and step have inconsistent signs (",
        start, ", ", end, ", ", step, ")");
  const auto n = static_cast<std::int64_t>(std::ceil((end - start) / step));
  std::vector<T> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = static_cast<T>(start + i * step);
  return tensor<T>(v, {n}, device);
}
template <class T>
Tensor<T> arange(double end, Device device = Device::cpu()) { return arange<T>(0, end, 1, device); }

template <class T>
Tensor<T> linspace(double start, double end, std::int64_t steps, Device device = Device::cpu()) {
  check(steps >= 0, "linspace", "number of steps must be non-negative, got ", steps);
  std::vector<T> v(static_cast<std::size_t>(steps));
  const double step = steps > 1 ? (end - start) / double(steps - 1) : 0.0;
  // Symmetric evaluation as in PyTorch: the second half counts back from `end`.
  for (std::int64_t i = 0; i < steps; ++i)
    v[i] = static_cast<T>(i < steps / 2 ? start + step * i : end - step * (steps - 1 - i));
  return tensor<T>(v, {steps}, device);
}

template <class T>
Tensor<T> eye(std::int64_t n, std::int64_t m = -1, Device device = Device::cpu()) {
  if (m < 0) m = n;
  check(n >= 0, "eye", "n must be non-negative, got ", n);
  std::vector<T> v(static_cast<std::size_t>(n * m), T(0));
  for (std::int64_t i = 0; i < std::min(n, m); ++i) v[i * m + i] = T(1);
  return tensor<T>(v, {n, m}, device);
}

// Uniform in [low, high).
template <class T>
Tensor<T> rand(const Shape& shape, Generator& gen = default_generator(),
               Device device = Device::cpu(), double low = 0, double high = 1) {
  ops_detail::floating_only<T>("rand");
  auto t = Tensor<T>::empty(shape, device);
  const auto n = t.numel();
  backend_for<T>(device).random_uniform(t.data_ptr(), n, gen.seed(), gen.reserve(n), low, high);
  return t;
}

template <class T>
Tensor<T> randn(const Shape& shape, Generator& gen = default_generator(),
                Device device = Device::cpu(), double mean = 0, double std = 1) {
  ops_detail::floating_only<T>("randn");
  auto t = Tensor<T>::empty(shape, device);
  const auto n = t.numel();
  backend_for<T>(device).random_normal(t.data_ptr(), n, gen.seed(), gen.reserve(n), mean, std);
  return t;
}

template <class T> Tensor<T> rand_like(const Tensor<T>& t, Generator& g = default_generator()) { return rand<T>(t.shape(), g, t.device()); }
template <class T> Tensor<T> randn_like(const Tensor<T>& t, Generator& g = default_generator()) { return randn<T>(t.shape(), g, t.device()); }

// Integers uniform in [low, high): computed on the host from the same Philox stream.
inline Tensor<std::int64_t> randint(std::int64_t low, std::int64_t high, const Shape& shape,
                                    Generator& gen = default_generator(),
                                    Device device = Device::cpu()) {
  check(low < high, "randint", "low (", low, ") must be less than high (", high, ")");
  const auto n = numel_of(shape);
  const auto range = static_cast<std::uint64_t>(high - low);
  // Two 32-bit draws per element give a 64-bit value; reduce by multiply-shift when the
  // range fits 32 bits (negligible bias), by modulo otherwise.
  const std::uint64_t offset = gen.reserve(2 * static_cast<std::uint64_t>(n));
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint64_t lo32 = philox::bits(gen.seed(), offset, 2 * std::uint64_t(i));
    const std::uint64_t hi32 = philox::bits(gen.seed(), offset, 2 * std::uint64_t(i) + 1);
    const std::uint64_t r = range <= 0xFFFFFFFFull ? (lo32 * range) >> 32
                                                   : ((hi32 << 32) | lo32) % range;
    v[i] = low + static_cast<std::int64_t>(r);
  }
  return tensor<std::int64_t>(v, shape, device);
}

// A random permutation of 0..n-1 (Fisher-Yates over the Philox stream).
inline Tensor<std::int64_t> randperm(std::int64_t n, Generator& gen = default_generator(),
                                     Device device = Device::cpu()) {
  check(n >= 0, "randperm", "n must be non-negative, got ", n);
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  const std::uint64_t offset = gen.reserve(static_cast<std::uint64_t>(n));
  for (std::int64_t i = n - 1; i > 0; --i) {
    const std::uint64_t r = philox::bits(gen.seed(), offset, std::uint64_t(i));
    const auto j = static_cast<std::int64_t>((r * std::uint64_t(i + 1)) >> 32);
    std::swap(v[i], v[j]);
  }
  return tensor<std::int64_t>(v, {n}, device);
}

}  // namespace ligm
