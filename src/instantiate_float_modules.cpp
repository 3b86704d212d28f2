// The ligm library's explicit instantiations for float: modules, optimizers, the loader (see ligm/instantiations.hpp),
// split over a few files that compile in parallel.
#include "ligm/ligm.hpp"

namespace ligm {
LIGM_INSTANTIATE_MODULES(template, float)
}  // namespace ligm
