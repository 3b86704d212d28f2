// Device: where a tensor's storage lives. A run-time value, so the same code runs on CPU or GPU.
#pragma once
#include <ostream>
#include <string>

namespace ligm {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static constexpr Device cpu() { return {DeviceType::CPU, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }

  constexpr bool is_cpu() const { return type == DeviceType::CPU; }
  constexpr bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

  friend constexpr bool operator==(Device a, Device b) {
    return a.type == b.type && (a.type == DeviceType::CPU || a.index == b.index);
  }
  friend std::ostream& operator<<(std::ostream& os, Device d) { return os << d.str(); }
};

}  // namespace ligm
