// CUDA runtime helpers for the GPU kernels: error checks that throw vg exceptions (never abort), RAII device
// buffers and streams, a scoped stream-ordered scratch allocation, and bf16 <-> float conversions on the host.
//
// Host-compilable (g++ with the CUDA include directory) so host code and tests can use it; kernels live in .cu
// files. bf16 is __nv_bfloat16: 1 sign, 8 exponent, 7 mantissa bits; float -> bf16 rounds to nearest even.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "cuda/available.h"

namespace vg {
namespace cuda {

using bf16 = __nv_bfloat16;

// A CUDA runtime call failed; the message names the call, the CUDA error and the source location.
class CudaError : public Error {
 public:
  using Error::Error;
};

// Throws CudaError when e != cudaSuccess (after clearing the sticky last-error state where possible).
void check(cudaError_t e, const char* what, const char* file, int line);

}  // namespace cuda
}  // namespace vg

// VG_CUDA_CHECK(call): throws vg::cuda::CudaError naming `call` when it does not return cudaSuccess.
#define VG_CUDA_CHECK(call) ::vg::cuda::check((call), #call, __FILE__, __LINE__)
// VG_CUDA_CHECK_LAUNCH(): after a <<<...>>> launch, throws when the launch itself failed (bad configuration,
// no kernel image for this GPU). Errors raised while the kernel runs surface at the next synchronising call.
#define VG_CUDA_CHECK_LAUNCH() ::vg::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

namespace vg {
namespace cuda {

// Owns `count` elements of device memory (cudaMalloc); move-only. Contents are uninitialised.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { allocate(count); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }

  void allocate(size_t count) {
    release();
    if (count == 0) return;
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, count * sizeof(T));
    if (e != cudaSuccess)
      check(e, detail::concat("cudaMalloc(", count * sizeof(T), " bytes)").c_str(), __FILE__, __LINE__);
    ptr_ = static_cast<T*>(p);
    count_ = count;
  }
  void release() noexcept {
    if (ptr_) cudaFree(ptr_);  // errors here would come from earlier work; never throw from a destructor
    ptr_ = nullptr;
    count_ = 0;
  }

  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

  // Synchronous copies (pageable host memory). n defaults to the whole buffer.
  void upload(const T* host, size_t n) {
    VG_CHECK_ARG(n <= count_, "DeviceBuffer::upload: ", n, " elements into a buffer of ", count_);
    if (n) VG_CUDA_CHECK(cudaMemcpy(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice));
  }
  void upload(const std::vector<T>& host) { upload(host.data(), host.size()); }
  void download(T* host, size_t n) const {
    VG_CHECK_ARG(n <= count_, "DeviceBuffer::download: ", n, " elements from a buffer of ", count_);
    if (n) VG_CUDA_CHECK(cudaMemcpy(host, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost));
  }
  std::vector<T> to_host() const {
    std::vector<T> h(count_);
    download(h.data(), count_);
    return h;
  }
  // Sets every byte to `byte` (e.g. 0xFF poisons a float buffer with NaNs to catch unwritten outputs).
  void fill_bytes(int byte) {
    if (count_) VG_CUDA_CHECK(cudaMemset(ptr_, byte, bytes()));
  }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// A device buffer holding a copy of host data.
template <typename T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> d(host.size());
  d.upload(host);
  return d;
}

// Owns a non-blocking CUDA stream; move-only.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  cudaStream_t get() const { return s_; }
  void synchronize() const;

 private:
  cudaStream_t s_ = nullptr;
};

// Owns a CUDA event (timing enabled); for benchmarks: elapsed_ms(start, stop) after stop completed.
class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s) const;
  void synchronize() const;
  cudaEvent_t get() const { return e_; }
  static float elapsed_ms(const Event& start, const Event& stop);

 private:
  cudaEvent_t e_ = nullptr;
};

// Stream-ordered scratch memory (cudaMallocAsync / cudaFreeAsync on `stream`): kernels that need a temporary
// (partial sums for deterministic reductions) allocate one per call without a device-wide synchronisation.
class Scratch {
 public:
  Scratch(size_t bytes, cudaStream_t stream);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

// Grid size for a grid-stride elementwise kernel over n elements (capped; the kernels loop).
inline unsigned grid_for(int64_t n, int block, int64_t max_blocks = 65535) {
  int64_t g = (n + block - 1) / block;
  if (g < 1) g = 1;
  if (g > max_blocks) g = max_blocks;
  return static_cast<unsigned>(g);
}

// ---- bf16 on the host (round to nearest even; NaN stays NaN) ----
uint16_t float_to_bf16_bits(float f);
float bf16_bits_to_float(uint16_t b);
inline bf16 to_bf16(float f) {
  __nv_bfloat16_raw r;
  r.x = float_to_bf16_bits(f);
  return bf16(r);
}
inline float to_float(bf16 b) { return bf16_bits_to_float(static_cast<__nv_bfloat16_raw>(b).x); }
std::vector<bf16> to_bf16(const std::vector<float>& v);
std::vector<float> to_float(const std::vector<bf16>& v);
// The float values a bf16 round trip keeps (what the GPU sees after conversion); for building CPU references.
std::vector<float> round_to_bf16(const std::vector<float>& v);

// Device properties of the current device (cached per device index).
const cudaDeviceProp& device_properties();

}  // namespace cuda
}  // namespace vg
