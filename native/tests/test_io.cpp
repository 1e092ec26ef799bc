// Memory-mapped files and dtype conversion (bf16/f16 <-> f32) against plain bit-level references.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "io/dtype_convert.h"
#include "io/mapped_file.h"
#include "test_framework.h"

using namespace vg;

namespace {
// Decode IEEE half by its definition.
double half_ref(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}
}  // namespace

VG_TEST(io_f16_decode_all_values) {
  for (uint32_t h = 0; h < 65536; ++h) {
    double ref = half_ref(static_cast<uint16_t>(h));
    float got = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(ref)) VG_EXPECT(std::isnan(got), "h=", h);
    else VG_EXPECT(static_cast<double>(got) == ref, "h=", h, " got ", got, " want ", ref);
    if (!std::isnan(ref)) VG_EXPECT(f32_to_f16(got) == h, "round trip of h=", h);
  }
}

VG_TEST(io_bf16_round_trip_and_rounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16_to_f32(static_cast<uint16_t>(h));
    uint32_t u;
    std::memcpy(&u, &f, 4);
    VG_EXPECT(u == h << 16, "bf16 decode h=", h);
    if (!std::isnan(f)) VG_EXPECT(f32_to_bf16(f) == h, "bf16 round trip h=", h);
  }
  // Rounding: the result is the nearest bf16, ties to even.
  auto g = vgtest::rng(11);
  auto xs = vgtest::randn<float>(20000, g, 100.0);
  for (float x : xs) {
    uint16_t r = f32_to_bf16(x);
    double got = bf16_to_f32(r), lo = bf16_to_f32(static_cast<uint16_t>(r - 1)), hi = bf16_to_f32(static_cast<uint16_t>(r + 1));
    VG_EXPECT(std::fabs(got - x) <= std::fabs(lo - x) && std::fabs(got - x) <= std::fabs(hi - x), "x=", x);
  }
}

VG_TEST(io_f16_rounding_is_nearest) {
  auto g = vgtest::rng(12);
  auto xs = vgtest::randn<float>(20000, g, 30.0);
  xs.push_back(1e-6f);
  xs.push_back(-3e-8f);
  xs.push_back(70000.f);
  for (float x : xs) {
    uint16_t r = f32_to_f16(x);
    double got = half_ref(r);
    if (std::fabs(x) >= 65520.0) {
      VG_EXPECT(std::isinf(got), "overflow x=", x);
      continue;
    }
    double best = INFINITY;
    for (int d = -2; d <= 2; ++d) best = std::min(best, std::fabs(half_ref(static_cast<uint16_t>(r + d)) - x));
    VG_EXPECT(std::fabs(got - x) <= best, "x=", x, " got ", got);
  }
}

VG_TEST(io_mapped_file_and_convert) {
  char path[] = "/tmp/vg_io_testXXXXXX";
  int fd = mkstemp(path);
  VG_EXPECT(fd >= 0);
  auto g = vgtest::rng(13);
  auto vals = vgtest::randn<float>(1001, g);
  std::vector<uint16_t> bf(vals.size());
  convert_from_f32(vals.data(), static_cast<int64_t>(vals.size()), DType::BF16, bf.data());
  // 3 bytes of header so the data is deliberately unaligned.
  VG_EXPECT(write(fd, "abc", 3) == 3);
  VG_EXPECT(write(fd, bf.data(), bf.size() * 2) == static_cast<ssize_t>(bf.size() * 2));
  close(fd);
  {
    MappedFile f(path);
    VG_EXPECT(f.size() == 3 + bf.size() * 2);
    std::vector<double> out(vals.size());
    convert_to<double>(f.data() + 3, DType::BF16, static_cast<int64_t>(vals.size()), out.data());
    for (size_t i = 0; i < vals.size(); ++i)
      VG_EXPECT(std::fabs(out[i] - vals[i]) <= std::fabs(vals[i]) * (1.0 / 256), "i=", i);
  }
  unlink(path);
  VG_EXPECT_THROWS(MappedFile("/nonexistent/dir/model.safetensors"), "/nonexistent/dir/model.safetensors");
  VG_EXPECT_THROWS(dtype_from_string("I8"), "unsupported tensor dtype 'I8'");
}
