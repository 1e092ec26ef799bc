// Video inputs through the whole model on the tiny random configs:
//  - the vision tower on a video of grid (t > 1, h, w) attends only within each temporal slice (full-attention
//    segments and Qwen2.5-VL windows are per frame pair, HF's cu_seqlens = repeat(h*w, t)): the features of slice k
//    equal the tower run on a one-slice video made of that slice's patch rows;
//  - video-pad positions take the video's features (the tower's output rows are the batch's images, then its
//    videos; decoder.h): the same prompt with its video pads written as image pads and the vision rows in order
//    of appearance gives the same log-probs;
//  - gradients of every parameter tensor through a batch holding a video and an image, against central finite
//    differences in float64;
//  - generate() on a video prompt: greedy tokens equal the argmax chain of full forwards.
#include <algorithm>
#include <array>
#include <cmath>

#include "model/generate.h"
#include "model/model.h"
#include "test_framework.h"
#include "tiny_model.h"

using namespace vg;
using vgtest::init_params;
using vgtest::tiny_config;

namespace {

using Grid = std::array<int64_t, 3>;  // (t, h, w) in patches

// Vision index arrays for several grids in order, the rules of src/model/vision-index.ts (merge size 2): per frame
// pair, rotary (row, col) ids in merge-window order, one full-attention segment of h*w patches, and the frame's
// merged grid tiled into ws x ws windows (row-major tiles, row-major inside a tile).
struct MultiIndex {
  std::vector<int32_t> pos, cu{0}, win, cu_win{0};
};
MultiIndex multi_index(const std::vector<Grid>& grids, int64_t ws) {
  MultiIndex x;
  int64_t offset = 0;  // merged tokens of the earlier grids
  for (const Grid& g : grids) {
    const int64_t t = g[0], h = g[1], w = g[2], lh = h / 2, lw = w / 2;
    for (int64_t f = 0; f < t; ++f) {
      for (int64_t i = 0; i < lh; ++i)
        for (int64_t j = 0; j < lw; ++j)
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
              x.pos.push_back(static_cast<int32_t>(2 * i + a));
              x.pos.push_back(static_cast<int32_t>(2 * j + b));
            }
      x.cu.push_back(static_cast<int32_t>(x.cu.back() + h * w));
      for (int64_t r0 = 0; r0 < lh; r0 += ws)
        for (int64_t c0 = 0; c0 < lw; c0 += ws) {
          int64_t n = 0;
          for (int64_t r = r0; r < std::min(lh, r0 + ws); ++r)
            for (int64_t c = c0; c < std::min(lw, c0 + ws); ++c, ++n)
              x.win.push_back(static_cast<int32_t>(offset + f * lh * lw + r * lw + c));
          x.cu_win.push_back(static_cast<int32_t>(x.cu_win.back() + 4 * n));
        }
    }
    offset += t * lh * lw;
  }
  return x;
}

int64_t window_units(const ModelConfig& cfg) {
  return cfg.vision.window_size / (cfg.vision.patch_size * cfg.vision.merge_size);
}

VisionInput vision_input(const ModelConfig& cfg, const MultiIndex& x, const std::vector<float>& pixels) {
  VisionInput v;
  v.num_patches = static_cast<int64_t>(x.pos.size()) / 2;
  v.pixel_values = pixels.data();
  v.pos_ids = x.pos.data();
  v.num_images = static_cast<int64_t>(x.cu.size()) - 1;
  v.cu_seqlens = x.cu.data();
  if (cfg.vision.kind == VisionKind::Qwen2_5) {
    v.window_index = x.win.data();
    v.num_windows = static_cast<int64_t>(x.cu_win.size()) - 1;
    v.cu_window_seqlens = x.cu_win.data();
  }
  return v;
}

std::vector<double> tower(const ModelConfig& cfg, const Model<double>& m, const VisionInput& v) {
  VisionActs<double> acts;
  std::vector<double> out(v.num_patches / 4 * cfg.vision.out_hidden);
  vision_forward(cfg, m.view(), v, acts, out.data());
  return out;
}

void check_temporal_slices(VisionKind kind, uint64_t salt) {
  const ModelConfig cfg = tiny_config(kind, true);
  Model<double> m(cfg);
  init_params(m, salt);
  auto g = vgtest::rng(salt + 1);
  const Grid video = {3, 4, 6};
  const int64_t slice_patches = video[1] * video[2], slice_tokens = slice_patches / 4, D = cfg.vision.out_hidden,
                pd = cfg.vision.patch_dim();
  std::vector<float> pixels = vgtest::randn<float>(video[0] * slice_patches * pd, g);
  const MultiIndex all = multi_index({video}, window_units(cfg));
  const std::vector<double> full = tower(cfg, m, vision_input(cfg, all, pixels));
  const MultiIndex one = multi_index({{1, video[1], video[2]}}, window_units(cfg));
  for (int64_t k = 0; k < video[0]; ++k) {
    std::vector<float> slice(pixels.begin() + k * slice_patches * pd, pixels.begin() + (k + 1) * slice_patches * pd);
    const std::vector<double> alone = tower(cfg, m, vision_input(cfg, one, slice));
    VG_EXPECT_ALLCLOSE(full.data() + k * slice_tokens * D, alone.data(), alone.size(), 1e-12, 1e-10);
  }
  // Control: one attention segment over the whole video lets the slices see each other, so the slice features
  // change (the comparison above can fail).
  MultiIndex joined = all;
  joined.cu = {0, static_cast<int32_t>(video[0] * slice_patches)};
  if (kind == VisionKind::Qwen2_5) joined.cu_win = joined.cu;  // windows spanning the frames too
  const std::vector<double> mixed = tower(cfg, m, vision_input(cfg, joined, pixels));
  double diff = 0;
  for (size_t i = 0; i < full.size(); ++i) diff = std::max(diff, std::fabs(full[i] - mixed[i]));
  VG_EXPECT(diff > 1e-6, "attention across temporal slices did not change the features (max diff ", diff, ")");
}

// M-RoPE positions of one sequence (HF v4 get_rope_index rules, spec 4.2.1): text runs count up; a vision block of
// grid (t, h, w) starting after `text` tokens gets t = base + T(f), h = base + row, w = base + col with
// T(f) = f * temporal_step; the next text starts at the block's max + 1.
struct Segment {
  int32_t token;      // text token id, or a pad id for a vision block
  Grid grid{};        // vision blocks only
  int64_t temporal_step = 0;
};
void append_sequence(const std::vector<Segment>& segs, std::vector<int32_t>& ids, std::vector<std::array<int32_t, 3>>& pos) {
  int32_t next = 0;
  for (const Segment& s : segs) {
    if (s.grid[0] == 0) {
      ids.push_back(s.token);
      pos.push_back({next, next, next});
      ++next;
      continue;
    }
    const int64_t lh = s.grid[1] / 2, lw = s.grid[2] / 2;
    int32_t mx = next;
    for (int64_t f = 0; f < s.grid[0]; ++f)
      for (int64_t i = 0; i < lh; ++i)
        for (int64_t j = 0; j < lw; ++j) {
          const std::array<int32_t, 3> p = {static_cast<int32_t>(next + f * s.temporal_step), static_cast<int32_t>(next + i),
                                            static_cast<int32_t>(next + j)};
          ids.push_back(s.token);
          pos.push_back(p);
          mx = std::max({mx, p[0], p[1], p[2]});
        }
    next = mx + 1;
  }
}

// Two sequences: sequence 0 holds a video of grid (2, 4, 4) (8 video tokens), sequence 1 an image of grid (1, 4, 6)
// (6 image tokens). With `video_as_image`, sequence 0's video pads are written as image pads (the tower then gets
// its rows in order of appearance: video, image), which must give the same model outputs.
struct VideoCase {
  ModelConfig cfg;
  std::vector<int32_t> ids, positions, cu, targets;
  std::vector<float> pixels;
  MultiIndex index;
  VisionInput vin;
  std::vector<double> weights;
  PackedBatch batch() const {
    PackedBatch b;
    b.num_tokens = static_cast<int64_t>(ids.size());
    b.num_seqs = static_cast<int64_t>(cu.size()) - 1;
    b.input_ids = ids.data();
    b.positions = positions.data();
    b.cu_seqlens = cu.data();
    return b;
  }
};

constexpr int32_t kImagePad = 35, kVisionStart = 36, kVisionEnd = 37, kVideoPad = 38;

VideoCase make_video_case(VisionKind kind, bool video_as_image, uint64_t salt) {
  VideoCase c;
  c.cfg = tiny_config(kind, false);
  const Grid video = {2, 4, 4}, image = {1, 4, 6};
  std::vector<std::array<int32_t, 3>> pos;
  const int32_t vpad = video_as_image ? kImagePad : kVideoPad;
  append_sequence({{1}, {2}, {kVisionStart}, {vpad, video, 1}, {kVisionEnd}, {5}, {6}, {7}}, c.ids, pos);
  c.cu = {0, static_cast<int32_t>(c.ids.size())};
  append_sequence({{3}, {kVisionStart}, {kImagePad, image, 0}, {kVisionEnd}, {9}, {10}, {11}, {12}}, c.ids, pos);
  c.cu.push_back(static_cast<int32_t>(c.ids.size()));
  const int64_t N = static_cast<int64_t>(c.ids.size());
  c.positions.resize(3 * N);
  for (int64_t n = 0; n < N; ++n)
    for (int a = 0; a < 3; ++a) c.positions[a * N + n] = pos[n][a];
  c.targets.assign(N, -1);
  for (size_t s = 0; s + 1 < c.cu.size(); ++s)
    for (int64_t t = c.cu[s]; t + 1 < c.cu[s + 1]; ++t)
      if (c.ids[t + 1] != kImagePad && c.ids[t + 1] != kVideoPad) c.targets[t] = c.ids[t + 1];
  // The same random pixels whatever the order: the video's rows, then the image's.
  auto g = vgtest::rng(salt);
  const int64_t pd = c.cfg.vision.patch_dim(), vp = video[0] * video[1] * video[2], ip = image[1] * image[2];
  const std::vector<float> vpix = vgtest::randn<float>(vp * pd, g), ipix = vgtest::randn<float>(ip * pd, g);
  // Tower rows: images first then videos (video pads), or in order of appearance (all written as image pads).
  const bool video_first = video_as_image;
  c.pixels = video_first ? vpix : ipix;
  c.pixels.insert(c.pixels.end(), video_first ? ipix.begin() : vpix.begin(), video_first ? ipix.end() : vpix.end());
  c.index = multi_index(video_first ? std::vector<Grid>{video, image} : std::vector<Grid>{image, video}, window_units(c.cfg));
  c.vin = vision_input(c.cfg, c.index, c.pixels);
  c.weights = vgtest::randn<double>(N, g);
  return c;
}

template <typename T>
std::vector<T> logprobs_of(Model<T>& m, VideoCase& c) {
  ForwardOptions o;
  o.targets = c.targets.data();
  return m.forward(c.batch(), &c.vin, o).logprobs;
}

double loss_of(Model<double>& m, VideoCase& c) {
  const std::vector<double> lp = logprobs_of(m, c);
  double s = 0;
  for (size_t i = 0; i < lp.size(); ++i) s += c.weights[i] * lp[i];
  return s;
}

void check_video_gradients(VisionKind kind, uint64_t salt) {
  VideoCase c = make_video_case(kind, false, salt);
  Model<double> m(c.cfg);
  init_params(m, salt + 1);
  ForwardOptions o;
  o.targets = c.targets.data();
  o.keep_for_backward = true;
  m.forward(c.batch(), &c.vin, o);
  std::vector<double> dl(c.weights.begin(), c.weights.end());
  m.zero_grads();
  m.backward(dl.data(), nullptr);
  const std::vector<double> grads = m.grads();
  auto g = vgtest::rng(salt + 2);
  int checked = 0;
  for (const ParamEntry& e : m.layout().entries()) {
    for (int k = 0; k < 2; ++k) {  // two entries of every tensor keep the test well under a second
      int64_t i = static_cast<int64_t>(g() % static_cast<uint64_t>(e.numel));
      if (e.name == "model.embed_tokens.weight") i = static_cast<int64_t>(c.ids[g() % c.ids.size()]) * c.cfg.text.hidden + k;
      double& p = m.params()[e.offset + i];
      const double keep = p, h = 1e-5;
      p = keep + h;
      const double lp = loss_of(m, c);
      p = keep - h;
      const double lm = loss_of(m, c);
      p = keep;
      const double fd = (lp - lm) / (2 * h), an = grads[e.offset + i];
      VG_EXPECT(std::fabs(fd - an) <= 1e-6 + 1e-5 * std::fabs(fd), e.name, "[", i, "]: finite difference ", fd,
                " vs backward ", an);
      ++checked;
    }
  }
  VG_EXPECT(checked > 40);
}

}  // namespace

VG_TEST(video_tower_attends_within_temporal_slices_qwen2_5_vl) { check_temporal_slices(VisionKind::Qwen2_5, 11); }
VG_TEST(video_tower_attends_within_temporal_slices_qwen2_vl) { check_temporal_slices(VisionKind::Qwen2, 12); }

VG_TEST(video_pads_take_the_video_features) {
  for (VisionKind kind : {VisionKind::Qwen2_5, VisionKind::Qwen2}) {
    VideoCase as_video = make_video_case(kind, false, 21);
    VideoCase as_image = make_video_case(kind, true, 21);
    Model<double> m(as_video.cfg);
    init_params(m, 22);
    const std::vector<double> a = logprobs_of(m, as_video), b = logprobs_of(m, as_image);
    VG_EXPECT_ALLCLOSE(a.data(), b.data(), a.size(), 1e-12, 1e-10);
    // Control: video pads with the rows in order of appearance (video first) put the wrong features in place.
    VideoCase wrong = make_video_case(kind, false, 21);
    wrong.pixels = as_image.pixels;
    wrong.index = as_image.index;
    wrong.vin = vision_input(wrong.cfg, wrong.index, wrong.pixels);
    const std::vector<double> w = logprobs_of(m, wrong);
    double diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(a[i] - w[i]));
    VG_EXPECT(diff > 1e-6, "the vision row order had no effect (max diff ", diff, ")");
    // A video with no vision input, and a count mismatch, are rejected.
    ForwardOptions o;
    VG_EXPECT_THROWS(m.forward(as_video.batch(), nullptr, o), "6 image-pad and 8 video-pad tokens but no image or video");
    as_video.ids[4] = 1;  // one video pad fewer
    VG_EXPECT_THROWS(m.forward(as_video.batch(), &as_video.vin, o), "give 14 vision tokens but the input ids hold 13 (6 image-pad + 7 video-pad");
  }
}

VG_TEST(video_model_gradients_qwen2_5_vl) { check_video_gradients(VisionKind::Qwen2_5, 31); }
VG_TEST(video_model_gradients_qwen2_vl) { check_video_gradients(VisionKind::Qwen2, 32); }

VG_TEST(video_generate_greedy_matches_forward_argmax_chain) {
  VideoCase c = make_video_case(VisionKind::Qwen2_5, false, 41);
  Model<float> m(c.cfg);
  init_params(m, 42);
  // Prompts: the case's two sequences (one with the video, one with the image); decode deltas = max position + 1 - L.
  const int64_t V = c.cfg.text.vocab_size, steps = 4;
  std::vector<int32_t> deltas(2);
  for (int s = 0; s < 2; ++s) {
    const int64_t N = static_cast<int64_t>(c.ids.size());
    int32_t mx = 0;
    for (int64_t n = c.cu[s]; n < c.cu[s + 1]; ++n)
      for (int a = 0; a < 3; ++a) mx = std::max(mx, c.positions[a * N + n]);
    deltas[s] = mx + 1 - (c.cu[s + 1] - c.cu[s]);
  }
  GenerateOptions g;
  g.max_new_tokens = steps;
  g.sampling.temperature = 0;
  const auto gens = generate(m, c.batch(), deltas.data(), &c.vin, g);
  VG_EXPECT(gens.size() == 2);
  // Full forwards: append each step's argmax (vision special tokens are banned in generation) and re-run.
  std::vector<std::vector<int32_t>> ids(2), pos(2);
  const int64_t N0 = static_cast<int64_t>(c.ids.size());
  for (int s = 0; s < 2; ++s) {
    ids[s].assign(c.ids.begin() + c.cu[s], c.ids.begin() + c.cu[s + 1]);
    for (int a = 0; a < 3; ++a)
      for (int64_t n = c.cu[s]; n < c.cu[s + 1]; ++n) pos[s].push_back(c.positions[a * N0 + n]);
  }
  for (int64_t step = 0; step < steps; ++step) {
    PackedBatch b;
    std::vector<int32_t> flat_ids, flat_pos, cu{0};
    for (int s = 0; s < 2; ++s) {
      flat_ids.insert(flat_ids.end(), ids[s].begin(), ids[s].end());
      cu.push_back(static_cast<int32_t>(flat_ids.size()));
    }
    const int64_t N = static_cast<int64_t>(flat_ids.size());
    flat_pos.resize(3 * N);
    for (int s = 0; s < 2; ++s) {
      const int64_t L = static_cast<int64_t>(ids[s].size());
      for (int a = 0; a < 3; ++a)
        for (int64_t n = 0; n < L; ++n) flat_pos[a * N + cu[s] + n] = pos[s][a * L + n];
    }
    b.num_tokens = N;
    b.num_seqs = 2;
    b.input_ids = flat_ids.data();
    b.positions = flat_pos.data();
    b.cu_seqlens = cu.data();
    ForwardOptions o;
    o.want_logits = true;
    const auto r = m.forward(b, &c.vin, o);
    for (int s = 0; s < 2; ++s) {
      const float* z = r.logits.data() + (cu[s + 1] - 1) * V;
      int32_t best = -1;
      for (int32_t j = 0; j < V; ++j) {
        if (j == kImagePad || j == kVisionStart || j == kVisionEnd || j == kVideoPad) continue;
        if (best < 0 || z[j] > z[best]) best = j;
      }
      VG_EXPECT(gens[s].tokens[step] == best, "prompt ", s, " step ", step, ": generated ", gens[s].tokens[step],
                ", argmax of the full forward ", best);
      // Append with the decode position rule: every axis = cache index + delta.
      const int64_t L = static_cast<int64_t>(ids[s].size());
      std::vector<int32_t> grown;
      for (int a = 0; a < 3; ++a) {
        grown.insert(grown.end(), pos[s].begin() + a * L, pos[s].begin() + (a + 1) * L);
        grown.push_back(static_cast<int32_t>(L + deltas[s]));
      }
      pos[s] = grown;
      ids[s].push_back(best);
    }
  }
}
