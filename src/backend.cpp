// The ligm_backend library: the CPU backend (and Eigen) compiled once, for code built with
// LIGM_SEPARATE_BACKEND.
#define LIGM_BUILDING_BACKEND
#include "ligm/backend/registry_impl.hpp"

namespace ligm {
template Backend<float>& backend_for<float>(Device);
template Backend<double>& backend_for<double>(Device);
template Backend<std::int64_t>& backend_for<std::int64_t>(Device);
template Backend<bool>& backend_for<bool>(Device);
}  // namespace ligm
