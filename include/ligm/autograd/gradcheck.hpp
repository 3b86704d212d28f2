// gradcheck: compares the gradients autograd computes with central finite differences in
// float64. Shipped for users writing their own ops and layers.
//
//   auto r = ligm::gradcheck([](const auto& in) { return my_op(in[0], in[1]); }, {x, w});
//   if (!r) std::cerr << r.message;
//
// Small problems get the full Jacobian, entry by entry; larger ones random projections
// v^T J u (one backward gives J^T v). It also checks that backward *adds into* existing
// gradients and leaves inputs that do not require grad alone.
#pragma once
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "ligm/autograd/engine.hpp"
#include "ligm/core/generator.hpp"
#include "ligm/core/philox.hpp"

namespace ligm {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  std::int64_t full_jacobian_max = 256;  // inputs x outputs up to this: full Jacobian
  int projections = 3;                   // random directions per input otherwise
  std::uint64_t seed = 1234;
  bool check_accumulation = true;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;
  explicit operator bool() const { return ok; }
};

namespace gradcheck_detail {
using Fn = std::function<Tensor<double>(const std::vector<Tensor<double>>&)>;

inline std::vector<double> host(const Tensor<double>& t) {
  auto c = autograd::detail::contiguous_copy(t);
  std::vector<double> v(static_cast<std::size_t>(c.numel()));
  if (!v.empty()) allocator_for(c.device()).copy_to_host(v.data(), c.data_ptr(), v.size() * sizeof(double));
  return v;
}

inline Tensor<double> from_host(const std::vector<double>& v, const Shape& shape, Device device) {
  auto t = Tensor<double>::empty(shape, device);
  if (!v.empty()) allocator_for(device).copy_from_host(t.data_ptr(), v.data(), v.size() * sizeof(double));
  return t;
}

inline std::vector<double> normal_vector(std::size_t n, Generator& gen) {
  const std::uint64_t off = gen.reserve(n);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = philox::normal(gen.seed(), off, i);
  return v;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

struct Problem {
  Fn fn;
  std::vector<std::vector<double>> values;
  std::vector<Shape> shapes;
  std::vector<bool> needs;
  Device device;

  std::vector<Tensor<double>> leaves(bool with_grad) const {
    std::vector<Tensor<double>> in;
    for (std::size_t k = 0; k < values.size(); ++k) {
      in.push_back(from_host(values[k], shapes[k], device));
      if (with_grad && needs[k]) in.back().requires_grad_(true);
    }
    return in;
  }
  std::vector<double> eval(const std::vector<std::vector<double>>& vals) const {
    NoGradGuard g;
    std::vector<Tensor<double>> in;
    for (std::size_t k = 0; k < vals.size(); ++k) in.push_back(from_host(vals[k], shapes[k], device));
    return host(fn(in));
  }
  // d/dt of v . f(x + t u_k) at t = 0, by central differences.
  double directional(std::size_t k, const std::vector<double>& u, const std::vector<double>& v,
                     double eps) const {
    auto plus = values, minus = values;
    for (std::size_t i = 0; i < u.size(); ++i) {
      plus[k][i] += eps * u[i];
      minus[k][i] -= eps * u[i];
    }
    return (dot(v, eval(plus)) - dot(v, eval(minus))) / (2 * eps);
  }
};

inline bool close(double analytic, double numeric, const GradcheckOptions& o) {
  return std::fabs(analytic - numeric) <= o.atol + o.rtol * std::fabs(numeric);
}
}  // namespace gradcheck_detail

template <class F>
GradcheckResult gradcheck(F&& fn, const std::vector<Tensor<double>>& inputs,
                          const GradcheckOptions& o = {}) {
  using namespace gradcheck_detail;
  GradcheckResult res;
  std::ostringstream msg;
  auto fail_with = [&](const std::string& s) {
    if (res.ok) msg << "gradcheck failed:\n";
    res.ok = false;
    msg << "  " << s << "\n";
  };
  check(!inputs.empty(), "gradcheck", "needs at least one input");
  Problem p{Fn(fn), {}, {}, {}, inputs[0].device()};
  bool any = false;
  for (const auto& t : inputs) {
    p.values.push_back(host(t));
    p.shapes.push_back(t.shape());
    p.needs.push_back(t.requires_grad());
    any = any || t.requires_grad();
  }
  check(any, "gradcheck", "no input requires grad: nothing to check");
  Generator gen(o.seed);

  // Analytic J^T v for a cotangent v, on fresh leaves.
  auto analytic = [&](const std::vector<double>& v, int times) {
    auto in = p.leaves(true);
    auto out = p.fn(in);
    check(out.requires_grad(), "gradcheck", "the output does not require grad: the function "
          "does not depend differentiably on its inputs");
    auto vt = from_host(v, out.shape(), out.device());
    for (int r = 0; r < times; ++r) out.backward(vt, /*retain_graph=*/r + 1 < times);
    std::vector<std::vector<double>> g;
    for (std::size_t k = 0; k < in.size(); ++k) {
      if (!p.needs[k]) {
        if (in[k].grad().defined()) fail_with("input " + std::to_string(k) + " does not require grad but received one");
        g.emplace_back();
        continue;
      }
      g.push_back(in[k].grad().defined() ? host(in[k].grad()) : std::vector<double>(p.values[k].size(), 0.0));
    }
    return g;
  };

  const auto out0 = p.eval(p.values);
  std::int64_t in_total = 0;
  for (std::size_t k = 0; k < inputs.size(); ++k)
    if (p.needs[k]) in_total += static_cast<std::int64_t>(p.values[k].size());
  const bool full = in_total * static_cast<std::int64_t>(out0.size()) <= o.full_jacobian_max;

  if (full) {
    for (std::size_t i = 0; i < out0.size(); ++i) {
      std::vector<double> v(out0.size(), 0.0);
      v[i] = 1.0;
      auto g = analytic(v, 1);
      for (std::size_t k = 0; k < inputs.size(); ++k) {
        if (!p.needs[k]) continue;
        for (std::size_t j = 0; j < p.values[k].size(); ++j) {
          std::vector<double> u(p.values[k].size(), 0.0);
          u[j] = 1.0;
          const double num = p.directional(k, u, v, o.eps);
          if (!close(g[k][j], num, o)) {
            std::ostringstream s;
            s << "d out[" << i << "] / d input" << k << "[" << j << "]: analytic " << g[k][j]
              << ", numeric " << num;
            fail_with(s.str());
          }
        }
      }
    }
  } else {
    for (int r = 0; r < o.projections; ++r) {
      const auto v = normal_vector(out0.size(), gen);
      auto g = analytic(v, 1);
      for (std::size_t k = 0; k < inputs.size(); ++k) {
        if (!p.needs[k]) continue;
        const auto u = normal_vector(p.values[k].size(), gen);
        const double ana = dot(g[k], u), num = p.directional(k, u, v, o.eps);
        if (!close(ana, num, o)) {
          std::ostringstream s;
          s << "projection " << r << " of input" << k << " " << shape_str(p.shapes[k])
            << ": analytic " << ana << ", numeric " << num;
          fail_with(s.str());
        }
      }
    }
  }

  if (o.check_accumulation) {
    const auto v = normal_vector(out0.size(), gen);
    auto once = analytic(v, 1), twice = analytic(v, 2);
    for (std::size_t k = 0; k < inputs.size(); ++k)
      for (std::size_t j = 0; p.needs[k] && j < once[k].size(); ++j)
        if (std::fabs(twice[k][j] - 2 * once[k][j]) > 1e-9 * (1 + std::fabs(once[k][j]))) {
          fail_with("input " + std::to_string(k) + ": a second backward did not add into the "
                    "existing gradient (element " + std::to_string(j) + ")");
          break;
        }
  }
  res.message = msg.str();
  return res;
}

}  // namespace ligm
