// Parameter initialisers (torch.nn.init), in place and without recording autograd history.
// Values are drawn on the CPU from a Generator (default: the process-wide one) and copied to
// the tensor's device, so a seeded model is the same on every device.
#pragma once
#include <cmath>
#include <string_view>
#include <vector>

#include "ligm/ops/copy.hpp"
#include "ligm/ops/creation.hpp"

namespace ligm::nn::init {

// fan_in, fan_out of a weight [out, in, k...] (PyTorch's _calculate_fan_in_and_fan_out).
template <class T>
std::pair<double, double> fans(const Tensor<T>& w) {
  check(w.dim() >= 2, "init", "fan in and fan out need at least 2 dims, got ", w.describe());
  double receptive = 1;
  for (std::int64_t d = 2; d < w.dim(); ++d) receptive *= double(w.shape()[std::size_t(d)]);
  return {double(w.shape()[1]) * receptive, double(w.shape()[0]) * receptive};
}

// torch.nn.init.calculate_gain for linear/conv/sigmoid (1), tanh (5/3), relu (sqrt 2),
// leaky_relu (sqrt(2 / (1 + a^2))), selu (3/4).
inline double calculate_gain(std::string_view nonlinearity, double a = 0.01) {
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + a * a));
  if (nonlinearity == "selu") return 0.75;
  if (nonlinearity == "linear" || nonlinearity == "sigmoid" || nonlinearity.substr(0, 4) == "conv")
    return 1.0;
  fail("calculate_gain", "unknown nonlinearity \"", nonlinearity, "\"");
}

template <class T>
void assign(const Tensor<T>& t, const Tensor<T>& values) {
  NoGradGuard no_grad;
  Tensor<T> handle = t;  // the same tensor
  handle.copy_(values);
}

template <class T>
void uniform_(const Tensor<T>& t, double lo = 0, double hi = 1, Generator& gen = default_generator()) {
  assign(t, rand<T>(t.shape(), gen, Device::cpu(), lo, hi));
}
template <class T>
void normal_(const Tensor<T>& t, double mean = 0, double std = 1, Generator& gen = default_generator()) {
  assign(t, randn<T>(t.shape(), gen, Device::cpu(), mean, std));
}
template <class T>
void constant_(const Tensor<T>& t, double v) {
  assign(t, full<T>(t.shape(), T(v)));
}
template <class T> void zeros_(const Tensor<T>& t) { constant_(t, 0); }
template <class T> void ones_(const Tensor<T>& t) { constant_(t, 1); }

template <class T>
void xavier_uniform_(const Tensor<T>& t, double gain = 1, Generator& gen = default_generator()) {
  auto [fi, fo] = fans(t);
  const double bound = gain * std::sqrt(6.0 / (fi + fo));
  uniform_(t, -bound, bound, gen);
}
template <class T>
void xavier_normal_(const Tensor<T>& t, double gain = 1, Generator& gen = default_generator()) {
  auto [fi, fo] = fans(t);
  normal_(t, 0, gain * std::sqrt(2.0 / (fi + fo)), gen);
}

// mode "fan_in" or "fan_out"; a is the negative slope for leaky_relu.
template <class T>
void kaiming_uniform_(const Tensor<T>& t, double a = 0, std::string_view mode = "fan_in",
                      std::string_view nonlinearity = "leaky_relu", Generator& gen = default_generator()) {
  auto [fi, fo] = fans(t);
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(mode == "fan_in" ? fi : fo);
  uniform_(t, -std::sqrt(3.0) * std, std::sqrt(3.0) * std, gen);
}
template <class T>
void kaiming_normal_(const Tensor<T>& t, double a = 0, std::string_view mode = "fan_in",
                     std::string_view nonlinearity = "leaky_relu", Generator& gen = default_generator()) {
  auto [fi, fo] = fans(t);
  normal_(t, 0, calculate_gain(nonlinearity, a) / std::sqrt(mode == "fan_in" ? fi : fo), gen);
}

// Normal(mean, std) restricted to [a, b] (absolute bounds, as torch.nn.init.trunc_normal_),
// by redrawing the values that fall outside.
template <class T>
void trunc_normal_(const Tensor<T>& t, double mean = 0, double std = 1, double a = -2, double b = 2,
                   Generator& gen = default_generator()) {
  check(a < b && std > 0, "trunc_normal_", "needs a < b and std > 0, got [", a, ", ", b, "], std ", std);
  std::vector<T> out;
  out.reserve(std::size_t(t.numel()));
  while (std::int64_t(out.size()) < t.numel()) {
    for (T v : randn<T>({std::max<std::int64_t>(t.numel(), 64)}, gen, Device::cpu(), mean, std).to_vector())
      if (v >= a && v <= b && std::int64_t(out.size()) < t.numel()) out.push_back(v);
  }
  assign(t, tensor<T>(out, t.shape()));
}

// A (semi-)orthogonal matrix: rows or columns orthonormal, times gain (Gram-Schmidt on a
// Gaussian matrix with QR's sign convention, in double on the host).
template <class T>
void orthogonal_(const Tensor<T>& t, double gain = 1, Generator& gen = default_generator()) {
  check(t.dim() >= 2, "orthogonal_", "needs at least 2 dims, got ", t.describe());
  const std::int64_t rows = t.shape()[0], cols = t.numel() / rows;
  const bool transpose = rows < cols;  // orthonormalise the longer side's vectors
  const std::int64_t n = transpose ? cols : rows, k = transpose ? rows : cols;
  auto g = randn<double>({k, n}, gen).to_vector();  // k vectors of length n
  for (std::int64_t i = 0; i < k; ++i) {
    double* v = g.data() + i * n;
    for (std::int64_t j = 0; j < i; ++j) {
      const double* u = g.data() + j * n;
      double d = 0;
      for (std::int64_t e = 0; e < n; ++e) d += v[e] * u[e];
      for (std::int64_t e = 0; e < n; ++e) v[e] -= d * u[e];
    }
    double norm = 0;
    for (std::int64_t e = 0; e < n; ++e) norm += v[e] * v[e];
    norm = std::sqrt(norm);
    for (std::int64_t e = 0; e < n; ++e) v[e] /= norm;
  }
  std::vector<T> out(std::size_t(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      out[std::size_t(r * cols + c)] = T(gain * (transpose ? g[std::size_t(r * n + c)] : g[std::size_t(c * n + r)]));
  assign(t, tensor<T>(out, t.shape()));
}

}  // namespace ligm::nn::init
