// io: safetensors, checkpoints, .npy, PNG images, metrics files and the progress bar. Not
// part of ligm.hpp (include what you use; image.hpp compiles stb).
#pragma once
#include "ligm/io/checkpoint.hpp"
#include "ligm/io/image.hpp"
#include "ligm/io/metrics.hpp"
#include "ligm/io/npy.hpp"
#include "ligm/io/progress.hpp"
#include "ligm/io/safetensors.hpp"
#include "ligm/io/trace.hpp"
