// Emits the lean general path: the geometry constants and window helpers (emit_conv_tile.cpp),
// fb_k_offset (emit_conv_mma.cpp), the shared epilogue (emit_epilogue.hpp), the constants the
// kernels' text expects (namespace fbl), then lean_kernels.cuh (this folder) as embedded at build
// time.
#include "cuda/strategies/recompute_sample_runs/emit_lean.hpp"

#include <algorithm>

#include "cuda/codegen/emit_common.hpp"
#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/engines/emit_conv.hpp"
#include "device_common/embedded.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

int64_t junk_floats(const ConvGeometry& g) { return 32 * g.warps; }  // lean_kernels.cuh's JUNK_FLOATS
int64_t b_table_floats(const ConvGeometry& g) { return g.ksteps * g.ntiles_n * 32 * 2; }  // the B table
int64_t window_floats(const ConvGeometry& g) { return g.cin * g.xcp; }  // one window buffer
int64_t ao_floats(const ConvGeometry& g) { return g.ksteps * 8; }

// This path runs only with TF32 allowed, where the conv's inputs are rounded to 10 mantissa bits
// (relative error up to 2^-11, scaled by mean / std after GroupNorm). SiLU and sigmoid there use
// the hardware exp2 and a reciprocal multiply: __expf is within 2 + 1.16 |x| ulp (about 1e-5
// relative near |x| = 88), and __fdividef gives 0 where 1 + exp(-x) lies in (2^126, 2^128), i.e.
// silu(x) = -0 instead of about -1e-36 for x in (-88.7, -87.3); NaN and +-Inf as the exact
// formula. Measured on an H100: 0.07 ms of the 0.64 ms run (dev v7e).
const char* kTf32Math = R"(// SiLU and sigmoid on the TF32 path: __expf and __fdividef (NaN, +-Inf as x / (1 + exp(-x))).
__device__ __forceinline__ float fbl_silu_tf32(float x) { return __fdividef(x, 1.0f + __expf(-x)); }
__device__ __forceinline__ float fbl_sigmoid_tf32(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }
)";

}  // namespace

bool lean_path_applies(const ConvGeometry& g, const Pipeline& p, bool gated) {
  // Prelu's slopes would be kernel parameters, which lean_kernels.cuh's fixed signatures lack.
  if (gated || !p.norm || g.engine != ConvEngine::MmaTf32 || !g.pipelined || prelu_count(p) > 0) return false;
  for (int i = 0; i < 3; ++i)
    if (g.s[i] != 1 || g.pad[i] != 0 || g.dil[i] != 1) return false;
  const int64_t ow = g.out[2], iw = g.in[2];
  return g.tiles_w == 1 && g.tw >= ow && g.xw >= iw && iw % 4 == 0 && g.threads % (iw / 4) == 0 &&
         g.td * g.tiles_d == g.out[0] && g.mpw == g.ws && g.warps == g.td * g.th && g.ct == g.cout &&
         g.cout == 16 && g.ntiles_n == 2 && (g.out[1] * ow) % 4 == 0 && (g.th * ow) % 4 == 0 && g.xwp % 4 == 0 &&
         g.xpp % 4 == 0 && g.xcp % 4 == 0;
}

int64_t lean_staging_pitch(const ConvGeometry& g) {
  int64_t s = (g.td * g.th * g.out[2] + 3) / 4 * 4;
  while ((2 * s) % 32 != 8) s += 4;
  return s;
}

size_t lean_stats_smem_bytes(const ConvGeometry& g) {
  return static_cast<size_t>(2 * window_floats(g) + ao_floats(g) + b_table_floats(g)) * 4;  // double-buffered
}

size_t lean_output_smem_bytes(const ConvGeometry& g) {
  return static_cast<size_t>(window_floats(g) + g.cout * lean_staging_pitch(g) + junk_floats(g) + ao_floats(g) +
                             b_table_floats(g)) * 4;  // one window buffer
}

int64_t lean_max_blocks_per_sample(const ConvGeometry& g) {
  const int64_t for_2048 = (2048 + std::max<int64_t>(g.n, 1) - 1) / std::max<int64_t>(g.n, 1);
  return std::min<int64_t>(g.tiles, std::max<int64_t>(8, for_2048));
}

size_t lean_partials_bytes(const ConvGeometry& g) {
  return static_cast<size_t>(g.n * lean_max_blocks_per_sample(g) * g.warps * g.cout) * 16;
}

void emit_lean_kernels(SourceWriter& w, const Pipeline& p, const ConvGeometry& g, GeneralKernelNames* names) {
  FB_ASSERT(lean_path_applies(g, p, false), "the lean kernels do not apply to this geometry");
  emit_conv_tile_code(w, g);
  emit_mma_helpers(w);
  w.blank();
  w.raw(kTf32Math);
  emit_epilogue_fn(w, p, EpilogueOptions{/*tf32_math=*/true});
  w.line("namespace fbl {{  // the constants lean_kernels.cuh expects");
  w.line("constexpr bool DROPOUT = {};", active_dropout(p) ? "true" : "false");
  w.line("constexpr int GROUPS = {};", p.norm->num_groups);
  w.line("constexpr double EPS = {};", double_literal(p.norm->eps));
  w.line("constexpr bool AFFINE = {};", p.norm->affine ? "true" : "false");
  w.line("constexpr int SCP = {};  // staging channel pitch", lean_staging_pitch(g));
  w.line("}}  // namespace fbl");
  const char* text = embedded_source("lean_kernels.cuh");
  FB_ASSERT(text != nullptr, "embedded source missing: lean_kernels.cuh");
  w.line("// ---- lean_kernels.cuh ----");
  w.raw(text);
  if (names) {
    names->stats = "fbl_conv_stats";
    names->finalize = "fbl_finalize";
    names->output = "fbl_conv_output";
  }
}

}  // namespace fuseblock::cuda
