// The CUDA runtime side of the backend: error checks that turn every CUDA, cuBLAS and cuDNN
// status into a ligm::Error naming the op, the per-device context (one stream, cuBLAS and
// cuDNN handles bound to it), and the stream-ordered caching allocator.
//
// Host code: compiled by g++, never by nvcc. Only the ligm_cuda library includes it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string_view>

#include "ligm/backend/backend.hpp"
#include "ligm/core/error.hpp"

namespace ligm::cuda_detail {

inline constexpr int kMaxDevices = 16;

inline void check_status(cudaError_t status, std::string_view op) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky-free error so the next call starts clean
  fail(op, "CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
}
inline void check_status(cublasStatus_t status, std::string_view op) {
  if (status != CUBLAS_STATUS_SUCCESS) fail(op, "cuBLAS error ", cublasGetStatusString(status));
}
inline void check_status(cudnnStatus_t status, std::string_view op) {
  if (status != CUDNN_STATUS_SUCCESS) fail(op, "cuDNN error ", cudnnGetErrorString(status));
}

// Number of usable GPUs; any error (no driver, no device, a driver too old) means none.
inline int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      n = 0;
    }
    return n;
  }();
  return count;
}

// Makes `index` the current device for the scope (kernels launch on the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    cudaGetDevice(&previous_);
    if (previous_ != index) check_status(cudaSetDevice(index), "cuda");
    changed_ = previous_ != index;
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// Everything ligm keeps per GPU. Work on a device is ordered on its one stream, so kernels,
// library calls and cudaFreeAsync never race each other.
class DeviceContext {
 public:
  explicit DeviceContext(int index) : index_(index) {
    DeviceGuard guard(index);
    check_status(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cuda");
    // Keep freed blocks in the device's pool instead of returning them to the driver at each
    // synchronisation: cudaMallocAsync then serves the steady state without new allocations.
    cudaMemPool_t pool;
    check_status(cudaDeviceGetDefaultMemPool(&pool, index), "cuda");
    std::uint64_t keep_all = ~std::uint64_t(0);
    check_status(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all), "cuda");
    const char* sync = std::getenv("LIGM_CUDA_SYNC");
    sync_each_launch_ = sync && *sync && *sync != '0';
  }

  int index() const { return index_; }
  cudaStream_t stream() const { return stream_; }

  cublasHandle_t cublas() {
    std::call_once(cublas_once_, [&] {
      check_status(cublasCreate(&cublas_), "cublas");
      check_status(cublasSetStream(cublas_, stream_), "cublas");
      // Exact FP32 products (no TF32), so results match the CPU within float rounding; the float
      // GEMM sets the mode again at every call from cuda::allow_tf32().matmul.
      check_status(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH), "cublas");
    });
    return cublas_;
  }

  cudnnHandle_t cudnn() {
    std::call_once(cudnn_once_, [&] {
      check_status(cudnnCreate(&cudnn_), "cudnn");
      check_status(cudnnSetStream(cudnn_, stream_), "cudnn");
    });
    return cudnn_;
  }

  // After a kernel launch: a launch error names the op; with LIGM_CUDA_SYNC=1 in the
  // environment every launch is also waited for, so an error inside a kernel names its op
  // too (the CUDA_LAUNCH_BLOCKING of ligm).
  void after_launch(cudaError_t launch_status, std::string_view op) const {
    check_status(launch_status, op);
    if (sync_each_launch_) check_status(cudaStreamSynchronize(stream_), op);
  }

  void synchronize() const { check_status(cudaStreamSynchronize(stream_), "cuda::synchronize"); }

 private:
  int index_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  std::once_flag cublas_once_, cudnn_once_;
  bool sync_each_launch_ = false;
};

// The context of GPU `index`, created on first use and kept for the life of the process
// (never destroyed: tensors in static storage may still free memory on its stream at exit).
inline DeviceContext& context(int index) {
  static DeviceContext* contexts[kMaxDevices] = {};
  static std::mutex mutex;
  if (index < 0 || index >= device_count()) {
    if (device_count() == 0)
      fail("device", "no CUDA GPU is available for device cuda:", index,
           " (cudaGetDeviceCount found none: no GPU or no driver)");
    fail("device", "cuda:", index, " does not exist (", device_count(), " GPU",
         device_count() == 1 ? "" : "s", " found)");
  }
  std::lock_guard<std::mutex> lock(mutex);
  if (!contexts[index]) contexts[index] = new DeviceContext(index);
  return *contexts[index];
}

// Stream-ordered caching allocator over the device's default memory pool (cudaMallocAsync).
class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(DeviceContext& ctx) : ctx_(ctx) {}

  void* allocate(std::size_t bytes) override {
    DeviceGuard guard(ctx_.index());
    void* p = nullptr;
    const cudaError_t status = cudaMallocAsync(&p, bytes, ctx_.stream());
    if (status != cudaSuccess) {
      cudaGetLastError();
      std::size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      fail("empty", "out of GPU memory allocating ", bytes, " bytes on cuda:", ctx_.index(), " (",
           free_bytes, " of ", total_bytes, " bytes free; ", cudaGetErrorName(status), ")");
    }
    return p;
  }

  // Called from destructors: never throws. The block returns to the pool once the work
  // queued before it on the stream is done.
  void deallocate(void* p, std::size_t) override {
    DeviceGuard guard(ctx_.index());
    if (cudaFreeAsync(p, ctx_.stream()) != cudaSuccess) cudaGetLastError();
  }

  void copy_from_host(void* dst, const void* src, std::size_t n) override {
    copy(dst, src, n, cudaMemcpyHostToDevice, "copy_from_host");
  }
  void copy_to_host(void* dst, const void* src, std::size_t n) override {
    copy(dst, src, n, cudaMemcpyDeviceToHost, "copy_to_host");
  }
  void copy_within(void* dst, const void* src, std::size_t n) override {
    DeviceGuard guard(ctx_.index());
    check_status(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, ctx_.stream()), "copy");
  }

 private:
  // Host memory is pageable: wait for the copy, so the caller may reuse or read its buffer.
  void copy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind, const char* op) {
    if (n == 0) return;
    DeviceGuard guard(ctx_.index());
    check_status(cudaMemcpyAsync(dst, src, n, kind, ctx_.stream()), op);
    check_status(cudaStreamSynchronize(ctx_.stream()), op);
  }

  DeviceContext& ctx_;
};

// Device scratch memory for the length of one primitive (stream-ordered, so it is safe to
// free while the kernels that use it are still queued).
class Scratch {
 public:
  Scratch(Allocator& alloc, std::size_t bytes)
      : alloc_(alloc), bytes_(bytes), ptr_(bytes ? alloc.allocate(bytes) : nullptr) {}
  ~Scratch() {
    if (ptr_) alloc_.deallocate(ptr_, bytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class U> U* as() const { return static_cast<U*>(ptr_); }

 private:
  Allocator& alloc_;
  std::size_t bytes_;
  void* ptr_;
};

}  // namespace ligm::cuda_detail
