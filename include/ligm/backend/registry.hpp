// Finding the backend and allocator of a device.
//
// Declared here, defined in registry_impl.hpp. In the default header-only mode ligm.hpp
// includes the definitions (and with them the CPU backend and Eigen). With
// LIGM_SEPARATE_BACKEND defined, user code sees only these declarations and links the
// ligm_backend library, which instantiates them once: user files then never parse Eigen.
#pragma once
#include "ligm/backend/backend.hpp"

#if defined(LIGM_BUILDING_BACKEND) || defined(LIGM_SEPARATE_BACKEND)
#define LIGM_BACKEND_API
#else
#define LIGM_BACKEND_API inline
#endif

namespace ligm {

template <class T>
Backend<T>& backend_for(Device device);

LIGM_BACKEND_API Allocator& allocator_for(Device device);

namespace cuda {
// True only when the CUDA backend is compiled in and a GPU is present.
LIGM_BACKEND_API bool is_available();
LIGM_BACKEND_API int device_count();
// True when this build has the CUDA backend (even without a GPU).
LIGM_BACKEND_API bool is_compiled();
}  // namespace cuda

}  // namespace ligm
