// The ligm library's explicit instantiations for float: tensors and ops (see ligm/instantiations.hpp),
// split over a few files that compile in parallel.
#include "ligm/ligm.hpp"

namespace ligm {
LIGM_INSTANTIATE_TENSOR(template, float)
LIGM_INSTANTIATE_NUMERIC(template, float)
LIGM_INSTANTIATE_FLOATING_OPS(template, float)
}  // namespace ligm
