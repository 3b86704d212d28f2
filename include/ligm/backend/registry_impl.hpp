// Definitions of backend_for / allocator_for / cuda::* (see registry.hpp).
#pragma once
#include "ligm/backend/cpu/cpu_backend.hpp"
#include "ligm/backend/registry.hpp"

namespace ligm {
namespace detail {
[[noreturn]] inline void cuda_not_available(Device device) {
  if (!cuda::is_compiled())
    fail("device", "CUDA is not compiled in: cannot use device ", device.str(),
         " (configure with -Dcuda=enabled on a machine with the CUDA toolkit)");
  fail("device", "no CUDA GPU is available for device ", device.str());
}
}  // namespace detail

template <class T>
Backend<T>& backend_for(Device device) {
  if (device.is_cpu()) {
    static cpu::CpuBackend<T> backend;
    return backend;
  }
  detail::cuda_not_available(device);
}

// The non-template definitions: in the header-only mode inline here; in the compiled backend
// once, in the translation unit that defines LIGM_BACKEND_SHARED_TU.
#if !defined(LIGM_BUILDING_BACKEND) || defined(LIGM_BACKEND_SHARED_TU)
LIGM_BACKEND_API Allocator& allocator_for(Device device) {
  if (device.is_cpu()) {
    static cpu::CpuAllocator alloc;
    return alloc;
  }
  detail::cuda_not_available(device);
}

namespace cuda {
LIGM_BACKEND_API bool is_compiled() { return false; }
LIGM_BACKEND_API int device_count() { return 0; }
LIGM_BACKEND_API bool is_available() { return device_count() > 0; }
}  // namespace cuda
#endif

}  // namespace ligm
