// CUDA driver/device probe. Compiled whenever nvcc is found, so CI keeps the CUDA path building; on a
// machine without a driver or GPU every call reports why in one line instead of failing.
#include <cuda_runtime.h>

#include <string>

#include "core/build_info.h"

namespace vg {
namespace {

__global__ void probe_kernel(int* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = i * 3 + 1;
}

std::string describe(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

// Runs a tiny kernel on device 0 and checks its output, proving the build's architectures suit the GPU.
bool run_probe(std::string* why) {
  constexpr int n = 256;
  int* d = nullptr;
  cudaError_t e = cudaMalloc(&d, n * sizeof(int));
  if (e != cudaSuccess) { *why = "cudaMalloc failed: " + describe(e); return false; }
  probe_kernel<<<(n + 127) / 128, 128>>>(d, n);
  e = cudaGetLastError();
  int h[n] = {};
  if (e == cudaSuccess) e = cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost);
  cudaFree(d);
  if (e != cudaSuccess) { *why = "probe kernel failed: " + describe(e); return false; }
  for (int i = 0; i < n; ++i)
    if (h[i] != i * 3 + 1) { *why = "probe kernel returned wrong values"; return false; }
  return true;
}

}  // namespace

CudaRuntimeInfo cuda_runtime_info() {
  CudaRuntimeInfo info;
  info.compiled = true;
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaDriverGetVersion(&info.driver_version);
  if (info.driver_version == 0) {
    info.status = "no CUDA driver found (libcuda.so not loadable); using the CPU";
    return info;
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    info.status = e != cudaSuccess ? "no usable GPU (" + describe(e) + "); using the CPU" : "no GPU found; using the CPU";
    return info;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    GpuInfo g;
    g.index = i;
    g.name = p.name;
    g.major = p.major;
    g.minor = p.minor;
    g.total_memory = p.totalGlobalMem;
    g.multiprocessors = p.multiProcessorCount;
    info.gpus.push_back(g);
  }
  std::string why;
  info.kernel_ok = run_probe(&why);
  info.status = info.kernel_ok ? "ok" : why + "; using the CPU";
  return info;
}

}  // namespace vg
