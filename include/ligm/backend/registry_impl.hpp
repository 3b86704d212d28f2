// Definitions of backend_for / allocator_for / cuda::* (see registry.hpp).
#pragma once
#include "ligm/backend/cpu/cpu_backend.hpp"
#include "ligm/backend/registry.hpp"

namespace ligm {
namespace detail {
[[noreturn]] inline void cuda_not_compiled(Device device) {
  fail("device", "CUDA is not compiled in: cannot use device ", device.str(),
       " (configure with -Dcuda=enabled on a machine with the CUDA toolkit)");
}
}  // namespace detail

template <class T>
Backend<T>& backend_for(Device device) {
  if (device.is_cpu()) {
    static cpu::CpuBackend<T> backend;
    return backend;
  }
#if defined(LIGM_WITH_CUDA)
  return cuda_detail::backend<T>(device.index);
#else
  detail::cuda_not_compiled(device);
#endif
}

// The non-template definitions: in the header-only mode inline here; in the compiled backend
// once, in the translation unit that defines LIGM_BACKEND_SHARED_TU.
#if !defined(LIGM_BUILDING_BACKEND) || defined(LIGM_BACKEND_SHARED_TU)
LIGM_BACKEND_API Allocator& allocator_for(Device device) {
  if (device.is_cpu()) {
    // Never destroyed: tensors in static objects may free their memory after main returns.
    static auto* alloc = new cpu::CpuAllocator;
    return *alloc;
  }
#if defined(LIGM_WITH_CUDA)
  return cuda_detail::allocator(device.index);
#else
  detail::cuda_not_compiled(device);
#endif
}

#if !defined(LIGM_WITH_CUDA)
namespace cuda {
LIGM_CUDA_API bool is_compiled() { return false; }
LIGM_CUDA_API int device_count() { return 0; }
LIGM_CUDA_API bool is_available() { return false; }
LIGM_CUDA_API void synchronize() {}
}  // namespace cuda
#endif
#endif

}  // namespace ligm
