// Gradient collectives overlapped with backward: the model's gradient-ready reports (model/grad_ready.h) and the
// bucket plan / reducer (dist/grad_buckets.h).
// - every range of the gradient buffer is reported exactly once per backward, in the documented order, and each
//   reported range already holds its final value (a snapshot taken at report time equals the finished gradient,
//   bit for bit), on the tiny Qwen2.5-VL (tied) and Qwen2-VL (untied) models, with and without the vision tower;
// - the reports do not change the gradient (same bits as a backward without a callback);
// - bucket plans coalesce touching units up to the cap and partition the range;
// - the reducer issues bucket collectives in plan order whatever order ranges become ready in, never before a
//   bucket is complete, with the right reduce-scatter counts, and fails loudly on double or missing reports.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "dist/grad_buckets.h"
#include "model/grad_ready.h"
#include "model/model.h"
#include "test_framework.h"
#include "tiny_model.h"

using namespace vg;
using vg::dist::BucketOp;
using vg::dist::BucketReducer;
using vg::dist::Range;
using vgtest::Case;
using vgtest::init_params;
using vgtest::make_case;

namespace {

struct Report {
  int64_t begin, end;
  std::vector<float> snapshot;
};

// Backward of one micro-batch after an earlier one was accumulated (so the gradient is a real sum), recording each
// reported range and a copy of its values at report time.
struct Run {
  std::vector<Report> reports;
  std::vector<float> grads;
};

Run run_backward(VisionKind kind, bool tied, bool with_vision, bool train_vision, bool report, uint64_t salt) {
  Case c = make_case(kind, tied, salt);
  Model<float> m(c.cfg);
  init_params(m, salt + 1);
  PackedBatch b = c.batch();
  std::vector<int32_t> text_ids, text_pos, text_cu, text_targets;
  if (!with_vision) {  // the text-only second sequence of the case on its own
    const int64_t s = c.cu[1], n = c.cu[2] - c.cu[1];
    text_ids.assign(c.ids.begin() + s, c.ids.end());
    text_pos.resize(3 * n);
    for (int a = 0; a < 3; ++a)
      for (int64_t i = 0; i < n; ++i) text_pos[a * n + i] = static_cast<int32_t>(i);
    text_cu = {0, static_cast<int32_t>(n)};
    text_targets.assign(c.targets.begin() + s, c.targets.end());
    b.num_tokens = n;
    b.num_seqs = 1;
    b.input_ids = text_ids.data();
    b.positions = text_pos.data();
    b.cu_seqlens = text_cu.data();
  }
  ForwardOptions o;
  o.targets = with_vision ? c.targets.data() : text_targets.data();
  o.keep_for_backward = true;
  std::vector<float> dl(c.weights.begin(), c.weights.begin() + b.num_tokens);
  m.zero_grads();
  // Micro-batch 1 (always with the image), then micro-batch 2 with the reports.
  ForwardOptions o1 = o;
  o1.targets = c.targets.data();
  m.forward(c.batch(), &c.vin, o1);
  std::vector<float> dl1(c.weights.begin(), c.weights.end());
  m.backward(dl1.data(), nullptr);
  m.forward(b, with_vision ? &c.vin : nullptr, o);
  for (float& x : dl) x *= 0.5f;
  Run r;
  GradReadyFn fn;
  if (report)
    fn = [&](int64_t begin, int64_t end) {
      r.reports.push_back({begin, end, std::vector<float>(m.grads().begin() + begin, m.grads().begin() + end)});
    };
  m.backward(dl.data(), nullptr, train_vision, fn);
  r.grads = m.grads();
  return r;
}

void check_reports(VisionKind kind, bool tied, bool with_vision, bool train_vision, uint64_t salt) {
  const Run r = run_backward(kind, tied, with_vision, train_vision, true, salt);
  const Run plain = run_backward(kind, tied, with_vision, train_vision, false, salt);
  VG_EXPECT(r.grads.size() == plain.grads.size());
  VG_EXPECT(std::memcmp(r.grads.data(), plain.grads.data(), r.grads.size() * sizeof(float)) == 0,
            "reporting changed the gradient");
  const ModelConfig cfg = vgtest::tiny_config(kind, tied);
  const ParamLayout layout(cfg);
  const GradReadyOrder order(cfg, layout);
  // Expected sequence: the documented order; without a vision backward the whole tower comes last, as one range.
  std::vector<GradRange> want = order.order();
  const bool vision_bwd = with_vision && train_vision;
  if (!vision_bwd) {
    while (!want.empty() && want.back().begin >= layout.vision_begin()) want.pop_back();
    want.push_back(order.vision());
  }
  VG_EXPECT(r.reports.size() == want.size(), r.reports.size(), " reports, expected ", want.size());
  for (size_t i = 0; i < std::min(want.size(), r.reports.size()); ++i)
    VG_EXPECT(r.reports[i].begin == want[i].begin && r.reports[i].end == want[i].end, "report ", i, " is [",
              r.reports[i].begin, ", ", r.reports[i].end, "), expected [", want[i].begin, ", ", want[i].end, ")");
  // Exactly once: the ranges tile [0, total).
  std::vector<int> seen(layout.total(), 0);
  for (const Report& x : r.reports)
    for (int64_t i = x.begin; i < x.end; ++i) seen[i]++;
  VG_EXPECT(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }), "a gradient element was reported 0 or 2+ times");
  // Final when reported: the snapshot equals the finished gradient bit for bit; and the check is not vacuous (the
  // decoder ranges hold nonzero gradients).
  int64_t nonzero = 0;
  for (const Report& x : r.reports) {
    VG_EXPECT(std::memcmp(x.snapshot.data(), r.grads.data() + x.begin, x.snapshot.size() * sizeof(float)) == 0,
              "range [", x.begin, ", ", x.end, ") changed after it was reported final");
    for (float v : x.snapshot) nonzero += v != 0.0f;
  }
  VG_EXPECT(nonzero > layout.total() / 4, "only ", nonzero, " nonzero gradients");
}

// A communicator that records collectives (world size 1 arithmetic: nothing changes), optionally checking that the
// bucket's values are already final, and adding 1 to every element it reduces (to see each was reduced once).
class RecordingComm : public vg::dist::Communicator {
 public:
  int world = 1;
  std::vector<std::pair<int64_t, int64_t>> calls;  // (offset into buf, n)
  std::vector<std::vector<int64_t>> counts;
  float* base = nullptr;
  int rank() const override { return 0; }
  int world_size() const override { return world; }
  const char* backend() const override { return "recording"; }
  void all_reduce(float* buf, int64_t n, vg::dist::ReduceOp) override {
    calls.push_back({buf - base, n});
    for (int64_t i = 0; i < n; ++i) buf[i] += 1;
  }
  void all_reduce(double*, int64_t, vg::dist::ReduceOp) override {}
  void reduce_scatter(float* buf, const std::vector<int64_t>& c) override {
    int64_t n = 0;
    for (int64_t x : c) n += x;
    calls.push_back({buf - base, n});
    counts.push_back(c);
    for (int64_t i = 0; i < n; ++i) buf[i] += 1;
  }
  void all_gather(float*, const std::vector<int64_t>&) override {}
  void broadcast(float*, int64_t, int) override {}
  void broadcast(uint8_t*, int64_t, int) override {}
  void barrier() override {}
};

}  // namespace

VG_TEST(grad_overlap_reports_qwen2_5_tied_with_vision) { check_reports(VisionKind::Qwen2_5, true, true, true, 11); }
VG_TEST(grad_overlap_reports_qwen2_untied_with_vision) { check_reports(VisionKind::Qwen2, false, true, true, 12); }
VG_TEST(grad_overlap_reports_text_only_and_frozen_tower) {
  check_reports(VisionKind::Qwen2_5, false, false, true, 13);
  check_reports(VisionKind::Qwen2, true, true, false, 14);
}

VG_TEST(grad_overlap_callback_refused_in_lora_mode) {
  Case c = make_case(VisionKind::Qwen2_5, true, 15);
  Model<float> m(c.cfg);
  init_params(m, 16);
  LoraSpec spec;
  spec.rank = 2;
  spec.alpha = 4;
  spec.modules = {"model.layers.0.self_attn.q_proj"};
  m.enable_lora(spec);
  ForwardOptions o;
  o.targets = c.targets.data();
  o.keep_for_backward = true;
  m.forward(c.batch(), &c.vin, o);
  std::vector<float> dl(c.weights.begin(), c.weights.end());
  const GradReadyFn fn = [](int64_t, int64_t) {};
  VG_EXPECT_THROWS(m.backward(dl.data(), nullptr, true, fn), "LoRA mode");
}

VG_TEST(grad_overlap_plan_coalesces_touching_units_up_to_cap) {
  // Descending units (like a backward): [90,100) [70,90) [60,70) [0,60), then a separate tail [100,130).
  const std::vector<Range> units = {{90, 100}, {70, 90}, {60, 70}, {0, 60}, {100, 130}};
  auto p = vg::dist::plan_buckets(units, 0, 130, 30);
  // [70,100) (30), [60,70) alone (the next unit 60 long > cap is split from its end), [30,60) [0,30), [100,130).
  const std::vector<std::pair<int64_t, int64_t>> want = {{70, 100}, {60, 70}, {30, 60}, {0, 30}, {100, 130}};
  VG_EXPECT(p.size() == want.size(), p.size(), " buckets");
  for (size_t i = 0; i < std::min(p.size(), want.size()); ++i)
    VG_EXPECT(p[i].begin == want[i].first && p[i].end == want[i].second, "bucket ", i, " [", p[i].begin, ", ", p[i].end, ")");
  // Clipping to a trainable range; a huge cap gives one bucket per contiguous run.
  auto q = vg::dist::plan_buckets(units, 65, 120, 1000);
  VG_EXPECT(q.size() == 1 && q[0].begin == 65 && q[0].end == 120);  // touching in either direction joins
  VG_EXPECT_THROWS(vg::dist::plan_buckets(units, 0, 130, 0), "capacity 0");
}

VG_TEST(grad_overlap_reducer_runs_buckets_in_plan_order) {
  auto g = vgtest::rng(21);
  std::vector<float> grads = vgtest::randn<float>(130, g);
  const std::vector<float> orig = grads;
  const std::vector<Range> units = {{90, 100}, {70, 90}, {60, 70}, {0, 60}, {100, 130}};
  auto plan = vg::dist::plan_buckets(units, 0, 130, 30);
  BucketReducer red(grads.data(), 0, 130, plan, BucketOp::AllReduce);
  RecordingComm comm;
  comm.base = grads.data();
  std::thread t([&] { red.run(comm); });
  // Report in address order (the reverse of the plan for the first buckets): nothing may start before bucket 0.
  red.mark_ready(0, 60);
  red.mark_ready(100, 130);
  red.mark_ready(60, 70);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  VG_EXPECT(red.issued_before_finish() == 0, "a bucket started before the first bucket of the plan was complete");
  red.mark_ready(70, 85);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  VG_EXPECT(red.issued_before_finish() == 0, "bucket 0 started while 15 of its values were still pending");
  red.mark_ready(85, 100);
  red.finish_reporting();
  red.wait();
  t.join();
  VG_EXPECT(comm.calls.size() == plan.size());
  for (size_t i = 0; i < std::min(plan.size(), comm.calls.size()); ++i)
    VG_EXPECT(comm.calls[i].first == plan[i].begin && comm.calls[i].second == plan[i].end - plan[i].begin, "call ", i);
  for (size_t i = 0; i < grads.size(); ++i) VG_EXPECT(grads[i] == orig[i] + 1, "element ", i, " reduced ", grads[i] - orig[i], " times");
}

VG_TEST(grad_overlap_reducer_scatter_counts_follow_the_shards) {
  std::vector<float> grads(50, 0.0f);
  // Range [10, 50) over 3 ranks: shards [10,24) [24,37) [37,50); buckets of 16 from the end.
  auto plan = vg::dist::plan_buckets({{10, 50}}, 10, 50, 16);
  BucketReducer red(grads.data(), 10, 50, plan, BucketOp::ReduceScatter, {14, 13, 13});
  VG_EXPECT(plan.size() == 3);
  // [34,50): 0, 3, 13; [18,34): 6, 10, 0; [10,18): 8, 0, 0.
  const std::vector<std::vector<int64_t>> want = {{0, 3, 13}, {6, 10, 0}, {8, 0, 0}};
  for (size_t k = 0; k < want.size(); ++k) VG_EXPECT(red.scatter_counts(k) == want[k], "bucket ", k);
  RecordingComm comm;
  comm.world = 3;
  comm.base = grads.data();
  red.mark_all_ready();
  red.run(comm);
  red.wait();
  VG_EXPECT(comm.counts.size() == 3 && comm.counts[0] == want[0]);
  const std::vector<int64_t> short_counts = {14, 13, 12};
  const std::vector<Range> gap = {{10, 30}, {31, 50}};
  VG_EXPECT_THROWS(BucketReducer(grads.data(), 10, 50, plan, BucketOp::ReduceScatter, short_counts), "sum to 39");
  VG_EXPECT_THROWS(BucketReducer(grads.data(), 10, 50, gap, BucketOp::AllReduce), "partition");
}

VG_TEST(grad_overlap_reducer_fails_on_double_or_missing_reports) {
  std::vector<float> grads(40, 0.0f);
  auto plan = vg::dist::plan_buckets({{20, 40}, {0, 20}}, 0, 40, 20);
  {
    BucketReducer red(grads.data(), 0, 40, plan, BucketOp::AllReduce);
    red.mark_ready(20, 40);
    VG_EXPECT_THROWS(red.mark_ready(30, 35), "twice");
  }
  {
    BucketReducer red(grads.data(), 0, 40, plan, BucketOp::AllReduce);
    RecordingComm comm;
    comm.base = grads.data();
    std::thread t([&] { red.run(comm); });
    red.mark_ready(20, 40);
    red.mark_ready(0, 19);  // one value never reported
    red.finish_reporting();
    VG_EXPECT_THROWS(red.wait(), "never reported");
    t.join();
    VG_EXPECT(comm.calls.size() <= 1 && grads[0] == 0.0f && grads[19] == 0.0f, "the incomplete bucket must not be reduced");
  }
  {
    BucketReducer red(grads.data(), 0, 40, plan, BucketOp::AllReduce);
    RecordingComm comm;
    comm.base = grads.data();
    std::thread t([&] { red.run(comm); });
    red.abort("backward failed");
    VG_EXPECT_THROWS(red.wait(), "backward failed");
    t.join();
    VG_EXPECT(comm.calls.empty());
  }
}
