// Scalar types a Tensor<T> may hold, and their run-time names.
//
// float and double are the differentiable types (double exists so that every gradient can be
// checked by finite differences); int64_t holds indices and labels; bool holds masks.
#pragma once
#include <cstdint>
#include <type_traits>

namespace ligm {

enum class DType : std::uint8_t { Bool, Int64, Float32, Float64 };

template <class T>
inline constexpr bool is_supported_scalar_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t> ||
    std::is_same_v<T, bool>;

template <class T>
inline constexpr bool is_floating_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

template <class T>
constexpr DType dtype_of() {
  static_assert(is_supported_scalar_v<T>,
                "ligm::Tensor<T>: T must be float, double, std::int64_t or bool");
  if constexpr (std::is_same_v<T, float>) return DType::Float32;
  else if constexpr (std::is_same_v<T, double>) return DType::Float64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::Int64;
  else return DType::Bool;
}

constexpr const char* dtype_name(DType d) {
  switch (d) {
    case DType::Bool: return "bool";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "?";
}

constexpr std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::Bool: return 1;
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
  }
  return 0;
}

template <class T>
constexpr const char* dtype_name() { return dtype_name(dtype_of<T>()); }

}  // namespace ligm
