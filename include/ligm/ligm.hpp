// ligm: the umbrella header. Include this and use namespace ligm.
//
// Header-only by default. Define LIGM_SEPARATE_BACKEND (and link the ligm_backend library)
// to keep the CPU backend and Eigen out of your translation units; define
// LIGM_EXTERN_TEMPLATES too (and link the ligm library) to take the float/double/int64 ops,
// modules and optimizers already compiled from it (Meson's ligm_dep does both).
#pragma once

#include "ligm/core/device.hpp"
#include "ligm/core/dtype.hpp"
#include "ligm/core/error.hpp"
#include "ligm/core/generator.hpp"
#include "ligm/core/memory.hpp"
#include "ligm/core/shape.hpp"
#include "ligm/core/tensor.hpp"
#include "ligm/core/threads.hpp"

#include "ligm/autograd/anomaly.hpp"
#include "ligm/autograd/checkpoint.hpp"
#include "ligm/autograd/engine.hpp"
#include "ligm/autograd/gradcheck.hpp"
#include "ligm/autograd/graph.hpp"
#include "ligm/autograd/grad_mode.hpp"
#include "ligm/autograd/profiler.hpp"

#include "ligm/ops/common.hpp"
#include "ligm/ops/conv.hpp"
#include "ligm/ops/copy.hpp"
#include "ligm/ops/creation.hpp"
#include "ligm/ops/curvature.hpp"
#include "ligm/ops/elementwise.hpp"
#include "ligm/ops/loss.hpp"
#include "ligm/ops/matmul.hpp"
#include "ligm/ops/movement.hpp"
#include "ligm/ops/nn_misc.hpp"
#include "ligm/ops/norm.hpp"
#include "ligm/ops/pool.hpp"
#include "ligm/ops/reduce.hpp"
#include "ligm/ops/softmax.hpp"
#include "ligm/ops/tensor_methods.hpp"

#include "ligm/core/print.hpp"

#include "ligm/nn/nn.hpp"
#include "ligm/optim/optim.hpp"
#include "ligm/data/data.hpp"

#if !defined(LIGM_SEPARATE_BACKEND)
#include "ligm/backend/registry_impl.hpp"
#endif

// With LIGM_EXTERN_TEMPLATES: the common types' ops, modules and optimizers come compiled
// from the ligm library (the explicit-instantiation mode).
#include "ligm/instantiations.hpp"

namespace ligm::nn {
// torch.nn.functional's names: ligm::nn::functional::cross_entropy is ligm::cross_entropy.
namespace functional = ::ligm;
}  // namespace ligm::nn
