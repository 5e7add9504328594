// The geometry as constants, the tile decomposition and the input-window load (emit_conv.hpp).
#include <algorithm>

#include "cuda/emit_conv.hpp"

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
  const int64_t window = g.cic * g.xcp;
  const int64_t weights = g.engine == ConvEngine::Fma ? static_cast<int64_t>(g.cic) * g.kvol * g.ct4 : 0;
  w.line("constexpr int WEIGHTS_OFFSET = {};  // floats into shared memory", align4(window));
  w.line("constexpr int STAGE_OFFSET = {};", align4(window) + align4(weights));
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

void emit_conv_kernel(SourceWriter& w, const ConvGeometry& g, const ConvKernelSpec& spec) {
  w.line("extern \"C\" __global__ void __launch_bounds__({}, {}) {}({}) {{", g.threads, g.min_blocks_per_sm,
         spec.name, spec.params);
  w.raw(R"(  extern __shared__ __align__(16) float fb_smem[];
  float* const xs = fb_smem;
  float* const st = fb_smem + fbc::STAGE_OFFSET;
  const int c0 = blockIdx.y * fbc::CT;
)");
  if (g.engine == ConvEngine::MmaTf32)
    emit_mma_prologue(w, g);
  else
    emit_fma_prologue(w, g);
  w.raw(R"(  for (long long item = blockIdx.x; item < fbc::N * fbc::TILES; item += gridDim.x) {
    const long long n = item / fbc::TILES;
    const int t = (int)(item % fbc::TILES);
)");
  if (spec.gated) w.line("    if (flags[n] == 0) continue;  // guard passed: the fill path's output stands");
  w.raw(R"(    const fb_tile T = fb_tile_at(t);
)");
  if (g.engine == ConvEngine::MmaTf32)
    emit_mma_tile(w, g);
  else
    emit_fma_tile(w, g);
  w.line("    __syncthreads();  // staging complete");
  for (const auto& s : spec.epilogue) w.line("    {}", s);
  w.line("  }}");
  w.line("}}");
  w.blank();
}

}  // namespace fuseblock::cuda
