// The math of every elementwise op, forward and backward side by side.
//
// This header is shared by the CPU backend and the CUDA kernels: it has no includes
// beyond <cmath>, and every function is marked LIGM_HD so nvcc can compile it for the device.
// A unary op's backward receives the input x, the forward output y and the incoming gradient
// g, and returns dL/dx; each rule sits right under its forward.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#define LIGM_HD __host__ __device__ inline
#define LIGM_HD_ALWAYS_INLINE __host__ __device__ __forceinline__
#else
#define LIGM_HD inline
// For the branch-free math below: GCC otherwise keeps a call to it in some loops ("call is
// cold"), and a loop with a call does not vectorise.
#define LIGM_HD_ALWAYS_INLINE [[gnu::always_inline]] inline
#endif

namespace ligm {

enum class UnaryOp : std::uint8_t {
  Neg, Abs, Sign, Exp, Log, Log1p, Sqrt, Rsqrt, Reciprocal, Sin, Cos, Tanh, Sigmoid, Erf,
  Relu, LeakyRelu, Elu, Gelu, GeluTanh, Silu, Softplus, PowScalar, Clamp,
};

// Scalar parameters of the parameterised unary ops (slope, alpha, beta/threshold, exponent,
// clamp bounds). Unused fields are ignored.
struct UnaryParams {
  double a = 0, b = 0;
};

enum class BinaryOp : std::uint8_t { Add, Sub, Mul, Div, Pow, Maximum, Minimum };
enum class CompareOp : std::uint8_t { Eq, Ne, Lt, Le, Gt, Ge };
enum class ReduceOp : std::uint8_t { Sum, Max, Min };

namespace math {

// NaN test that is simply false for integer types (no self-comparison warnings).
template <class T> LIGM_HD bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return x != x;
  else return false;
}

// erf: float32 as a rational function of x on [-4, 4] (|error| < 2e-7; the approximation
// Eigen and XLA use), which has no exp in it, so loops over it vectorise; float64 keeps
// std::erf.
template <class T> LIGM_HD_ALWAYS_INLINE T erf(T x) {
  if constexpr (std::is_same_v<T, float>) {
    x = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
    const float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return x * p / q;
  } else {
    return std::erf(x);
  }
}

// exp: float32 on the host by Cephes' method (e^x = 2^n e^r with n = round(x / ln 2) and e^r
// a degree-6 polynomial, within 1 ulp), written without calls so that loops over it
// vectorise; 0 below the smallest normal result, +inf above the largest. The device's expf and
// std::exp for float64 otherwise.
template <class T> LIGM_HD_ALWAYS_INLINE T exp(T x) {
#if !defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) {
    // Branch-free (selects, not jumps), so the compiler can vectorise loops over it.
    const float lo = -87.33654022216797f, hi = 88.72283935546875f;
    const float xc = x < lo ? lo : (x > hi ? hi : x);
    // n = round(x / ln 2) by the 1.5 * 2^23 trick (std::floor would not vectorise).
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float er = p * (r * r) + r + 1.0f;
    // er * 2^n in two halves, so that n = 128 (x near the top of the range) stays finite.
    const std::int32_t ni = std::int32_t(n), n1 = ni >> 1, n2 = ni - n1;
    const std::int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
    float s1, s2;
    std::memcpy(&s1, &b1, 4);
    std::memcpy(&s2, &b2, 4);
    float y = er * s1 * s2;
    y = x < lo ? 0.0f : y;
    y = x > hi ? INFINITY : y;
    return x != x ? x : y;
  }
#endif
  return std::exp(x);
}

template <class T> LIGM_HD T sigmoid(T x) {
  // Stable on both tails.
  if (x >= T(0)) return T(1) / (T(1) + math::exp(-x));
  const T e = math::exp(x);
  return e / (T(1) + e);
}

// a^b for integers by repeated squaring (what pow(double(a), double(b)) truncates to).
template <class T>
LIGM_HD T integer_pow(T a, T b) {
  if (b < T(0)) return a == T(1) ? T(1) : a == T(-1) ? (b % T(2) ? T(-1) : T(1)) : T(0);
  T result = 1;
  while (b > T(0)) {
    if (b & T(1)) result *= a;
    a *= a;
    b >>= 1;
  }
  return result;
}

template <class T>
LIGM_HD T unary_forward_float(UnaryOp op, UnaryParams p, T x) {
  constexpr T kSqrt1_2 = T(0.70710678118654752440);
  constexpr T kSqrt2OverPi = T(0.79788456080286535588);
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return x < T(0) ? -x : x;
    case UnaryOp::Sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::Exp: return math::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Log1p: return std::log1p(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return T(1) / std::sqrt(x);
    case UnaryOp::Reciprocal: return T(1) / x;
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return sigmoid(x);
    case UnaryOp::Erf: return math::erf(x);
    case UnaryOp::Relu: return x > T(0) ? x : T(0);
    case UnaryOp::LeakyRelu: return x > T(0) ? x : T(p.a) * x;
    case UnaryOp::Elu: return x > T(0) ? x : T(p.a) * std::expm1(x);
    case UnaryOp::Gelu: return T(0.5) * x * (T(1) + math::erf(x * kSqrt1_2));
    case UnaryOp::GeluTanh: {
      const T inner = kSqrt2OverPi * (x + T(0.044715) * x * x * x);
      return T(0.5) * x * (T(1) + std::tanh(inner));
    }
    case UnaryOp::Silu: return x * sigmoid(x);
    case UnaryOp::Softplus: {  // a = beta, b = threshold
      const T bx = T(p.a) * x;
      return bx > T(p.b) ? x : std::log1p(std::exp(bx)) / T(p.a);
    }
    case UnaryOp::PowScalar: return std::pow(x, T(p.a));
    case UnaryOp::Clamp: return x < T(p.a) ? T(p.a) : (x > T(p.b) ? T(p.b) : x);
  }
  return x;
}

// Integer tensors support the unary ops that need no floating-point math.
LIGM_HD bool unary_supports_integers(UnaryOp op) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign ||
         op == UnaryOp::Relu || op == UnaryOp::Clamp;
}

template <class T>
LIGM_HD T unary_forward(UnaryOp op, UnaryParams p, T x) {
  if constexpr (!std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::Neg: return -x;
      case UnaryOp::Abs: return x < T(0) ? -x : x;
      case UnaryOp::Sign: return T((x > T(0)) - (x < T(0)));
      case UnaryOp::Relu: return x > T(0) ? x : T(0);
      case UnaryOp::Clamp: return x < T(p.a) ? T(p.a) : (x > T(p.b) ? T(p.b) : x);
      default: return x;  // not reached: callers refuse the other ops on integers
    }
  } else {
    return unary_forward_float(op, p, x);
  }
}

template <class T>
LIGM_HD T unary_backward(UnaryOp op, UnaryParams p, T x, T y, T g) {
  constexpr T kSqrt1_2 = T(0.70710678118654752440);
  constexpr T kInvSqrt2Pi = T(0.39894228040143267794);
  constexpr T kTwoOverSqrtPi = T(1.12837916709551257390);
  constexpr T kSqrt2OverPi = T(0.79788456080286535588);
  switch (op) {
    case UnaryOp::Neg: return -g;
    case UnaryOp::Abs: return g * T((x > T(0)) - (x < T(0)));
    case UnaryOp::Sign: return T(0);
    case UnaryOp::Exp: return g * y;
    case UnaryOp::Log: return g / x;
    case UnaryOp::Log1p: return g / (T(1) + x);
    case UnaryOp::Sqrt: return g / (T(2) * y);
    case UnaryOp::Rsqrt: return T(-0.5) * g * y * y * y;
    case UnaryOp::Reciprocal: return -g * y * y;
    case UnaryOp::Sin: return g * std::cos(x);
    case UnaryOp::Cos: return -g * std::sin(x);
    case UnaryOp::Tanh: return g * (T(1) - y * y);
    case UnaryOp::Sigmoid: return g * y * (T(1) - y);
    case UnaryOp::Erf: return g * kTwoOverSqrtPi * math::exp(-x * x);
    case UnaryOp::Relu: return x > T(0) ? g : T(0);
    case UnaryOp::LeakyRelu: return x > T(0) ? g : g * T(p.a);
    case UnaryOp::Elu: return x > T(0) ? g : g * (y + T(p.a));
    case UnaryOp::Gelu: {
      const T cdf = T(0.5) * (T(1) + math::erf(x * kSqrt1_2));
      const T pdf = kInvSqrt2Pi * math::exp(T(-0.5) * x * x);
      return g * (cdf + x * pdf);
    }
    case UnaryOp::GeluTanh: {
      const T x2 = x * x;
      const T inner = kSqrt2OverPi * (x + T(0.044715) * x2 * x);
      const T t = std::tanh(inner);
      const T dinner = kSqrt2OverPi * (T(1) + T(3 * 0.044715) * x2);
      return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner);
    }
    case UnaryOp::Silu: {
      const T s = sigmoid(x);
      return g * s * (T(1) + x * (T(1) - s));
    }
    case UnaryOp::Softplus: {
      const T bx = T(p.a) * x;
      return bx > T(p.b) ? g : g * sigmoid(bx);
    }
    case UnaryOp::PowScalar:
      return p.a == 0 ? T(0) : g * T(p.a) * std::pow(x, T(p.a - 1));
    case UnaryOp::Clamp: return (x >= T(p.a) && x <= T(p.b)) ? g : T(0);
  }
  return g;
}

template <class T>
LIGM_HD T binary_forward(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow:
      if constexpr (std::is_integral_v<T>) return integer_pow(a, b);
      else return T(std::pow(a, b));
    case BinaryOp::Maximum: return a < b ? b : a;
    case BinaryOp::Minimum: return b < a ? b : a;
  }
  return a;
}

template <class T>
LIGM_HD bool compare(CompareOp op, T a, T b) {
  switch (op) {
    case CompareOp::Eq: return a == b;
    case CompareOp::Ne: return a != b;
    case CompareOp::Lt: return a < b;
    case CompareOp::Le: return a <= b;
    case CompareOp::Gt: return a > b;
    case CompareOp::Ge: return a >= b;
  }
  return false;
}

}  // namespace math

// Calls f(std::integral_constant<UnaryOp, op>{}): kernels written against a compile-time op
// compile to one tight loop per op instead of a switch per element.
template <class F>
decltype(auto) dispatch_unary(UnaryOp op, const F& f) {
  switch (op) {
#define LIGM_CASE(Name) \
  case UnaryOp::Name: return f(std::integral_constant<UnaryOp, UnaryOp::Name>{});
    LIGM_CASE(Neg) LIGM_CASE(Abs) LIGM_CASE(Sign) LIGM_CASE(Exp) LIGM_CASE(Log) LIGM_CASE(Log1p)
    LIGM_CASE(Sqrt) LIGM_CASE(Rsqrt) LIGM_CASE(Reciprocal) LIGM_CASE(Sin) LIGM_CASE(Cos)
    LIGM_CASE(Tanh) LIGM_CASE(Sigmoid) LIGM_CASE(Erf) LIGM_CASE(Relu) LIGM_CASE(LeakyRelu)
    LIGM_CASE(Elu) LIGM_CASE(Gelu) LIGM_CASE(GeluTanh) LIGM_CASE(Silu) LIGM_CASE(Softplus)
    LIGM_CASE(PowScalar) LIGM_CASE(Clamp)
#undef LIGM_CASE
  }
  return f(std::integral_constant<UnaryOp, UnaryOp::Neg>{});
}

template <class F>
decltype(auto) dispatch_binary(BinaryOp op, const F& f) {
  switch (op) {
#define LIGM_CASE(Name) \
  case BinaryOp::Name: return f(std::integral_constant<BinaryOp, BinaryOp::Name>{});
    LIGM_CASE(Add) LIGM_CASE(Sub) LIGM_CASE(Mul) LIGM_CASE(Div) LIGM_CASE(Pow) LIGM_CASE(Maximum)
    LIGM_CASE(Minimum)
#undef LIGM_CASE
  }
  return f(std::integral_constant<BinaryOp, BinaryOp::Add>{});
}

namespace kernels {
// The accumulator of sums and means: float sums accumulate in double, as the CPU backend's
// general path does.
template <class T>
using ReduceAcc = std::conditional_t<std::is_same_v<T, float>, double, T>;
}  // namespace kernels

}  // namespace ligm
