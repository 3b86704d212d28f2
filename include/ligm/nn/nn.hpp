// nn: modules, layers, containers and initialisers (included by ligm.hpp).
#pragma once
#include "ligm/nn/activation.hpp"
#include "ligm/nn/checkpoint.hpp"
#include "ligm/nn/container.hpp"
#include "ligm/nn/conv.hpp"
#include "ligm/nn/embedding.hpp"
#include "ligm/nn/init.hpp"
#include "ligm/nn/linear.hpp"
#include "ligm/nn/module.hpp"
#include "ligm/nn/normalization.hpp"
#include "ligm/nn/pool.hpp"
#include "ligm/nn/transformer.hpp"
