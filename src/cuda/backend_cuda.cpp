// The host half of the ligm_cuda library (compiled by g++): one CUDA backend per dtype and
// GPU, the device allocators, and the cuda:: queries. The kernels live in kernels.cu.
#include <memory>
#include <mutex>

#include "ligm/backend/cuda/cuda_backend.hpp"
#include "ligm/backend/registry.hpp"

namespace ligm {
namespace cuda_detail {

template <class T>
Backend<T>& backend(int index) {
  static CudaBackend<T>* backends[kMaxDevices] = {};
  static std::mutex mutex;
  DeviceContext& ctx = context(index);  // raises ligm::Error when there is no such GPU
  std::lock_guard<std::mutex> lock(mutex);
  if (!backends[index]) backends[index] = new CudaBackend<T>(ctx);  // kept for the process
  return *backends[index];
}

template Backend<float>& backend<float>(int);
template Backend<double>& backend<double>(int);
template Backend<std::int64_t>& backend<std::int64_t>(int);
template Backend<bool>& backend<bool>(int);

Allocator& allocator(int index) {
  static CudaAllocator* allocators[kMaxDevices] = {};
  static std::mutex mutex;
  DeviceContext& ctx = context(index);
  std::lock_guard<std::mutex> lock(mutex);
  if (!allocators[index]) allocators[index] = new CudaAllocator(ctx);
  return *allocators[index];
}

}  // namespace cuda_detail

namespace cuda {
bool is_compiled() { return true; }
int device_count() { return cuda_detail::device_count(); }
bool is_available() { return device_count() > 0; }
void synchronize() {
  for (int i = 0; i < device_count(); ++i) cuda_detail::context(i).synchronize();
}
}  // namespace cuda

}  // namespace ligm
