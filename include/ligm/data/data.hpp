// data: IDX/Fashion-MNIST reading and the DataLoader (included by ligm.hpp; needs zlib).
#pragma once
#include "ligm/data/idx.hpp"
#include "ligm/data/loader.hpp"
