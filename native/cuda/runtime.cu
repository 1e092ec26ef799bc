// CUDA runtime helpers: see runtime.h.
#include "cuda/runtime.h"

#include <cstring>
#include <map>
#include <mutex>

#include "core/build_info.h"

namespace vg {
namespace cuda {

void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  // Clear the non-sticky last error so one failure is reported once; sticky errors (a kernel fault) persist
  // in the context, and the message says so.
  cudaGetLastError();
  throw CudaError(detail::concat("CUDA call failed: ", what, ": ", cudaGetErrorName(e), " (",
                                 cudaGetErrorString(e), ")"),
                  file, line);
}

const Availability& cuda_available() {
  static const Availability a = [] {
    Availability r;
    try {
      CudaRuntimeInfo info = cuda_runtime_info();
      r.ok = info.kernel_ok;
      r.reason = info.status;
    } catch (const std::exception& e) {
      r.ok = false;
      r.reason = std::string("CUDA probe failed: ") + e.what() + "; using the CPU";
    }
    return r;
  }();
  return a;
}

Stream::Stream() { VG_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}
void Stream::synchronize() const { VG_CUDA_CHECK(cudaStreamSynchronize(s_)); }

Event::Event() { VG_CUDA_CHECK(cudaEventCreate(&e_)); }
Event::~Event() {
  if (e_) cudaEventDestroy(e_);
}
void Event::record(cudaStream_t s) const { VG_CUDA_CHECK(cudaEventRecord(e_, s)); }
void Event::synchronize() const { VG_CUDA_CHECK(cudaEventSynchronize(e_)); }
float Event::elapsed_ms(const Event& start, const Event& stop) {
  float ms = 0;
  VG_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, stop.e_));
  return ms;
}

Scratch::Scratch(size_t bytes, cudaStream_t stream) : stream_(stream) {
  if (bytes == 0) return;
  cudaError_t e = cudaMallocAsync(&ptr_, bytes, stream);
  if (e != cudaSuccess) check(e, detail::concat("cudaMallocAsync(", bytes, " bytes)").c_str(), __FILE__, __LINE__);
}
Scratch::~Scratch() {
  if (ptr_) cudaFreeAsync(ptr_, stream_);
}

uint16_t float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

float bf16_bits_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = to_bf16(v[i]);
  return r;
}

std::vector<float> to_float(const std::vector<bf16>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = to_float(v[i]);
  return r;
}

std::vector<float> round_to_bf16(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_bits_to_float(float_to_bf16_bits(v[i]));
  return r;
}

const cudaDeviceProp& device_properties() {
  static std::mutex mu;
  static std::map<int, cudaDeviceProp> cache;  // node-based: references stay valid as devices are added
  int dev = 0;
  VG_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it != cache.end()) return it->second;
  cudaDeviceProp p{};
  VG_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  return cache.emplace(dev, p).first->second;
}

}  // namespace cuda
}  // namespace vg
