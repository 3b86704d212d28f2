// Elementwise ops: unary math and activations, broadcasting binary arithmetic, comparisons,
// where, clamp, and the in-place variants. The math of each (forward and derivative) lives in
// backend/kernels/elementwise_math.hpp; here is how each op records its backward.
#pragma once
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "ligm/ops/copy.hpp"

namespace ligm {
namespace ops_detail {

template <class T>
Tensor<T> unary_op(const char* name, UnaryOp op, const Tensor<T>& x, UnaryParams p = {}) {
  defined_or_fail(x, name, "the input");
  auto y = Tensor<T>::empty(x.shape(), x.device());
  be(x).unary(op, p, x.cref(), y.ref());
  return autograd::record(name, y, {x},
                          [x = autograd::save(x), y = autograd::save(y), op, p](const Tensor<T>& g, const NeedsGrad&)
                              -> std::vector<Tensor<T>> {
                            auto xc = x.contiguous(), gc = g.contiguous();
                            auto dx = Tensor<T>::empty(x.shape(), x.device());
                            be(x).unary_backward(op, p, xc.data_ptr(), y.data_ptr(), gc.data_ptr(),
                                                 dx.data_ptr(), dx.numel());
                            return {dx};
                          });
}

// Forward of a broadcasting binary op, no autograd.
template <class T>
Tensor<T> binary_raw(BinaryOp op, const Tensor<T>& a, const Tensor<T>& b, const char* name) {
  same_device(a, b, name);
  const Shape shape = broadcast_operands(a, b, name);
  auto out = Tensor<T>::empty(shape, a.device());
  be(a).binary(op, broadcast_ref(a, shape), broadcast_ref(b, shape), out.ref());
  return out;
}

template <class T>
Tensor<bool> compare_op(CompareOp op, const Tensor<T>& a, const Tensor<T>& b, const char* name) {
  same_device(a, b, name);
  const Shape shape = broadcast_operands(a, b, name);
  auto out = Tensor<bool>::empty(shape, a.device());
  be(a).compare(op, broadcast_ref(a, shape), broadcast_ref(b, shape), out.ref());
  return out;
}

}  // namespace ops_detail

// --- unary math ------------------------------------------------------------------------------
#define LIGM_UNARY(fn, Op, Name)                                             \
  template <class T>                                                         \
  Tensor<T> fn(const Tensor<T>& x) {                                         \
    return ops_detail::unary_op(Name, UnaryOp::Op, x);                       \
  }
LIGM_UNARY(neg, Neg, "NegBackward")
LIGM_UNARY(abs, Abs, "AbsBackward")
LIGM_UNARY(sign, Sign, "SignBackward")
LIGM_UNARY(exp, Exp, "ExpBackward")
LIGM_UNARY(log, Log, "LogBackward")
LIGM_UNARY(log1p, Log1p, "Log1pBackward")
LIGM_UNARY(sqrt, Sqrt, "SqrtBackward")
LIGM_UNARY(rsqrt, Rsqrt, "RsqrtBackward")
LIGM_UNARY(reciprocal, Reciprocal, "ReciprocalBackward")
LIGM_UNARY(sin, Sin, "SinBackward")
LIGM_UNARY(cos, Cos, "CosBackward")
LIGM_UNARY(tanh, Tanh, "TanhBackward")
LIGM_UNARY(sigmoid, Sigmoid, "SigmoidBackward")
LIGM_UNARY(erf, Erf, "ErfBackward")
LIGM_UNARY(relu, Relu, "ReluBackward")
LIGM_UNARY(silu, Silu, "SiluBackward")
#undef LIGM_UNARY

template <class T>
Tensor<T> leaky_relu(const Tensor<T>& x, double negative_slope = 0.01) {
  return ops_detail::unary_op("LeakyReluBackward", UnaryOp::LeakyRelu, x, {negative_slope, 0});
}
template <class T>
Tensor<T> elu(const Tensor<T>& x, double alpha = 1.0) {
  return ops_detail::unary_op("EluBackward", UnaryOp::Elu, x, {alpha, 0});
}
// approximate: "none" (exact, erf) or "tanh".
template <class T>
Tensor<T> gelu(const Tensor<T>& x, std::string_view approximate = "none") {
  check(approximate == "none" || approximate == "tanh", "gelu",
        "approximate must be \"none\" or \"tanh\", got \"", approximate, "\"");
  return ops_detail::unary_op("GeluBackward", approximate == "tanh" ? UnaryOp::GeluTanh : UnaryOp::Gelu, x);
}
template <class T>
Tensor<T> softplus(const Tensor<T>& x, double beta = 1.0, double threshold = 20.0) {
  check(beta != 0, "softplus", "beta must be nonzero");
  return ops_detail::unary_op("SoftplusBackward", UnaryOp::Softplus, x, {beta, threshold});
}
template <class T>
Tensor<T> pow(const Tensor<T>& x, double exponent) {
  return ops_detail::unary_op("PowBackward", UnaryOp::PowScalar, x, {exponent, 0});
}
template <class T>
Tensor<T> square(const Tensor<T>& x) { return pow(x, 2.0); }
// Bounds default to "no bound".
template <class T>
Tensor<T> clamp(const Tensor<T>& x, double min = -std::numeric_limits<double>::infinity(),
                double max = std::numeric_limits<double>::infinity()) {
  return ops_detail::unary_op("ClampBackward", UnaryOp::Clamp, x, {min, max});
}

// --- binary arithmetic with broadcasting ------------------------------------------------------
template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  auto out = ops_detail::binary_raw(BinaryOp::Add, a, b, "add");
  return autograd::record("AddBackward", out, {a, b},
                          [sa = a.shape(), sb = b.shape()](const Tensor<T>& g, const NeedsGrad&)
                              -> std::vector<Tensor<T>> { return {sum_to(g, sa), sum_to(g, sb)}; });
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  auto out = ops_detail::binary_raw(BinaryOp::Sub, a, b, "sub");
  return autograd::record("SubBackward", out, {a, b},
                          [sa = a.shape(), sb = b.shape()](const Tensor<T>& g, const NeedsGrad& n)
                              -> std::vector<Tensor<T>> {
                            return {sum_to(g, sa), n[1] ? sum_to(neg(g), sb) : Tensor<T>()};
                          });
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  auto out = ops_detail::binary_raw(BinaryOp::Mul, a, b, "mul");
  return autograd::record("MulBackward", out, {a, b},
                          [a = autograd::save(a), b = autograd::save(b)](const Tensor<T>& g, const NeedsGrad& n)
                              -> std::vector<Tensor<T>> {
                            return {n[0] ? sum_to(mul(g, b), a.shape()) : Tensor<T>(),
                                    n[1] ? sum_to(mul(g, a), b.shape()) : Tensor<T>()};
                          });
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  auto out = ops_detail::binary_raw(BinaryOp::Div, a, b, "div");
  return autograd::record("DivBackward", out, {a, b},
                          [a = autograd::save(a), b = autograd::save(b)](const Tensor<T>& g, const NeedsGrad& n)
                              -> std::vector<Tensor<T>> {
                            Tensor<T> ga, gb;
                            if (n[0]) ga = sum_to(div(g, b), a.shape());
                            if (n[1]) gb = sum_to(neg(div(mul(g, a), mul(b, b))), b.shape());
                            return {ga, gb};
                          });
}

template <class T> Tensor<T> where(const Tensor<bool>& cond, const Tensor<T>& a, const Tensor<T>& b);

template <class T>
Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b) {
  auto out = ops_detail::binary_raw(BinaryOp::Pow, a, b, "pow");
  return autograd::record(
      "PowBackward", out, {a, b},
      [a = autograd::save(a), b = autograd::save(b), out = autograd::save(out)](const Tensor<T>& g, const NeedsGrad& n)
          -> std::vector<Tensor<T>> {
        Tensor<T> ga, gb;
        // d/da a^b = b a^(b-1) (0 where b == 0, even at a == 0, as PyTorch); d/db a^b = a^b log a
        // (taken as 0 where a == 0 and b >= 0).
        if (n[0]) {
          auto da = where(eq(b, T(0)), scalar_tensor<T>(0, g.device()), mul(b, pow(a, sub(b, T(1)))));
          ga = sum_to(mul(g, da), a.shape());
        }
        if (n[1]) {
          auto safe = where(eq(a, T(0)), ones_like(a), a);
          gb = sum_to(mul(g, mul(out, log(safe))), b.shape());
        }
        return {ga, gb};
      });
}

// maximum/minimum: on ties the gradient is split evenly, as in PyTorch.
template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b);

namespace ops_detail {
template <class T>
Tensor<T> min_max(bool is_max, const Tensor<T>& a, const Tensor<T>& b) {
  const char* name = is_max ? "maximum" : "minimum";
  auto out = binary_raw(is_max ? BinaryOp::Maximum : BinaryOp::Minimum, a, b, name);
  return autograd::record(is_max ? "MaximumBackward" : "MinimumBackward", out, {a, b},
                          [a = autograd::save(a), b = autograd::save(b), is_max](const Tensor<T>& g, const NeedsGrad&)
                              -> std::vector<Tensor<T>> {
                            auto wins_a = compare_op(is_max ? CompareOp::Gt : CompareOp::Lt, a, b, "maximum");
                            auto tie = compare_op(CompareOp::Eq, a, b, "maximum");
                            const Shape& s = g.shape();
                            auto to_t = [&](const Tensor<bool>& m) { return m.template to<T>(); };
                            auto wa = add(to_t(wins_a), mul(to_t(tie), scalar_tensor<T>(T(0.5), g.device())));
                            auto wb = sub(ones<T>(s, g.device()), wa);
                            return {sum_to(mul(g, wa), a.shape()), sum_to(mul(g, wb), b.shape())};
                          });
}
}  // namespace ops_detail

template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b) { return ops_detail::min_max(true, a, b); }
template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b) { return ops_detail::min_max(false, a, b); }

// --- comparisons and where --------------------------------------------------------------------
#define LIGM_COMPARE(fn, Op)                                                     \
  template <class T>                                                             \
  Tensor<bool> fn(const Tensor<T>& a, const Tensor<T>& b) {                      \
    return ops_detail::compare_op(CompareOp::Op, a, b, #fn);                     \
  }                                                                              \
  template <class T>                                                             \
  Tensor<bool> fn(const Tensor<T>& a, T b) {                                     \
    return ops_detail::compare_op(CompareOp::Op, a, scalar_tensor<T>(b, a.device()), #fn); \
  }
LIGM_COMPARE(eq, Eq)
LIGM_COMPARE(ne, Ne)
LIGM_COMPARE(lt, Lt)
LIGM_COMPARE(le, Le)
LIGM_COMPARE(gt, Gt)
LIGM_COMPARE(ge, Ge)
#undef LIGM_COMPARE

// Elementwise cond ? a : b with broadcasting over all three.
template <class T>
Tensor<T> where(const Tensor<bool>& cond, const Tensor<T>& a, const Tensor<T>& b) {
  ops_detail::same_device(cond, a, "where");
  ops_detail::same_device(a, b, "where");
  const Shape ab = ops_detail::broadcast_operands(a, b, "where");
  Shape shape;
  if (!try_broadcast(cond.shape(), ab, shape))
    broadcast_shapes(cond.shape(), ab, "where", "; bool condition, " + cond.device().str());
  auto out = Tensor<T>::empty(shape, a.device());
  ops_detail::be(a).where(ops_detail::broadcast_ref(cond, shape), ops_detail::broadcast_ref(a, shape),
                          ops_detail::broadcast_ref(b, shape), out.ref());
  return autograd::record("WhereBackward", out, {a, b},
                          [cond, sa = a.shape(), sb = b.shape()](const Tensor<T>& g, const NeedsGrad& n)
                              -> std::vector<Tensor<T>> {
                            auto zero = scalar_tensor<T>(0, g.device());
                            Tensor<T> ga, gb;
                            if (n[0]) ga = sum_to(where(cond, g, zero), sa);
                            if (n[1]) gb = sum_to(where(cond, zero, g), sb);
                            return {ga, gb};
                          });
}

template <class T>
Tensor<T> where(const Tensor<bool>& cond, const Tensor<T>& a, std::type_identity_t<T> b) {
  return where(cond, a, scalar_tensor<T>(b, a.device()));
}

// Entries where mask is true become `value`.
template <class T>
Tensor<T> masked_fill(const Tensor<T>& x, const Tensor<bool>& mask, std::type_identity_t<T> value) {
  return where(mask, scalar_tensor<T>(value, x.device()), x);
}

inline Tensor<bool> logical_not(const Tensor<bool>& m) { return eq(m, false); }
// And, or, xor of bool tensors, broadcasting, as comparisons of bools (false < true):
// a and b = a > not b, a or b = a >= not b, a xor b = a != b.
inline Tensor<bool> logical_and(const Tensor<bool>& a, const Tensor<bool>& b) { return gt(a, logical_not(b)); }
inline Tensor<bool> logical_or(const Tensor<bool>& a, const Tensor<bool>& b) { return ge(a, logical_not(b)); }
inline Tensor<bool> logical_xor(const Tensor<bool>& a, const Tensor<bool>& b) { return ne(a, b); }

// --- NaN and infinity (torch.isnan, isinf, isfinite, nan_to_num) ------------------------------
// The tests: NaN is the only value unequal to itself; x - x is 0 exactly when x is finite.
// Integer tensors hold neither.
template <class T>
Tensor<bool> isnan(const Tensor<T>& x) {
  ops_detail::defined_or_fail(x, "isnan", "the input");
  NoGradGuard no_grad;
  return ne(x, x);
}
template <class T>
Tensor<bool> isfinite(const Tensor<T>& x) {
  ops_detail::defined_or_fail(x, "isfinite", "the input");
  NoGradGuard no_grad;
  if constexpr (!is_floating_v<T>) return eq(x, x);
  else return eq(sub(x, x), T(0));
}
template <class T>
Tensor<bool> isinf(const Tensor<T>& x) {
  ops_detail::defined_or_fail(x, "isinf", "the input");
  NoGradGuard no_grad;
  if constexpr (!is_floating_v<T>) return ne(x, x);
  else return eq(abs(x), std::numeric_limits<T>::infinity());
}

// NaN becomes `nan`, +inf `posinf` and -inf `neginf` (by default the largest and the lowest
// finite values of T). The gradient flows where x is finite, and is 0 where it was replaced.
template <class T>
Tensor<T> nan_to_num(const Tensor<T>& x, double nan = 0.0, std::optional<double> posinf = std::nullopt,
                     std::optional<double> neginf = std::nullopt) {
  ops_detail::floating_only<T>("nan_to_num");
  ops_detail::defined_or_fail(x, "nan_to_num", "the input");
  Tensor<T> replacement;
  {
    NoGradGuard no_grad;
    const T big = posinf ? T(*posinf) : std::numeric_limits<T>::max();
    const T low = neginf ? T(*neginf) : std::numeric_limits<T>::lowest();
    replacement = where(isnan(x), scalar_tensor<T>(T(nan), x.device()),
                        where(gt(x, T(0)), scalar_tensor<T>(big, x.device()), scalar_tensor<T>(low, x.device())));
  }
  return where(isfinite(x), x, replacement);
}

// --- operators ------------------------------------------------------------------------------
template <class T> Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) { return add(a, b); }
template <class T> Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) { return sub(a, b); }
template <class T> Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) { return mul(a, b); }
template <class T> Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) { return div(a, b); }
template <class T> Tensor<T> operator-(const Tensor<T>& a) { return neg(a); }

#define LIGM_SCALAR_OPS(op, fn)                                                        \
  template <class T, class S, class = std::enable_if_t<std::is_arithmetic_v<S>>>       \
  Tensor<T> operator op(const Tensor<T>& a, S s) {                                     \
    return fn(a, scalar_tensor<T>(static_cast<T>(s), a.device()));                     \
  }                                                                                    \
  template <class T, class S, class = std::enable_if_t<std::is_arithmetic_v<S>>>       \
  Tensor<T> operator op(S s, const Tensor<T>& a) {                                     \
    return fn(scalar_tensor<T>(static_cast<T>(s), a.device()), a);                     \
  }
LIGM_SCALAR_OPS(+, add)
LIGM_SCALAR_OPS(-, sub)
LIGM_SCALAR_OPS(*, mul)
LIGM_SCALAR_OPS(/, div)
#undef LIGM_SCALAR_OPS

// Scalar forms of the binary ops: add(x, 1.0), mul(0.5, x), ...
#define LIGM_SCALAR_FNS(fn)                                                                \
  template <class T>                                                                       \
  Tensor<T> fn(const Tensor<T>& a, std::type_identity_t<T> s) {                            \
    return fn(a, scalar_tensor<T>(s, a.device()));                                         \
  }                                                                                        \
  template <class T>                                                                       \
  Tensor<T> fn(std::type_identity_t<T> s, const Tensor<T>& a) {                            \
    return fn(scalar_tensor<T>(s, a.device()), a);                                         \
  }
LIGM_SCALAR_FNS(add)
LIGM_SCALAR_FNS(sub)
LIGM_SCALAR_FNS(mul)
LIGM_SCALAR_FNS(div)
LIGM_SCALAR_FNS(maximum)
LIGM_SCALAR_FNS(minimum)
#undef LIGM_SCALAR_FNS

// --- in place (not recorded) ------------------------------------------------------------------
namespace ops_detail {
template <class T>
Tensor<T>& binary_inplace(BinaryOp op, Tensor<T>& self, const Tensor<T>& other, const char* name) {
  check_inplace(self, name);
  same_device(self, other, name);
  check(broadcast_shapes(self.shape(), other.shape(), name) == self.shape(), name,
        "the result of shape ", broadcast_shapes(self.shape(), other.shape(), name),
        " does not fit the destination of shape ", self.shape());
  // Elementwise with the output aliasing input a: each element reads its own position first.
  be(self).binary(op, self.cref(), broadcast_ref(other, self.shape()), self.ref());
  return self;
}
}  // namespace ops_detail

template <class T>
Tensor<T>& Tensor<T>::add_(const Tensor<T>& other, T alpha) {
  if (alpha == T(1)) return ops_detail::binary_inplace(BinaryOp::Add, *this, other, "add_");
  NoGradGuard g;
  return ops_detail::binary_inplace(BinaryOp::Add, *this, mul(other, scalar_tensor<T>(alpha, device())), "add_");
}
template <class T>
Tensor<T>& Tensor<T>::sub_(const Tensor<T>& o) { return ops_detail::binary_inplace(BinaryOp::Sub, *this, o, "sub_"); }
template <class T>
Tensor<T>& Tensor<T>::mul_(const Tensor<T>& o) { return ops_detail::binary_inplace(BinaryOp::Mul, *this, o, "mul_"); }
template <class T>
Tensor<T>& Tensor<T>::div_(const Tensor<T>& o) { return ops_detail::binary_inplace(BinaryOp::Div, *this, o, "div_"); }
template <class T>
Tensor<T>& Tensor<T>::add_(T s) { return add_(scalar_tensor<T>(s, device())); }
template <class T>
Tensor<T>& Tensor<T>::mul_(T s) { return mul_(scalar_tensor<T>(s, device())); }

}  // namespace ligm
