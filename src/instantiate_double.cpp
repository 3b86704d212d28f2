// The ligm library's explicit instantiations for double (see ligm/instantiations.hpp),
// split over a few files that compile in parallel.
#include "ligm/ligm.hpp"

namespace ligm {
LIGM_INSTANTIATE_FLOATING(template, double)
}  // namespace ligm
