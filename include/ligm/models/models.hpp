// ligm::models: ready-made architectures with the parameter names of their PyTorch
// counterparts (torchvision, timm, nanoGPT). Not part of ligm.hpp: include it where needed.
#pragma once
#include "ligm/models/common.hpp"
#include "ligm/models/gpt.hpp"
#include "ligm/models/mlp.hpp"
#include "ligm/models/resnet.hpp"
#include "ligm/models/unet.hpp"
#include "ligm/models/vit.hpp"
