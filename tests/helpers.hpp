// Shared test helpers: random inputs, gradcheck as a doctest check, closeness, error text.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <initializer_list>
#include <string>
#include <vector>

#include <ligm/ligm.hpp>

namespace th {
using namespace ligm;

// A float64 leaf with values from N(0, 1) (or U[lo, hi) when lo < hi) that requires grad.
inline Tensor<double> leaf(const Shape& shape, std::uint64_t seed, double lo = 0, double hi = 0) {
  Generator gen(seed);
  auto t = lo < hi ? rand<double>(shape, gen, Device::cpu(), lo, hi) : randn<double>(shape, gen);
  t.requires_grad_(true);
  return t;
}

// Runs ligm::gradcheck and fails the current test with its report.
template <class F>
void check_grad(F&& fn, const std::vector<Tensor<double>>& inputs, GradcheckOptions o = {}) {
  auto r = gradcheck(std::forward<F>(fn), inputs, o);
  INFO(r.message);
  CHECK(r.ok);
}

template <class T>
void check_close(const Tensor<T>& actual, const std::vector<double>& expected, double atol = 1e-6,
                 double rtol = 1e-6, const char* what = "tensor") {
  auto v = actual.to_vector();
  REQUIRE_MESSAGE(v.size() == expected.size(), std::string(what), ": ", v.size(), " elements, expected ", expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double a = static_cast<double>(v[i]), e = expected[i];
    const bool ok = (std::isnan(e) && std::isnan(a)) || a == e || std::fabs(a - e) <= atol + rtol * std::fabs(e);
    if (!ok) {
      FAIL_CHECK(std::string(what), "[", i, "] = ", a, ", expected ", e);
      return;
    }
  }
}

template <class T>
void check_close(const Tensor<T>& actual, const Tensor<T>& expected, double atol = 1e-6,
                 double rtol = 1e-6, const char* what = "tensor") {
  REQUIRE_MESSAGE(actual.shape() == expected.shape(), std::string(what), ": shape ", shape_str(actual.shape()),
                  ", expected ", shape_str(expected.shape()));
  std::vector<double> e;
  for (auto x : expected.to_vector()) e.push_back(static_cast<double>(x));
  check_close(actual, e, atol, rtol, what);
}

// Runs fn, expects a ligm::Error whose message contains every fragment.
template <class F>
void check_error(F&& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    FAIL_CHECK("expected a ligm::Error containing \"", *fragments.begin(), "\"");
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& f : fragments) {
      INFO("message: ", msg);
      CHECK_MESSAGE(msg.find(f) != std::string::npos, "missing \"", f, "\"");
    }
  }
}

}  // namespace th
