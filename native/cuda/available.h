// Whether the CUDA path can be used in this process, with the reason when it cannot. No CUDA headers here, so
// every build (with or without nvcc) can ask; no_cuda.cpp answers "not compiled", runtime.cu probes the GPU.
#pragma once
#include <string>

namespace vg {
namespace cuda {

struct Availability {
  bool ok = false;
  std::string reason;  // "ok", or one line saying why the GPU path is unavailable (callers fall back to the CPU)
};

// Probes once (driver, device count, a tiny kernel on device 0) and caches the answer; never throws.
const Availability& cuda_available();

}  // namespace cuda
}  // namespace vg
