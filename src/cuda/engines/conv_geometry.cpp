// Tile and shared-memory layout choice for the conv kernels (conv_geometry.hpp).
#include "cuda/engines/conv_geometry.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

constexpr int64_t kSmemBudgetFloats = 24 * 1024;  // 96 KB: two blocks per SM on Hopper and Ampere
constexpr int64_t kMmaMaxKsteps = 16;             // K <= 128: B fragments and offsets fit in registers

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
int64_t align4(int64_t v) { return round_up(v, 4); }

}  // namespace

ConvGeometry conv_in_3d(const Pipeline& p) {
  ConvGeometry g;
  const ConvAttrs& c = p.conv;
  const int dims = c.dims;
  FB_ASSERT(dims >= 1 && dims <= 3, "conv dims");
  FB_ASSERT(static_cast<int>(p.input_shape.size()) == dims + 2 && static_cast<int>(p.output_shape.size()) == dims + 2,
            "conv shapes");
  g.n = p.input_shape[0];
  g.cin = p.input_shape[1];
  g.cout = p.output_shape[1];
  for (int i = 0; i < 3; ++i) {
    const int j = i - (3 - dims);  // index into the conv's own dims, or < 0 for a leading 1
    g.in[i] = j < 0 ? 1 : p.input_shape[2 + j];
    g.out[i] = j < 0 ? 1 : p.output_shape[2 + j];
    g.k[i] = j < 0 ? 1 : c.kernel[j];
    g.s[i] = j < 0 ? 1 : c.stride[j];
    g.pad[i] = j < 0 ? 0 : c.padding[j];
    g.dil[i] = j < 0 ? 1 : c.dilation[j];
  }
  g.bias = c.bias;
  g.kvol = g.k[0] * g.k[1] * g.k[2];
  g.kred = g.cin * g.kvol;
  return g;
}

namespace {

void set_tile(ConvGeometry& g, int64_t td, int64_t th, int64_t tw) {
  g.td = td;
  g.th = th;
  g.tw = tw;
  g.tiles_d = ceil_div(g.out[0], td);
  g.tiles_h = ceil_div(g.out[1], th);
  g.tiles_w = ceil_div(g.out[2], tw);
  g.tiles = g.tiles_d * g.tiles_h * g.tiles_w;
  g.xd = (td - 1) * g.s[0] + (g.k[0] - 1) * g.dil[0] + 1;
  g.xh = (th - 1) * g.s[1] + (g.k[1] - 1) * g.dil[1] + 1;
  g.xw = (tw - 1) * g.s[2] + (g.k[2] - 1) * g.dil[2] + 1;
}

// Staging pitches: rows of the full output width when a tile spans it, so that a tile's part of
// one (c, d) plane is one run in memory and one run in staging.
void set_staging(ConvGeometry& g) {
  const bool full_w = g.tiles_w == 1, full_h = full_w && g.tiles_h == 1;
  g.rp = full_w ? g.out[2] : g.tw;
  g.pp = full_h ? g.out[1] * g.out[2] : g.th * g.rp;
  g.seg_level = full_h ? 2 : (full_w ? 1 : 0);
  g.cp = g.td * g.pp;
}

// Wavefronts for one warp-wide shared-memory access: per bank, the number of distinct words.
int wavefronts(const std::vector<int64_t>& addrs) {
  std::map<int, std::set<int64_t>> banks;
  for (int64_t a : addrs) banks[static_cast<int>(((a % 32) + 32) % 32)].insert(a);
  size_t worst = 1;
  for (const auto& [b, words] : banks) worst = std::max(worst, words.size());
  return static_cast<int>(worst);
}

int64_t k_offset(const ConvGeometry& g, int64_t k, int64_t xwp, int64_t xpp, int64_t xcp) {
  const int64_t kw = k % g.k[2], kh = (k / g.k[2]) % g.k[1], kd = (k / (g.k[2] * g.k[1])) % g.k[0];
  const int64_t ci = k / g.kvol;
  return ci * xcp + kd * g.dil[0] * xpp + kh * g.dil[1] * xwp + kw * g.dil[2];
}

// Staging stores of the C fragments: lane (g, t) writes channel 2t (+1) at position g.
int staging_conflict_cost(const ConvGeometry& g, int64_t cp) {
  int cost = 0;
  for (int odd = 0; odd < 2; ++odd) {
    std::vector<int64_t> addrs;
    for (int lane = 0; lane < 32; ++lane) addrs.push_back((2 * (lane & 3) + odd) * cp + (lane >> 2));
    cost += wavefronts(addrs);
  }
  return cost;
}

void choose_mma_pitches(ConvGeometry& g) {
  // Pitches are multiples of 4 floats, so window rows take 16-byte copies; among those, the
  // fewest bank conflicts (for problem 83 this costs nothing: the ideal is reachable either way).
  int best = std::numeric_limits<int>::max();
  const int64_t w0 = round_up(g.xw, 4);
  int64_t bw = w0;
  for (int64_t w = w0; w < w0 + 64; w += 4) {
    int c = mma_a_conflict_cost(g, w, g.xh * w, g.xd * g.xh * w);
    if (c < best) best = c, bw = w;
  }
  int64_t bp = g.xh * bw;
  for (int64_t p = g.xh * bw; p < g.xh * bw + 64; p += 4) {
    int c = mma_a_conflict_cost(g, bw, p, g.xd * p);
    if (c < best) best = c, bp = p;
  }
  int64_t bc = g.xd * bp;
  if (g.cin > 1) {
    for (int64_t c0 = g.xd * bp; c0 < g.xd * bp + 64; c0 += 4) {
      int c = mma_a_conflict_cost(g, bw, bp, c0);
      if (c < best) best = c, bc = c0;
    }
  }
  g.xwp = bw;
  g.xpp = bp;
  g.xcp = bc;
  g.a_conflict_cost = best;
  int sbest = std::numeric_limits<int>::max();
  // Staging also holds the statistics kernel's per-warp sums: at least 2 * warps + 1 per channel.
  const int64_t cp_min = std::max<int64_t>(g.td * g.pp, 2 * g.warps + 1);
  int64_t bcp = cp_min;
  for (int64_t cp = cp_min; cp < cp_min + 32; ++cp) {
    int c = staging_conflict_cost(g, cp);
    if (c < sbest) sbest = c, bcp = cp;
  }
  g.cp = bcp;
}

// Relative cost of a tiling, in lane operations per sample: the engine's work per computed
// position, the window loads, and the output epilogue, which walks each segment in 4-element
// steps (a segment's ragged ends cost a whole step and scalar stores: short segments are dear).
double tiling_cost(const ConvGeometry& g, double per_position) {
  const double positions = static_cast<double>(g.td * g.th * g.tw);
  const double window = static_cast<double>(g.cic * g.xd * g.xh * g.xw) * ceil_div(g.cin, g.cic);
  const double segments = g.seg_level == 0 ? g.td * g.th : (g.seg_level == 1 ? g.td : 1);
  const double seg_len = g.seg_level == 0 ? g.tw : (g.seg_level == 1 ? g.th * g.out[2] : g.td * g.out[1] * g.out[2]);
  const double epilogue = g.ct * segments * (seg_len / 4.0 + 2.0) * 40.0;
  return static_cast<double>(g.tiles) * (positions * per_position + window * 8.0 + epilogue);
}

bool choose_mma(ConvGeometry& g, const ConvTuning& tuning) {
  g.engine = ConvEngine::MmaTf32;
  g.ksteps = static_cast<int>(ceil_div(g.kred, 8));
  if (g.ksteps > kMmaMaxKsteps) return false;
  g.warps = 8;
  g.threads = 256;
  g.mpw = tuning.mma_mpw;
  g.ct = static_cast<int>(std::min<int64_t>(16, round_up(g.cout, 8)));
  g.ntiles_n = g.ct / 8;
  g.cchunks = static_cast<int>(ceil_div(g.cout, g.ct));
  g.cic = static_cast<int>(g.cin);
  const int64_t mtiles = g.warps * g.mpw;  // 16-position row pieces per block
  ConvGeometry best;
  double best_cost = std::numeric_limits<double>::max();
  for (int64_t ws : {1, 2, 4, 8, 16, 32}) {
    if (mtiles % ws) continue;
    const int64_t rows = mtiles / ws;
    for (int64_t th = 1; th <= rows; ++th) {
      if (rows % th) continue;
      const int64_t td = rows / th;
      // A warp's m-tiles must sit at fixed offsets from its first: within one row (ws a multiple
      // of mpw) or over mpw/ws whole rows of one plane.
      if (ws < g.mpw && th % (g.mpw / ws)) continue;
      if (td > 1 && g.out[0] == 1) continue;
      if (th > 1 && g.out[1] == 1) continue;
      ConvGeometry c = g;
      c.ws = static_cast<int>(ws);
      set_tile(c, td, th, 16 * ws);
      set_staging(c);
      c.xwp = round_up(c.xw, 4), c.xpp = c.xh * c.xwp, c.xcp = c.xd * c.xpp;
      c.smem_floats = 2 * (c.cin * c.xcp + 32) + c.ct * (c.cp + 32);
      if (c.smem_floats > kSmemBudgetFloats) continue;
      double cost = tiling_cost(c, 8.0 * c.ksteps);
      if (cost < best_cost) best_cost = cost, best = c;
    }
  }
  if (best_cost == std::numeric_limits<double>::max()) return false;
  choose_mma_pitches(best);
  best.pipelined = true;
  best.smem_floats = 2 * align4(best.cin * best.xcp) + align4(best.ct * best.cp) + 8 * best.ksteps;
  best.min_blocks_per_sm = tuning.min_blocks;
  g = best;
  return true;
}

void choose_fma(ConvGeometry& g, const ConvTuning& tuning) {
  g.engine = ConvEngine::Fma;
  g.threads = 128;
  g.warps = 4;
  g.ct = static_cast<int>(std::min<int64_t>(16, round_up(g.cout, 4)));
  g.ct4 = static_cast<int>(round_up(g.ct, 4));
  g.cchunks = static_cast<int>(ceil_div(g.cout, g.ct));
  const int64_t positions = 4 * g.threads;  // each thread: 4 consecutive w positions
  ConvGeometry best;
  double best_cost = std::numeric_limits<double>::max();
  for (int64_t tw = 4; tw <= positions; tw *= 2) {
    const int64_t rows = positions / tw;
    for (int64_t th = 1; th <= rows; ++th) {
      if (rows % th) continue;
      const int64_t td = rows / th;
      if (td > 1 && g.out[0] == 1) continue;
      if (th > 1 && g.out[1] == 1) continue;
      ConvGeometry c = g;
      set_tile(c, td, th, tw);
      set_staging(c);
      c.xwp = round_up(c.xw, 4);  // 16-byte window rows
      c.xpp = c.xh * c.xwp;
      c.xcp = c.xd * c.xpp;
      const int64_t stage = c.ct * c.cp;
      const int64_t per_ci = c.xcp + c.kvol * c.ct4;
      const int64_t double_buffered = 2 * align4(c.cin * c.xcp) + c.cin * c.kvol * c.ct4 + stage;
      if (double_buffered <= kSmemBudgetFloats) {
        c.cic = static_cast<int>(c.cin);
        c.pipelined = true;
        c.smem_floats = double_buffered;
      } else {
        const int64_t cic = std::min<int64_t>(c.cin, (kSmemBudgetFloats - stage - 8) / std::max<int64_t>(per_ci, 1));
        if (cic < 1) continue;
        c.cic = static_cast<int>(cic);
        c.pipelined = false;
        c.smem_floats = align4(c.cic * c.xcp) + c.cic * c.kvol * c.ct4 + stage;
      }
      double cost = tiling_cost(c, 1.0 * c.kred * c.ct / 4.0);
      if (cost < best_cost) best_cost = cost, best = c;
    }
  }
  if (best_cost == std::numeric_limits<double>::max())
    throw UserError(fmt::format("the CUDA backend cannot tile this convolution (input window {}x{}x{} per channel "
                                "does not fit in shared memory)",
                                g.k[0] * g.dil[0], g.k[1] * g.dil[1], g.k[2] * g.dil[2]),
                    "use --device cpu");
  best.min_blocks_per_sm = tuning.min_blocks;
  g = best;
}

}  // namespace

const char* engine_name(ConvEngine e) { return e == ConvEngine::MmaTf32 ? "mma-tf32" : "fma-fp32"; }

int mma_a_conflict_cost(const ConvGeometry& g, int64_t xwp, int64_t xpp, int64_t xcp) {
  int cost = 0;
  std::vector<int64_t> addrs(32);
  for (int ks = 0; ks < g.ksteps; ++ks) {
    for (int half = 0; half < 2; ++half) {
      for (int lane = 0; lane < 32; ++lane) {
        const int64_t k = ks * 8 + (lane & 3) + 4 * half;
        const int64_t row = lane >> 2;
        addrs[lane] = row * g.s[2] + (k < g.kred ? k_offset(g, k, xwp, xpp, xcp) : 0);
      }
      cost += wavefronts(addrs);
    }
  }
  return cost;
}

ConvGeometry choose_conv_geometry(const Pipeline& p, bool allow_tf32, const ConvTuning& tuning) {
  FB_ASSERT(p.computes_conv, "conv geometry for a pipeline without a conv");
  ConvGeometry g = conv_in_3d(p);
  const int64_t lim = std::numeric_limits<int32_t>::max();
  if (g.in_per_sample() > lim || g.out_per_sample() > lim)
    throw UserError("the CUDA backend needs each sample's input and output under 2^31 elements",
                    "use --device cpu, or a smaller spatial size");
  if (!(allow_tf32 && choose_mma(g, tuning))) choose_fma(g, tuning);
  g.epilogue_unroll = tuning.epilogue_unroll;
  return g;
}

std::string ConvGeometry::describe() const {
  return fmt::format(
      "{} engine, tile {}x{}x{} x {} channels ({} tiles/sample, {} channel chunks), {} threads, "
      "window {}x{}x{} pitches {}/{}/{}{}, staging pitch {}, {} KB shared, segments at level {}",
      engine_name(engine), td, th, tw, ct, tiles, cchunks, threads, xd, xh, xw, xwp, xpp, xcp,
      pipelined ? " double-buffered" : "", cp, smem_bytes() / 1024, seg_level);
}

}  // namespace fuseblock::cuda
