// data: IDX/Fashion-MNIST reading, datasets and samplers, the DataLoader, image-batch
// transforms, the byte tokenizer and text dataset (included by ligm.hpp; needs zlib).
#pragma once
#include "ligm/data/dataset.hpp"
#include "ligm/data/idx.hpp"
#include "ligm/data/loader.hpp"
#include "ligm/data/text.hpp"
#include "ligm/data/transforms.hpp"
