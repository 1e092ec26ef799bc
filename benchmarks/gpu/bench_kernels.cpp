// GPU kernel benchmark (run on the GPU machine; see README.md): our CUDA kernels timed with CUDA events, median
// of repeated runs after warm-up, on random (never zero) inputs, with the memory ceilings measured on the same
// device. Prints a table and writes one JSON object per measurement to --json FILE for compare.py.
//
//   vg_gpu_bench [--quick] [--json out.json] [--tokens N]
//
// Measurements:
//   ceilings     device-to-device copy (GB/s, bytes read + written) and a bf16 8192³ GEMM (TFLOP/s) via cuBLAS
//   logprob      chunked log-prob forward / backward over V = 151,936 vs the plain GEMM of the same size
//                (h·Wᵀ with a bf16 [N, V] output: what `log_softmax(h @ W.T)` starts with); peak scratch memory
//   sampler      batch 128 × 151,936: top-p 0.9, top-k 50 + top-p 0.9, min-p 0.05
//   rmsnorm / swiglu / adamw   achieved bandwidth against the copy ceiling
//   attention    flash attention forward / backward TFLOP/s (FlashAttention convention: forward 4·B·S²·H·D,
//                backward 2.5x, causal counted as half), d = 128 and 80, 16 heads, B·S = 16k tokens, S = 1k..16k
//                (1k and 4k with --quick), the shapes baselines.py times PyTorch SDPA on
//   decode       paged decode attention, batch 128, 16 heads / 2 kv heads, d = 128, 2048 cached positions each
//                (pages of 16 in a shuffled pool): GB/s of unique KV bytes against the copy ceiling
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/activations.h"
#include "cuda/adamw.h"
#include "cuda/attention.h"
#include "cuda/cublas_loader.h"
#include "cuda/decode_attention.h"
#include "cuda/logprob.h"
#include "cuda/norms.h"
#include "cuda/runtime.h"
#include "cuda/sampling.h"

using namespace vg::cuda;

namespace {

FILE* g_json = nullptr;

void record(const std::string& name, double ms, const std::string& metric_name, double metric, const std::string& extra = "") {
  std::printf("%-44s %10.3f ms   %-10s %10.2f %s\n", name.c_str(), ms, metric_name.c_str(), metric, extra.c_str());
  if (g_json)
    std::fprintf(g_json, "{\"name\": \"%s\", \"ms\": %.6f, \"%s\": %.6f}\n", name.c_str(), ms, metric_name.c_str(),
                 metric);
  std::fflush(stdout);
}

// Median time of fn() in ms over `reps` runs after `warmup` runs, each timed with events on stream 0.
double time_ms(const std::function<void()>& fn, int warmup = 3, int reps = 20) {
  for (int i = 0; i < warmup; ++i) fn();
  VG_CUDA_CHECK(cudaDeviceSynchronize());
  Event a, b;
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    a.record(0);
    fn();
    b.record(0);
    b.synchronize();
    t.push_back(Event::elapsed_ms(a, b));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

DeviceBuffer<bf16> random_bf16(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> h(n);
  for (auto& x : h) x = d(g);
  return to_device(to_bf16(h));
}

DeviceBuffer<float> random_f32(size_t n, uint64_t seed, float scale, bool positive = false) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> h(n);
  for (auto& x : h) x = positive ? std::fabs(d(g)) : d(g);
  return to_device(h);
}

// High-water mark of the default stream-ordered pool (our kernels' scratch comes from it), reset first.
struct PoolPeak {
  cudaMemPool_t pool{};
  PoolPeak() {
    int dev = 0;
    VG_CUDA_CHECK(cudaGetDevice(&dev));
    VG_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
    uint64_t zero = 0;  // cuuint64_t
    VG_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
  }
  double gib() const {
    uint64_t v = 0;
    VG_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &v));
    return static_cast<double>(v) / (1024.0 * 1024.0 * 1024.0);
  }
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int64_t tokens = 4096;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) g_json = std::fopen(argv[++i], "w");
    else if (!std::strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = std::atoll(argv[++i]);
  }
  const auto& avail = cuda_available();
  if (!avail.ok) {
    std::printf("skipped: no CUDA device (%s)\n", avail.reason.c_str());
    return 0;
  }
  std::string why;
  if (!cublas_available(&why)) {
    std::printf("cuBLAS not loadable: %s\n", why.c_str());
    return 1;
  }
  const auto& prop = device_properties();
  std::printf("device: %s, %d SMs, %.1f GiB; cuBLAS from %s\n\n", prop.name, prop.multiProcessorCount,
              prop.totalGlobalMem / (1024.0 * 1024 * 1024), cublas_loaded_path().c_str());
  if (quick) tokens = std::min<int64_t>(tokens, 1024);
  try {
    // ---- ceilings
    {
      const size_t n = size_t(1) << 28;  // 512 MiB of bf16
      DeviceBuffer<bf16> a = random_bf16(n, 1, 1.f), b(n);
      const double ms = time_ms([&] { VG_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), n * 2, cudaMemcpyDeviceToDevice, 0)); });
      record("ceiling: D2D copy 512 MiB", ms, "GB/s", 2.0 * n * 2 / (ms * 1e6));
      const int64_t M = quick ? 4096 : 8192;
      auto A = random_bf16(size_t(M * M), 2, 1.f), B = random_bf16(size_t(M * M), 3, 1.f);
      DeviceBuffer<bf16> C(size_t(M * M));
      const double g = time_ms([&] { gemm_bf16(false, true, M, M, M, 1.f, A.get(), B.get(), 0.f, C.get(), 0); });
      record("ceiling: bf16 GEMM " + std::to_string(M) + "^3", g, "TFLOP/s", 2.0 * M * M * M / (g * 1e9));
    }
    // ---- log-prob gather over the Qwen vocabulary
    {
      const int64_t N = tokens, H = 2048, V = 151936;
      auto h = random_bf16(size_t(N * H), 4, 1.f), W = random_bf16(size_t(V * H), 5, 0.02f);
      std::vector<int32_t> t(N);
      std::mt19937_64 g(6);
      for (auto& x : t) x = static_cast<int32_t>(g() % V);
      auto targets = to_device(t);
      DeviceBuffer<float> lp(N), ent(N), lse(N), dh(size_t(N * H)), dW(size_t(V * H));
      auto grad_in = random_f32(size_t(N), 7, 1.f);
      DeviceBuffer<bf16> logits(size_t(N * V));
      const double flops = 2.0 * N * V * H;
      const double plain = time_ms([&] { gemm_bf16(false, true, N, V, H, 1.f, h.get(), W.get(), 0.f, logits.get(), 0); });
      record("logprob: plain GEMM h·W^T (bf16 [N,V] out)", plain, "TFLOP/s", flops / (plain * 1e9),
             "(" + std::to_string(N) + " tokens, extra " + std::to_string(N * V * 2.0 / (1 << 30)).substr(0, 5) + " GiB logits)");
      logits.release();
      for (int64_t chunk : {int64_t(4096), int64_t(8192), int64_t(16384)}) {
        PoolPeak peak;
        const double f = time_ms([&] {
          logprob_forward(h.get(), W.get(), targets.get(), lp.get(), ent.get(), lse.get(), N, H, V, 1.0, chunk, 0);
        }, 2, 10);
        record("logprob fwd chunk " + std::to_string(chunk), f, "GEMM-ratio", plain / f,
               "(peak scratch " + std::to_string(peak.gib()).substr(0, 5) + " GiB)");
      }
      const double b = time_ms([&] {
        logprob_backward(h.get(), W.get(), targets.get(), lse.get(), grad_in.get(), grad_in.get(), ent.get(), dh.get(), dW.get(),
                         N, H, V, 1.0, 8192, 0);
      }, 2, 10);
      record("logprob bwd chunk 8192 (3 GEMMs of the size)", b, "GEMM-ratio", 3 * plain / b);
    }
    // ---- sampler, batch 128 over the Qwen vocabulary
    {
      const int64_t B = 128, V = 151936;
      auto logits = random_f32(size_t(B * V), 8, 3.f);
      std::vector<uint32_t> ids(B), pos(B, 17);
      for (int64_t i = 0; i < B; ++i) ids[i] = static_cast<uint32_t>(i);
      auto dids = to_device(ids), dpos = to_device(pos);
      DeviceBuffer<int32_t> tok(B);
      DeviceBuffer<float> lp(B), flp(B);
      struct Case { const char* name; double t; int64_t k; double p, mp; };
      for (const Case& c : {Case{"top-p 0.9", 1.0, 0, 0.9, 0.0}, Case{"top-k 50 + top-p 0.9", 1.0, 50, 0.9, 0.0},
                            Case{"min-p 0.05", 1.0, 0, 1.0, 0.05}, Case{"plain T=1", 1.0, 0, 1.0, 0.0},
                            Case{"greedy", 0.0, 0, 1.0, 0.0}}) {
        vg::SamplingOptions o;
        o.seed = 1, o.temperature = c.t, o.top_k = c.k, o.top_p = c.p, o.min_p = c.mp;
        const double ms = time_ms([&] {
          sample_tokens(logits.get(), B, V, dids.get(), dpos.get(), o, tok.get(), lp.get(), flp.get(), 0);
        });
        record(std::string("sampler B=128 V=151936 ") + c.name, ms, "GB/s", B * V * 4.0 / (ms * 1e6));
      }
    }
    // ---- memory-bound layers against the copy ceiling
    {
      const int64_t rows = quick ? 4096 : 16384, hidden = 2048;
      auto x = random_bf16(size_t(rows * hidden), 9, 1.f), w = random_bf16(size_t(hidden), 10, 1.f);
      DeviceBuffer<bf16> y(size_t(rows * hidden));
      DeviceBuffer<float> rstd(rows);
      const double f = time_ms([&] { rms_norm_forward(x.get(), w.get(), y.get(), rstd.get(), rows, hidden, 1e-6, 0); });
      record("rmsnorm fwd 16384x2048", f, "GB/s", 2.0 * rows * hidden * 2 / (f * 1e6));
      auto gu = random_bf16(size_t(rows * 2 * 11008 / 4), 11, 1.f);
      DeviceBuffer<bf16> o(size_t(rows * 11008 / 4));
      const double s = time_ms([&] { swiglu_fused_forward(gu.get(), o.get(), rows, 11008 / 4, 0); });
      record("swiglu fused fwd", s, "GB/s", 3.0 * rows * (11008 / 4) * 2 / (s * 1e6));
      const int64_t n = quick ? (int64_t(1) << 26) : (int64_t(1) << 28);
      auto p = random_f32(size_t(n), 12, 1.f), gr = random_f32(size_t(n), 13, 1e-3f), m = random_f32(size_t(n), 14, 1e-4f);
      auto v = random_f32(size_t(n), 15, 1e-4f, /*positive=*/true);  // second moments are >= 0
      DeviceBuffer<bf16> model(static_cast<size_t>(n));
      vg::AdamWConfig cfg;
      const double a = time_ms([&] { adamw_step(p.get(), gr.get(), m.get(), v.get(), model.get(), n, cfg, nullptr, 0); }, 2, 10);
      record("adamw step " + std::to_string(n / (1 << 20)) + "M params (+bf16 copy)", a, "GB/s", n * (4.0 * 7 + 2) / (a * 1e6));
      DeviceBuffer<double> st(2);
      const double c = time_ms([&] { grad_norm_clip_scale(gr.get(), n, 1.0, st.get(), st.get() + 1, 0); }, 2, 10);
      record("grad norm (two-pass, deterministic)", c, "GB/s", n * 4.0 / (c * 1e6));
    }
    // ---- paged decode attention (generation)
    {
      PagedKvDims d;
      d.batch = 128, d.heads = 16, d.kv_heads = 2, d.head_dim = 128, d.page_size = 16;
      const int64_t len = quick ? 512 : 2048;
      d.max_pages = len / d.page_size;
      d.num_pages = d.batch * d.max_pages;
      d.scale = 1.0 / std::sqrt(128.0);
      const size_t pool = static_cast<size_t>(d.num_pages * d.page_size * d.kv_heads * d.head_dim);
      auto k = random_bf16(pool, 30, 1.f), v = random_bf16(pool, 31, 1.f);
      auto q = random_bf16(static_cast<size_t>(d.batch * d.heads * d.head_dim), 32, 1.f);
      std::vector<int32_t> table(static_cast<size_t>(d.num_pages));
      for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
      std::shuffle(table.begin(), table.end(), std::mt19937_64(33));
      auto dt = to_device(table);
      auto dl = to_device(std::vector<int32_t>(static_cast<size_t>(d.batch), static_cast<int32_t>(len)));
      DeviceBuffer<bf16> o(static_cast<size_t>(d.batch * d.heads * d.head_dim));
      const double ms = time_ms([&] { paged_decode_attention(d, q.get(), k.get(), v.get(), dt.get(), dl.get(), o.get(), 0); });
      record("paged decode B=128 len=" + std::to_string(len) + " d=128 GQA 16/2", ms, "GB/s", 2.0 * pool * 2 / (ms * 1e6));
    }
    // ---- flash attention
    {
      std::vector<int64_t> seqs = quick ? std::vector<int64_t>{1024, 4096} : std::vector<int64_t>{1024, 2048, 4096, 8192, 16384};
      const int64_t heads = 16;
      for (int64_t d : {int64_t(128), int64_t(80)})
        for (int64_t S : seqs) {
          const int64_t B = std::max<int64_t>(1, 16384 / S), total = B * S;
          const size_t n = static_cast<size_t>(total * heads * d);
          auto q = random_bf16(n, 20, 1.f), k = random_bf16(n, 21, 1.f), v = random_bf16(n, 22, 1.f);
          auto dout = random_bf16(n, 23, 1.f);
          DeviceBuffer<bf16> o(n), dq(n), dk(n), dv(n);
          DeviceBuffer<float> lse(static_cast<size_t>(total * heads));
          std::vector<int32_t> cu(B + 1);
          for (int64_t b = 0; b <= B; ++b) cu[b] = static_cast<int32_t>(b * S);
          auto dcu = to_device(cu);
          for (bool causal : {false, true}) {
            vg::AttentionDims dims;
            dims.batch = B, dims.total_q = total, dims.total_k = total, dims.num_heads = heads, dims.num_kv_heads = heads;
            dims.head_dim = d, dims.causal = causal, dims.scale = vg::AttentionDims::default_scale(d);
            double flops = 4.0 * B * S * S * heads * d;
            if (causal) flops /= 2;
            const std::string tag = "attention d=" + std::to_string(d) + " s=" + std::to_string(S) + (causal ? " causal" : " full");
            const double f = time_ms([&] {
              attention_forward(dims, S, S, q.get(), k.get(), v.get(), dcu.get(), dcu.get(), o.get(), lse.get(), 0);
            }, 2, 10);
            record(tag + " fwd", f, "TFLOP/s", flops / (f * 1e9));
            const double b = time_ms([&] {
              attention_backward(dims, S, S, q.get(), k.get(), v.get(), o.get(), lse.get(), dout.get(), dcu.get(),
                                 dcu.get(), dq.get(), dk.get(), dv.get(), 0);
            }, 2, 10);
            record(tag + " bwd", b, "TFLOP/s", 2.5 * flops / (b * 1e9));
          }
        }
    }
  } catch (const std::exception& e) {
    std::printf("benchmark failed: %s\n", e.what());
    return 1;
  }
  if (g_json) std::fclose(g_json);
  return 0;
}
