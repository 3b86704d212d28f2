// Finding the backend and allocator of a device.
//
// Declared here, defined in registry_impl.hpp. In the default header-only mode ligm.hpp
// includes the definitions (and with them the CPU backend and Eigen). With
// LIGM_SEPARATE_BACKEND defined, user code sees only these declarations and links the
// ligm_backend library, which instantiates them once: user files then never parse Eigen.
//
// The CUDA backend is always a compiled library (ligm_cuda: kernels through nvcc, host code
// through g++). Builds that link it define LIGM_WITH_CUDA; the cuda:: queries and the CUDA
// backends are then defined there. Without it, Device::cuda() exists and every use of it
// raises "CUDA is not compiled in".
#pragma once
#include <atomic>

#include "ligm/backend/backend.hpp"

#if defined(LIGM_BUILDING_BACKEND) || defined(LIGM_SEPARATE_BACKEND)
#define LIGM_BACKEND_API
#else
#define LIGM_BACKEND_API inline
#endif

#if defined(LIGM_WITH_CUDA)
#define LIGM_CUDA_API
#else
#define LIGM_CUDA_API LIGM_BACKEND_API
#endif

namespace ligm {

template <class T>
Backend<T>& backend_for(Device device);

LIGM_BACKEND_API Allocator& allocator_for(Device device);

namespace cuda {
// True only when the CUDA backend is compiled in and a GPU is present.
LIGM_CUDA_API bool is_available();
// GPUs found (0 when CUDA is not compiled in, or on any error from the driver).
LIGM_CUDA_API int device_count();
// True when this build has the CUDA backend (even without a GPU).
LIGM_CUDA_API bool is_compiled();
// Waits for all work queued on every GPU (no-op without CUDA).
LIGM_CUDA_API void synchronize();

// Whether float32 convolutions (cuDNN) and matrix products (cuBLAS) on the GPU may run on TF32
// tensor cores (inputs rounded to 10 mantissa bits, sums in float32): PyTorch's
// torch.backends.cudnn.allow_tf32 (on by default there) and
// torch.backends.cuda.matmul.allow_tf32 (off there). Both off by default in ligm, so float32
// results on the GPU match the CPU's within float32 rounding; float64 never uses them. Read
// when a convolution's algorithms are chosen (per shape and setting) and at every product.
struct Tf32 {
  bool conv = false, matmul = false;
};
namespace detail {
inline std::atomic<int>& tf32_bits() {
  static std::atomic<int> bits{0};
  return bits;
}
}  // namespace detail
inline void set_allow_tf32(Tf32 t) { detail::tf32_bits().store((t.conv ? 1 : 0) | (t.matmul ? 2 : 0)); }
inline Tf32 allow_tf32() {
  const int b = detail::tf32_bits().load();
  return {(b & 1) != 0, (b & 2) != 0};
}

// PyTorch's torch.backends.cudnn.benchmark (off by default there and here). On: the first
// convolution of each shape (and TF32 setting) on the GPU times every algorithm cuDNN offers for
// each of its three passes (cudnnFind*: runs them all once, in memory cuDNN allocates for the
// trial) and keeps the fastest allowed; off: cuDNN's heuristics rank them without running any,
// and the first allowed is kept. Read when a shape's algorithms are chosen.
namespace detail {
inline std::atomic<bool>& cudnn_benchmark_flag() {
  static std::atomic<bool> on{false};
  return on;
}
}  // namespace detail
inline void set_cudnn_benchmark(bool on) { detail::cudnn_benchmark_flag().store(on); }
inline bool cudnn_benchmark() { return detail::cudnn_benchmark_flag().load(); }
}  // namespace cuda

#if defined(LIGM_WITH_CUDA)
namespace cuda_detail {
// Defined in the ligm_cuda library; raise ligm::Error when GPU `index` does not exist.
template <class T>
Backend<T>& backend(int index);
Allocator& allocator(int index);
}  // namespace cuda_detail
#endif

}  // namespace ligm
