// optim: optimizers over lists of parameter tensors (included by ligm.hpp).
#pragma once
#include "ligm/optim/adagrad.hpp"
#include "ligm/optim/adam.hpp"
#include "ligm/optim/lars.hpp"
#include "ligm/optim/lbfgs.hpp"
#include "ligm/optim/optimizer.hpp"
#include "ligm/optim/rmsprop.hpp"
#include "ligm/optim/schedule.hpp"
#include "ligm/optim/sgd.hpp"
