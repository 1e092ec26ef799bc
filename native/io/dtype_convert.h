// Element type conversion for weights stored as F32, F16, BF16 or F64 (safetensors dtypes) into the compute
// type, and back (for writing bf16 / fp32 checkpoints). IEEE round-to-nearest-even on narrowing.
#pragma once
#include <cstdint>
#include <string>

namespace vg {

enum class DType { F32, F16, BF16, F64 };

// "F32" / "F16" / "BF16" / "F64" -> DType; throws vg::ArgumentError for anything else.
DType dtype_from_string(const std::string& s);
int dtype_size(DType t);

float bf16_to_f32(uint16_t h);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even; NaN stays NaN
uint16_t f32_to_f16(float f);   // round to nearest even; overflow -> inf

// dst[i] = convert(src[i]) for n elements; src may be unaligned (memory-mapped file data). Multithreaded.
template <typename T>
void convert_to(const void* src, DType src_type, int64_t n, T* dst);

// Narrow n floats to `dst_type` (F32, F16 or BF16) into dst bytes.
void convert_from_f32(const float* src, int64_t n, DType dst_type, void* dst);

}  // namespace vg
