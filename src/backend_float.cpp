// The ligm_backend library, one dtype per translation unit so they compile in parallel:
// the CPU backend for float, for code built with LIGM_SEPARATE_BACKEND.
#define LIGM_BUILDING_BACKEND
#define LIGM_BACKEND_SHARED_TU  // allocator_for and cuda::* are defined here, once
#include "ligm/backend/registry_impl.hpp"

namespace ligm {
template Backend<float>& backend_for<float>(Device);
}  // namespace ligm
