// The geometry as constants, the tile decomposition and the input-window load (emit_conv.hpp).
#include <algorithm>

#include "cuda/engines/emit_conv.hpp"

namespace fuseblock::cuda {
namespace {

// Window, then (FMA) the weights chunk, then staging; offsets in floats, 16-byte aligned.
int64_t align4(int64_t v) { return (v + 3) / 4 * 4; }

const char* kTileCode = R"(
// One block tile: its origin in the output and how much of it lies inside the output.
struct fb_tile {
  int od0, oh0, ow0;
  int tdv, thv, twv;
};

__device__ __forceinline__ fb_tile fb_tile_at(int t) {
  fb_tile r;
  const int tw_i = t % fbc::TILES_W;
  const int rest = t / fbc::TILES_W;
  const int th_i = rest % fbc::TILES_H;
  const int td_i = rest / fbc::TILES_H;
  r.od0 = td_i * fbc::TD;
  r.oh0 = th_i * fbc::TH;
  r.ow0 = tw_i * fbc::TW;
  r.tdv = min(fbc::TD, fbc::OD - r.od0);
  r.thv = min(fbc::TH, fbc::OH - r.oh0);
  r.twv = min(fbc::TW, fbc::OW - r.ow0);
  return r;
}

// Output positions of tile t (the statistics' count for its partial sums).
__device__ __forceinline__ int fb_tile_count(int t) {
  const fb_tile r = fb_tile_at(t);
  return r.tdv * r.thv * r.twv;
}

// Global -> shared copies, asynchronous on sm_80+ (cp.async; a 4-byte one zero-fills when !valid).
__device__ __forceinline__ void fb_cp_async4(float* dst, const float* src, bool valid) {
#if __CUDA_ARCH__ >= 800
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 4 : 0) : "memory");
#else
  *dst = valid ? __ldg(src) : 0.0f;
#endif
}
__device__ __forceinline__ void fb_cp_async16(float* dst, const float* src) {
#if __CUDA_ARCH__ >= 800
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
#else
  *reinterpret_cast<float4*>(dst) = __ldg(reinterpret_cast<const float4*>(src));
#endif
}
__device__ __forceinline__ void fb_cp_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void fb_cp_wait_all() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Starts copying work item `item`'s whole window (all CIN channels) into xs, zero outside the
// input, in 4-float chunks: one 16-byte copy where the chunk lies inside the input row and is
// 16-byte aligned there (window pitches are multiples of 4), else four 4-byte copies.
// fb_round_window visits the same chunks in the same order, so each thread rounds only what it
// copied itself (no barrier in between).
constexpr int FB_XCH = (fbc::XW + 3) / 4;  // chunks per window row
__device__ __forceinline__ void fb_issue_window(float* xs, const float* __restrict__ x, long long item) {
  const long long n = item / fbc::TILES;
  const fb_tile T = fb_tile_at((int)(item % fbc::TILES));
  const int id0 = T.od0 * fbc::SD - fbc::PD, ih0 = T.oh0 * fbc::SH - fbc::PH, iw0 = T.ow0 * fbc::SW - fbc::PW;
  const float* xn = x + n * fbc::IN_SAMPLE;
  for (int i = threadIdx.x; i < fbc::CIN * fbc::XD * fbc::XH * FB_XCH; i += fbc::THREADS) {
    const int chunk = i % FB_XCH, row = i / FB_XCH;
    const int xh = row % fbc::XH, xd = (row / fbc::XH) % fbc::XD, ci = row / (fbc::XH * fbc::XD);
    const int gd = id0 + xd, gh = ih0 + xh, gw = iw0 + 4 * chunk;
    const bool row_in = (unsigned)gd < (unsigned)fbc::ID && (unsigned)gh < (unsigned)fbc::IH;
    const float* src = xn + ((ci * fbc::ID + gd) * fbc::IH + gh) * fbc::IW + gw;
    float* dst = xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + 4 * chunk;
    if (row_in && gw >= 0 && gw + 3 < fbc::IW && (reinterpret_cast<unsigned long long>(src) & 15) == 0) {
      fb_cp_async16(dst, src);
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const bool in = row_in && (unsigned)(gw + k) < (unsigned)fbc::IW;
        fb_cp_async4(dst + k, in ? src + k : x, in);
      }
    }
  }
}

__device__ __forceinline__ void fb_round_window(float* xs) {
  for (int i = threadIdx.x; i < fbc::CIN * fbc::XD * fbc::XH * FB_XCH; i += fbc::THREADS) {
    const int chunk = i % FB_XCH, row = i / FB_XCH;
    const int xh = row % fbc::XH, xd = (row / fbc::XH) % fbc::XD, ci = row / (fbc::XH * fbc::XD);
    float4* p = reinterpret_cast<float4*>(xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + 4 * chunk);
    float4 v = *p;
    v.x = fb_tf32(v.x);
    v.y = fb_tf32(v.y);
    v.z = fb_tf32(v.z);
    v.w = fb_tf32(v.w);
    *p = v;
  }
}

// Loads input channels [ci0, ci0 + CIC) of the tile's window into xs, zero outside the input
// (the conv's padding) and past CIN. Warps take rows, lanes take columns.
template <bool TF32>
__device__ __forceinline__ void fb_load_window(float* xs, const float* __restrict__ x, long long n, int ci0,
                                               const fb_tile& T) {
  const int id0 = T.od0 * fbc::SD - fbc::PD, ih0 = T.oh0 * fbc::SH - fbc::PH, iw0 = T.ow0 * fbc::SW - fbc::PW;
  const float* xn = x + n * fbc::IN_SAMPLE;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int row = warp; row < fbc::CIC * fbc::XD * fbc::XH; row += fbc::WARPS) {
    const int xh = row % fbc::XH;
    const int xd = (row / fbc::XH) % fbc::XD;
    const int ci = row / (fbc::XH * fbc::XD);
    const int gd = id0 + xd, gh = ih0 + xh;
    const bool row_in = ci0 + ci < fbc::CIN && (unsigned)gd < (unsigned)fbc::ID && (unsigned)gh < (unsigned)fbc::IH;
    const float* src = xn + (((ci0 + ci) * fbc::ID + gd) * fbc::IH + gh) * fbc::IW;
    float* dst = xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP;
    for (int xw = lane; xw < fbc::XW; xw += 32) {
      const int gw = iw0 + xw;
      float v = 0.0f;
      if (row_in && (unsigned)gw < (unsigned)fbc::IW) v = __ldg(src + gw);
      dst[xw] = TF32 ? fb_tf32(v) : v;
    }
  }
}
)";

}  // namespace

void emit_conv_tile_code(SourceWriter& w, const ConvGeometry& g) {
  w.line("// ---- convolution geometry: {} ----", g.describe());
  w.open("namespace fbc");
  w.line("constexpr long long N = {};", g.n);
  w.line("constexpr int CIN = {}, COUT = {};", g.cin, g.cout);
  w.line("constexpr int ID = {}, IH = {}, IW = {};", g.in[0], g.in[1], g.in[2]);
  w.line("constexpr int OD = {}, OH = {}, OW = {};", g.out[0], g.out[1], g.out[2]);
  w.line("constexpr int KD = {}, KH = {}, KW = {};", g.k[0], g.k[1], g.k[2]);
  w.line("constexpr int SD = {}, SH = {}, SW = {};", g.s[0], g.s[1], g.s[2]);
  w.line("constexpr int PD = {}, PH = {}, PW = {};", g.pad[0], g.pad[1], g.pad[2]);
  w.line("constexpr int DD = {}, DH = {}, DW = {};", g.dil[0], g.dil[1], g.dil[2]);
  w.line("constexpr int KVOL = {}, KRED = {};", g.kvol, g.kred);
  w.line("constexpr bool HAS_BIAS = {};", g.bias ? "true" : "false");
  w.line("constexpr long long IN_SAMPLE = {};  // input elements per sample", g.in_per_sample());
  w.line("constexpr long long OUT_CHANNEL = {};  // output elements per (sample, channel)",
         g.out[0] * g.out[1] * g.out[2]);
  w.line("constexpr int TD = {}, TH = {}, TW = {};  // output tile", g.td, g.th, g.tw);
  w.line("constexpr int TILES_D = {}, TILES_H = {}, TILES_W = {}, TILES = {};", g.tiles_d, g.tiles_h, g.tiles_w,
         g.tiles);
  w.line("constexpr int CT = {}, CCHUNKS = {}, CIC = {};  // channels per block, chunks, input channels per window",
         g.ct, g.cchunks, g.cic);
  w.line("constexpr int XD = {}, XH = {}, XW = {};  // input window", g.xd, g.xh, g.xw);
  w.line("constexpr int XWP = {}, XPP = {}, XCP = {};  // window pitches (bank-conflict padded)", g.xwp, g.xpp,
         g.xcp);
  w.line("constexpr int RP = {}, PP = {}, CP = {}, SEG_LEVEL = {};  // staging pitches", g.rp, g.pp, g.cp,
         g.seg_level);
  w.line("constexpr int THREADS = {}, WARPS = {};", g.threads, g.threads / 32);
  const int64_t window = align4(g.cic * g.xcp);
  const int64_t windows = g.pipelined ? 2 * window : window;
  const int64_t weights = g.engine == ConvEngine::Fma ? static_cast<int64_t>(g.cic) * g.kvol * g.ct4 : 0;
  w.line("constexpr int WIN0_OFFSET = 0, WIN1_OFFSET = {};  // floats into shared memory{}", window,
         g.pipelined ? ": the window being computed and the next one" : "");
  w.line("constexpr int WEIGHTS_OFFSET = {};", windows);
  w.line("constexpr int STAGE_OFFSET = {};", windows + align4(weights));
  w.line("constexpr int AO_OFFSET = {};  // the MMA engine's A-offset table", windows + align4(weights) + align4(g.ct * g.cp));
  if (g.engine == ConvEngine::MmaTf32) {
    w.line("constexpr int MPW = {}, WS = {}, KSTEPS = {}, NT = {};  // m-tiles per warp, per row; k-steps; n-tiles",
           g.mpw, g.ws, g.ksteps, g.ntiles_n);
  } else {
    w.line("constexpr int CT4 = {};  // weights chunk channel pitch", g.ct4);
  }
  w.close("}  // namespace fbc");
  w.raw(kTileCode);
  w.blank();
}

void emit_wait_for_previous_grid(SourceWriter& w) {
  w.line("#if __CUDA_ARCH__ >= 900");
  w.line("  asm volatile(\"griddepcontrol.wait;\" ::: \"memory\");  // until the previous kernel is done and its writes visible");
  w.line("#endif");
}

void emit_conv_kernel(SourceWriter& w, const ConvGeometry& g, const ConvKernelSpec& spec) {
  const bool mma = g.engine == ConvEngine::MmaTf32;
  w.line("extern \"C\" __global__ void __launch_bounds__({}, {}) {}({}) {{", g.threads, g.min_blocks_per_sm,
         spec.name, spec.params);
  if (spec.gated) {
    emit_wait_for_previous_grid(w);
    w.line("  if (flags[fbc::N] == 0) return;  // no sample failed the guard: nothing to recompute");
  }
  w.raw(R"(  extern __shared__ __align__(16) float fb_smem[];
  float* const st = fb_smem + fbc::STAGE_OFFSET;
  const int c0 = blockIdx.y * fbc::CT;
  const long long total = fbc::N * fbc::TILES;
)");
  if (mma)
    emit_mma_prologue(w, g);
  else
    emit_fma_prologue(w, g);
  const std::string skip = spec.gated ? " && flags[ITEM / fbc::TILES] == 0" : "";
  auto skip_for = [&](const std::string& v) {
    std::string r = skip;
    for (size_t at; (at = r.find("ITEM")) != std::string::npos;) r.replace(at, 4, v);
    return r;
  };
  if (g.pipelined) {
    // Double-buffered: the next item's window is in flight while this one computes.
    w.line("  long long item = blockIdx.x;");
    if (spec.gated) w.line("  while (item < total{}) item += gridDim.x;  // samples that passed", skip_for("item"));
    w.raw(R"(  float* cur = fb_smem + fbc::WIN0_OFFSET;
  float* nxt = fb_smem + fbc::WIN1_OFFSET;
  if (item < total) fb_issue_window(cur, x, item);
  fb_cp_commit();
  while (item < total) {
    long long next = item + gridDim.x;
)");
    if (spec.gated) w.line("    while (next < total{}) next += gridDim.x;", skip_for("next"));
    w.raw(R"(    const long long n = item / fbc::TILES;
    const int t = (int)(item % fbc::TILES);
    const fb_tile T = fb_tile_at(t);
    fb_cp_wait_all();
)");
    if (mma) w.line("    fb_round_window(cur);  // tf32, once per element rather than once per use");
    w.raw(R"(    __syncthreads();  // window ready; the previous tile's window and staging are free
    if (next < total) fb_issue_window(nxt, x, next);
    fb_cp_commit();
    const float* const xs = cur;
)");
  } else {
    w.raw(R"(  float* const xs = fb_smem + fbc::WIN0_OFFSET;
  for (long long item = blockIdx.x; item < total; item += gridDim.x) {
    const long long n = item / fbc::TILES;
    const int t = (int)(item % fbc::TILES);
)");
    if (spec.gated) w.line("    if (flags[n] == 0) continue;  // guard passed: the fill path's output stands");
    w.line("    const fb_tile T = fb_tile_at(t);");
  }
  if (mma && spec.stats_from_registers) {
    emit_mma_tile(w, g, false);
    emit_mma_register_stats(w, g);
  } else {
    if (mma)
      emit_mma_tile(w, g, true);
    else
      emit_fma_tile(w, g);
    w.line("    __syncthreads();  // staging complete");
    for (const auto& s : spec.epilogue) w.line("    {}", s);
  }
  if (g.pipelined) {
    w.line("    float* const done = cur;");
    w.line("    cur = nxt;");
    w.line("    nxt = done;");
    w.line("    item = next;");
  }
  w.line("  }}");
  w.line("}}");
  w.blank();
}

}  // namespace fuseblock::cuda
