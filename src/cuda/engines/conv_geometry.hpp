// How a convolution is cut into block tiles for the CUDA kernels, and how each tile lays out its
// input window and its output ("staging") in shared memory. Chosen on the host from the shapes
// alone (not the device), so emitted source depends only on the plan and the precision mode;
// the launcher fits the grid to the device.
//
// Every conv is handled in 3-D form: a 1-D or 2-D conv has leading spatial sizes of 1. A block
// computes an output tile of td x th x tw positions for ct output channels; its input window
// (xd x xh x xw per input channel) sits in shared memory with padded pitches chosen by counting
// bank conflicts of the engine's loads. The tile's results go to a staging area, laid out so
// that each run of consecutive output elements ("segment") is consecutive there too.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

enum class ConvEngine {
  MmaTf32,  // implicit GEMM on tensor cores (mma.sync m16n8k8 tf32), K = C_in * k^d <= 128
  Fma,      // direct convolution in fp32 FMA: strict fp32, any size
};
const char* engine_name(ConvEngine e);

struct ConvGeometry {
  ConvEngine engine = ConvEngine::Fma;
  // The problem in 3-D form.
  int64_t n = 0, cin = 0, cout = 0;
  std::array<int64_t, 3> in{}, out{}, k{}, s{}, pad{}, dil{};
  bool bias = false;
  int64_t kvol = 0;        // k[0] * k[1] * k[2]
  int64_t kred = 0;        // cin * kvol: the GEMM's reduction length
  // Block tile.
  int threads = 0;
  int64_t td = 0, th = 0, tw = 0;
  int64_t tiles_d = 0, tiles_h = 0, tiles_w = 0, tiles = 0;  // tiles per sample (spatial)
  int ct = 0;              // output channels per block
  int cchunks = 0;         // ceil(cout / ct)
  int cic = 0;             // input channels per shared-memory chunk
  // Two window buffers: the next tile's window is copied (cp.async) while this one computes.
  // Only when the whole window is one chunk (cic == cin).
  bool pipelined = false;
  // Input window in shared memory (floats).
  int64_t xd = 0, xh = 0, xw = 0;
  int64_t xwp = 0, xpp = 0, xcp = 0;  // row, plane and channel pitches
  // Staging (floats): element (c, d, h, w) of the tile at c*cp + d*pp + h*rp + w.
  int64_t rp = 0, pp = 0, cp = 0;
  int seg_level = 0;       // 0: a tile row is a segment; 1: a (c, d) plane; 2: a whole channel
  // MMA engine.
  int warps = 0, mpw = 0, ws = 0, ksteps = 0, ntiles_n = 0;
  // FMA engine: weights chunk [cic][kvol][ct4] in shared memory.
  int ct4 = 0;
  int min_blocks_per_sm = 1;
  int epilogue_unroll = 1;
  int64_t smem_floats = 0;
  int a_conflict_cost = 0;     // wavefronts of one tile's A loads (MMA), for explain and tests
  size_t smem_bytes() const { return static_cast<size_t>(smem_floats) * 4; }
  int64_t out_per_sample() const { return cout * out[0] * out[1] * out[2]; }
  int64_t in_per_sample() const { return cin * in[0] * in[1] * in[2]; }
  std::string describe() const;  // one line, for explain and logs
};

// The conv kernels' knobs (the two-pass recompute strategy's configs; `fuseblock tune` measures
// them). The defaults are what runs untuned.
struct ConvTuning {
  int mma_mpw = 4;          // MMA engine: 16-position m-tiles per warp (4 or 2)
  int min_blocks = 2;       // __launch_bounds__'s blocks per SM for the conv kernels
  int epilogue_unroll = 1;  // 4-element output steps in flight per lane
  // store_once's conv engine: ig_bm == 0 runs cuDNN's conv; otherwise the igemm engine
  // (strategies/store_once/igemm_engine.cuh) with this tile: BM x BN, warp tile WM x WN,
  // __launch_bounds__ blocks per SM.
  int ig_bm = 0, ig_bn = 0, ig_wm = 0, ig_wn = 0, ig_blocks = 0;
  bool operator==(const ConvTuning&) const = default;
};

// The conv in 3-D form, before any tiling: n, cin, cout, in/out/k/s/pad/dil per (d, h, w) with a
// conv1d's and conv2d's missing leading dimensions as size 1, bias, kvol, kred.
ConvGeometry conv_in_3d(const Pipeline& p);

// Chooses the engine (MMA when allow_tf32 and the reduction fits) and the tiling. Throws a
// UserError for a conv the tiling cannot hold (a window too large for shared memory, or a sample
// over 2^31 elements).
ConvGeometry choose_conv_geometry(const Pipeline& p, bool allow_tf32, const ConvTuning& tuning = {});

// Shared-memory wavefronts of one warp's A-fragment loads over all k-steps, for the given
// pitches (the quantity the pitch search minimises).
int mma_a_conflict_cost(const ConvGeometry& g, int64_t xwp, int64_t xpp, int64_t xcp);

}  // namespace fuseblock::cuda
