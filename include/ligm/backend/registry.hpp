// Finding the backend and allocator of a device.
//
// Declared here, defined in registry_impl.hpp. In the default header-only mode ligm.hpp
// includes the definitions (and with them the CPU backend and Eigen). With
// LIGM_SEPARATE_BACKEND defined, user code sees only these declarations and links the
// ligm_backend library, which instantiates them once: user files then never parse Eigen.
//
// The CUDA backend is always a compiled library (ligm_cuda: kernels through nvcc, host code
// through g++). Builds that link it define LIGM_WITH_CUDA; the cuda:: queries and the CUDA
// backends are then defined there. Without it, Device::cuda() exists and every use of it
// raises "CUDA is not compiled in".
#pragma once
#include "ligm/backend/backend.hpp"

#if defined(LIGM_BUILDING_BACKEND) || defined(LIGM_SEPARATE_BACKEND)
#define LIGM_BACKEND_API
#else
#define LIGM_BACKEND_API inline
#endif

#if defined(LIGM_WITH_CUDA)
#define LIGM_CUDA_API
#else
#define LIGM_CUDA_API LIGM_BACKEND_API
#endif

namespace ligm {

template <class T>
Backend<T>& backend_for(Device device);

LIGM_BACKEND_API Allocator& allocator_for(Device device);

namespace cuda {
// True only when the CUDA backend is compiled in and a GPU is present.
LIGM_CUDA_API bool is_available();
// GPUs found (0 when CUDA is not compiled in, or on any error from the driver).
LIGM_CUDA_API int device_count();
// True when this build has the CUDA backend (even without a GPU).
LIGM_CUDA_API bool is_compiled();
// Waits for all work queued on every GPU (no-op without CUDA).
LIGM_CUDA_API void synchronize();
}  // namespace cuda

#if defined(LIGM_WITH_CUDA)
namespace cuda_detail {
// Defined in the ligm_cuda library; raise ligm::Error when GPU `index` does not exist.
template <class T>
Backend<T>& backend(int index);
Allocator& allocator(int index);
}  // namespace cuda_detail
#endif

}  // namespace ligm
