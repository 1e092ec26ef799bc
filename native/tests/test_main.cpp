// Runner for the native core's tests. Usage: vg_native_tests [--list] [--threads N] [name-prefix ...]
// Prints one line per test and a closing "N passed, N failed" line; exits non-zero on any failure.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/parallel.h"
#include "test_framework.h"

namespace vgtest {
std::vector<TestCase>& registry() {
  static std::vector<TestCase> r;
  return r;
}
uint64_t test_seed() {
  static uint64_t seed = [] {
    const char* s = std::getenv("VG_TEST_SEED");
    if (s && *s) return static_cast<uint64_t>(std::strtoull(s, nullptr, 10));
    return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  return seed;
}
}  // namespace vgtest

int main(int argc, char** argv) {
  std::vector<std::string> filters;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--list")) list = true;
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) vg::set_num_threads(std::atoi(argv[++i]));
    else filters.emplace_back(argv[i]);
  }
  auto& tests = vgtest::registry();
  if (list) {
    for (auto& t : tests) std::printf("%s\n", t.name.c_str());
    return 0;
  }
  std::printf("seed %llu (set VG_TEST_SEED to repeat), %d threads\n",
              static_cast<unsigned long long>(vgtest::test_seed()), vg::num_threads());
  int passed = 0, failed = 0;
  for (auto& t : tests) {
    if (!filters.empty()) {
      bool match = false;
      for (auto& f : filters) match |= t.name.rfind(f, 0) == 0;
      if (!match) continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    try {
      t.fn();
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::printf("ok   %s (%.0f ms)\n", t.name.c_str(), ms);
      ++passed;
    } catch (const std::exception& e) {
      std::printf("FAIL %s: %s\n", t.name.c_str(), e.what());
      ++failed;
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
