// Minimal test framework for the native core (no dependencies).
//   VG_TEST(suite_name) { ... VG_EXPECT(cond, "message parts", ...); VG_EXPECT_NEAR(a, b, tol); }
// The runner (test_main.cpp) takes: --list, or test names / name prefixes to run (all by default).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace vgtest {

struct TestCase {
  std::string name;
  std::function<void()> fn;
};

std::vector<TestCase>& registry();

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

// Thrown by a failed expectation; the runner reports it and moves to the next test.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Fresh random inputs each run unless VG_TEST_SEED is set; the seed is printed on failure.
uint64_t test_seed();

// A generator seeded from test_seed() and a per-call salt, so tests do not share streams.
inline std::mt19937_64 rng(uint64_t salt = 0) { return std::mt19937_64(test_seed() * 0x9E3779B97F4A7C15ull + salt); }

template <typename T>
std::vector<T> randn(size_t n, std::mt19937_64& g, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(g));
  return v;
}

template <typename T>
std::vector<T> randu(size_t n, std::mt19937_64& g, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(g));
  return v;
}

// Max of |a-b| / (atol + rtol*|b|) over elements: <= 1 means within tolerance.
template <typename A, typename B>
double max_scaled_err(const A* a, const B* b, size_t n, double atol, double rtol, size_t* where = nullptr) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double da = static_cast<double>(a[i]), db = static_cast<double>(b[i]);
    double e = std::fabs(da - db) / (atol + rtol * std::fabs(db));
    if (!(e <= worst)) {  // also catches NaN
      worst = std::isnan(e) ? INFINITY : e;
      if (where) *where = i;
    }
  }
  return worst;
}

}  // namespace vgtest

#define VG_TEST_CAT2(a, b) a##b
#define VG_TEST_CAT(a, b) VG_TEST_CAT2(a, b)
#define VG_TEST(name)                                                                  \
  static void VG_TEST_CAT(vg_test_fn_, name)();                                        \
  static ::vgtest::Registrar VG_TEST_CAT(vg_test_reg_, name)(#name, VG_TEST_CAT(vg_test_fn_, name)); \
  static void VG_TEST_CAT(vg_test_fn_, name)()

#define VG_EXPECT(cond, ...)                                                                       \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      throw ::vgtest::Failure(::vg::detail::concat(__FILE__, ":", __LINE__, ": expected ", #cond,  \
                                                   " ", ##__VA_ARGS__));                           \
  } while (0)

// Elementwise closeness of two arrays: |a-b| <= atol + rtol*|b| everywhere.
#define VG_EXPECT_ALLCLOSE(a, b, n, atol, rtol)                                                     \
  do {                                                                                              \
    size_t vg_where_ = 0;                                                                           \
    double vg_err_ = ::vgtest::max_scaled_err((a), (b), (n), (atol), (rtol), &vg_where_);           \
    if (!(vg_err_ <= 1.0))                                                                          \
      throw ::vgtest::Failure(::vg::detail::concat(                                                 \
          __FILE__, ":", __LINE__, ": ", #a, " vs ", #b, " differ at [", vg_where_, "]: ",          \
          static_cast<double>((a)[vg_where_]), " vs ", static_cast<double>((b)[vg_where_]),          \
          " (atol ", (atol), ", rtol ", (rtol), ", scaled error ", vg_err_, ")"));                  \
  } while (0)

#define VG_EXPECT_THROWS(stmt, needle)                                                              \
  do {                                                                                              \
    bool vg_threw_ = false;                                                                         \
    try {                                                                                           \
      stmt;                                                                                         \
    } catch (const std::exception& e) {                                                             \
      vg_threw_ = true;                                                                             \
      if (std::string(e.what()).find(needle) == std::string::npos)                                 \
        throw ::vgtest::Failure(::vg::detail::concat(__FILE__, ":", __LINE__, ": message '",       \
                                                     e.what(), "' lacks '", needle, "'"));         \
    }                                                                                               \
    if (!vg_threw_) throw ::vgtest::Failure(::vg::detail::concat(__FILE__, ":", __LINE__,          \
                                                                 ": expected a throw from ", #stmt)); \
  } while (0)
