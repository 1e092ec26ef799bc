// GEMM benchmark: our GEMM path (vg::linear_forward / vg::gemm as the model calls them) against raw OpenBLAS
// cblas_sgemm on the same buffers, at the shapes of a training step (forward y = x W^T, backward dX = dY W,
// dW += dY^T X). Also shows the built-in fallback GEMM for reference. Best of several repeats.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/blas.h"
#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/linear.h"

#if VG_HAVE_BLAS
#include <cblas.h>
#endif

namespace {

double seconds_of(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best time of each of two functions, measured in alternating blocks (a a a, b b b, a a a, ...) so that load from
// other processes hits both alike, while the BLAS's own worker threads (woken by the baseline and left spinning
// for a while after it) rarely overlap our runs: the first run after a switch is discarded.
std::pair<double, double> best_interleaved(const std::function<void()>& a, const std::function<void()>& b, int reps) {
  double ba = 1e30, bb = 1e30;
  const int per_block = 3;
  for (int blk = 0; blk < std::max(1, reps / per_block); ++blk) {
    a();
    for (int r = 0; r < per_block; ++r) ba = std::min(ba, seconds_of(a));
    b();
    for (int r = 0; r < per_block; ++r) bb = std::min(bb, seconds_of(b));
  }
  return {ba, bb};
}

struct Shape {
  const char* what;
  bool tA, tB;
  int64_t M, N, K;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  int reps = quick ? 6 : 12;
  std::printf("GEMM: ours vs raw OpenBLAS sgemm (%d threads, %s)\n", vg::num_threads(), vg::blas_name().c_str());
#if !VG_HAVE_BLAS
  std::printf("no BLAS in this build: nothing to compare against. Install libopenblas-dev and rebuild.\n");
  return 0;
#else
  // Training-step shapes for T tokens through Qwen2.5-VL-3B-sized layers (hidden 2048, MLP 11008) and a
  // smaller model (hidden 1024, MLP 2816), forward and both backward GEMMs.
  std::vector<Shape> shapes;
  for (int64_t T : {int64_t(512)}) {
    for (auto io : {std::pair<int64_t, int64_t>{2048, 2048}, {2048, 11008}, {11008, 2048}, {1024, 2816}}) {
      if (quick && io.first > 2048) continue;
      int64_t in = io.first, out = io.second;
      shapes.push_back({"fwd  y=xW^T", false, true, T, out, in});
      shapes.push_back({"bwd dX=dYW", false, false, T, in, out});
      shapes.push_back({"bwd dW=dY^TX", true, false, out, in, T});
    }
  }
  std::mt19937 g(1);
  std::normal_distribution<float> d;
  std::printf("%-14s %6s %6s %6s | %9s %9s %7s | %9s\n", "op", "M", "N", "K", "ours GF/s", "BLAS GF/s", "ratio",
              "builtin");
  double worst = 1e9;
  for (auto& s : shapes) {
    const int64_t lda = s.tA ? s.M : s.K, ldb = s.tB ? s.K : s.N;
    std::vector<float> A(s.M * s.K), B(s.K * s.N), C(s.M * s.N);
    for (auto& x : A) x = d(g);
    for (auto& x : B) x = d(g);
    const double flops = 2.0 * s.M * s.N * s.K;
    auto [t_ours, t_blas] = best_interleaved(
        [&] {
          if (!s.tA && s.tB)  // the forward goes through the linear layer exactly as the model runs it
            vg::linear_forward<float>(A.data(), B.data(), nullptr, C.data(), s.M, s.K, s.N);
          else
            vg::gemm<float>(s.tA, s.tB, s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), s.N);
        },
        [&] {
          // Raw OpenBLAS at its best: its own threads (the core keeps it single-threaded and splits GEMMs itself).
          openblas_set_num_threads(vg::num_threads());
          cblas_sgemm(CblasRowMajor, s.tA ? CblasTrans : CblasNoTrans, s.tB ? CblasTrans : CblasNoTrans, s.M, s.N, s.K,
                      1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), s.N);
          openblas_set_num_threads(1);
        },
        reps);
    double t_builtin = seconds_of([&] {
      vg::gemm_builtin<float>(s.tA, s.tB, s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), s.N);
    });
    double ratio = t_blas / t_ours;
    worst = std::min(worst, ratio);
    std::printf("%-14s %6lld %6lld %6lld | %9.1f %9.1f %6.1f%% | %9.1f\n", s.what, (long long)s.M, (long long)s.N,
                (long long)s.K, flops / t_ours / 1e9, flops / t_blas / 1e9, 100 * ratio, flops / t_builtin / 1e9);
  }
  std::printf("worst ours/OpenBLAS throughput: %.1f%% (target >= 90%%)\n", 100 * worst);
  return 0;
#endif
}
