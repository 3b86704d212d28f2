// Storage: one allocation on one device, shared by a tensor and all its views.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "ligm/backend/registry.hpp"
#include "ligm/core/memory.hpp"

namespace ligm {

class Storage {
 public:
  Storage(std::size_t bytes, Device device)
      : bytes_(bytes), device_(device), allocator_(&allocator_for(device)) {
    data_ = bytes ? allocator_->allocate(bytes) : nullptr;
    if (data_) memory_detail::add(device_, std::int64_t(bytes_));
  }
  ~Storage() {
    if (!data_) return;
    allocator_->deallocate(data_, bytes_);
    memory_detail::sub(device_, std::int64_t(bytes_));
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  // Bumped by every in-place write through any tensor on this storage; autograd compares it
  // with the version a backward rule saved.
  std::uint64_t version() const { return version_; }
  void bump_version() { ++version_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_;
  Device device_;
  Allocator* allocator_;
  std::uint64_t version_ = 0;
};

}  // namespace ligm
