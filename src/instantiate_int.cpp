// The ligm library's explicit instantiations for std::int64_t and bool (see ligm/instantiations.hpp),
// split over a few files that compile in parallel.
#include "ligm/ligm.hpp"

namespace ligm {
LIGM_INSTANTIATE_TENSOR(template, std::int64_t)
LIGM_INSTANTIATE_NUMERIC(template, std::int64_t)
LIGM_INSTANTIATE_TENSOR(template, bool)
}  // namespace ligm
