// The ligm_backend library, one dtype per translation unit so they compile in parallel:
// the CPU backend for double, for code built with LIGM_SEPARATE_BACKEND.
#define LIGM_BUILDING_BACKEND
#include "ligm/backend/registry_impl.hpp"

namespace ligm {
template Backend<double>& backend_for<double>(Device);
}  // namespace ligm
