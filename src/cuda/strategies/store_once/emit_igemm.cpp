// store_once's igemm engine: tiles, limits and the emitter (emit_igemm.hpp).
#include "cuda/strategies/store_once/emit_igemm.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "device_common/embedded.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

struct Tile {
  int bm, bn, wm, wn, blocks;
};

// dev/igemm/igemm_v1.cu's tiles (its README has their registers and times on the H200), the
// measured winner of each N first: 256x160 for C_out 320, 128x128 for 128, 256x64 for 64,
// 256x32 with 4 warps for 32, 256x16 for 16. Listed per N, largest N first.
constexpr Tile kTiles[] = {
    {256, 160, 64, 80, 1}, {128, 160, 32, 80, 1}, {128, 128, 64, 32, 2}, {256, 128, 64, 64, 1}, {256, 64, 64, 32, 2},
    {128, 64, 32, 32, 2},  {256, 32, 64, 32, 3},  {256, 32, 32, 32, 2},  {256, 16, 64, 16, 3},  {128, 16, 32, 16, 4},
};

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

}  // namespace

std::optional<std::string> igemm_unsupported(const Pipeline& p) {
  const DType st = p.types.storage;
  if (st != DType::BF16 && st != DType::F16)
    return std::string("igemm: bf16/f16 storage only (fp32 runs cuDNN's conv or the recompute strategies)");
  const ConvGeometry d = conv_in_3d(p);
  const int64_t taps = d.k[0] * d.k[1] * d.k[2];
  if (taps > 32) return fmt::format("igemm: {} kernel taps; a row's tap mask holds 32", taps);
  const int64_t cout = p.output_shape[1];
  if (cout % 16 != 0) return fmt::format("igemm: C_out {} is not a multiple of 16 (the narrowest tile's N)", cout);
  // Offsets inside one sample are 32-bit: the padded input box in channels-last, and the output.
  const int64_t cin = round_up(p.input_shape[1], 8);
  int64_t box = cin;
  for (size_t i = 0; i < 3; ++i) box *= d.in[i] + 2 * d.pad[i] + d.dil[i] * (d.k[i] - 1) + d.s[i];
  int64_t out = cout;
  for (size_t i = 0; i < 3; ++i) out *= d.out[i];
  if (box >= (int64_t{1} << 31) || out >= (int64_t{1} << 31))
    return std::string("igemm: a sample of 2^31 elements or more (its offsets are 32-bit)");
  if (p.input_shape[0] * cin * d.in[0] * d.in[1] * d.in[2] >= (int64_t{1} << 31))
    return std::string("igemm: a channels-last input of 2^31 elements or more");
  return std::nullopt;
}

std::vector<ConvTuning> igemm_configs(const Pipeline& p) {
  std::vector<ConvTuning> out;
  if (!p.computes_conv || igemm_unsupported(p)) return out;
  const int64_t cout = p.output_shape[1];
  for (const Tile& t : kTiles) {
    if (cout % t.bn != 0) continue;
    ConvTuning c;
    c.ig_bm = t.bm, c.ig_bn = t.bn, c.ig_wm = t.wm, c.ig_wn = t.wn, c.ig_blocks = t.blocks;
    out.push_back(c);
  }
  return out;
}

IgemmShape igemm_shape(const Pipeline& p, const ConvTuning& t) {
  FB_ASSERT(t.ig_bm > 0, "igemm_shape without an igemm tile");
  const ConvGeometry d = conv_in_3d(p);
  IgemmShape s;
  s.n = p.input_shape[0];
  s.cin_real = p.input_shape[1];
  s.cin = round_up(s.cin_real, 8);
  s.cout = p.output_shape[1];
  s.taps = d.k[0] * d.k[1] * d.k[2];
  s.k = s.taps * s.cin;
  s.kp = round_up(s.k, 32);
  s.pin = d.in[0] * d.in[1] * d.in[2];
  s.p = d.out[0] * d.out[1] * d.out[2];
  s.tiles = (s.p + t.ig_bm - 1) / t.ig_bm;
  s.conv_blocks = s.n * s.tiles * (s.cout / t.ig_bn);
  const int warps_m = t.ig_bm / t.ig_wm, warps = warps_m * (t.ig_bn / t.ig_wn);
  s.threads = warps * 32;
  const size_t pipe = static_cast<size_t>(kIgemmStages) * static_cast<size_t>(t.ig_bm + t.ig_bn) * 64;
  const size_t staged = static_cast<size_t>(t.ig_bn) * static_cast<size_t>(t.ig_bm + 8) * 2;
  s.smem = std::max(pipe, staged) + static_cast<size_t>(2 * warps_m + 2) * static_cast<size_t>(t.ig_bn) * 4;
  return s;
}

void emit_igemm_kernels(SourceWriter& w, const Pipeline& p, const ConvTuning& t) {
  FB_ASSERT(!igemm_unsupported(p), "the igemm engine does not apply to this pipeline");
  const IgemmShape s = igemm_shape(p, t);
  FB_ASSERT(s.cout % t.ig_bn == 0, "igemm tile N does not divide C_out");
  const ConvGeometry d = conv_in_3d(p);
  w.line("namespace fbi {{");
  w.line("constexpr int N = {};  // samples", s.n);
  w.line("constexpr int D = {}, H = {}, W = {};  // input", d.in[0], d.in[1], d.in[2]);
  w.line("constexpr int OD = {}, OH = {}, OW = {};  // output", d.out[0], d.out[1], d.out[2]);
  w.line("constexpr int KD = {}, KH = {}, KW = {};  // kernel", d.k[0], d.k[1], d.k[2]);
  w.line("constexpr int SD = {}, SH = {}, SW = {};  // stride", d.s[0], d.s[1], d.s[2]);
  w.line("constexpr int PD = {}, PH = {}, PW = {};  // padding", d.pad[0], d.pad[1], d.pad[2]);
  w.line("constexpr int DD = {}, DH = {}, DW = {};  // dilation", d.dil[0], d.dil[1], d.dil[2]);
  w.line("constexpr int CIN_REAL = {}, CIN = {}, COUT = {};  // CIN: padded to 8", s.cin_real, s.cin, s.cout);
  w.line("constexpr int K = {}, KP = {};  // taps * CIN, padded to 32", s.k, s.kp);
  w.line("constexpr int PIN = {}, P = {}, TILES = {};  // input, output pixels per sample; M tiles", s.pin, s.p,
         s.tiles);
  w.line("constexpr int BM = {}, BN = {}, WM = {}, WN = {}, STAGES = {}, MIN_BLOCKS = {};", t.ig_bm, t.ig_bn, t.ig_wm,
         t.ig_wn, kIgemmStages, t.ig_blocks);
  w.line("constexpr int SMEM_HOST = {}, THREADS_HOST = {};  // as the host launches it", s.smem, s.threads);
  w.line("constexpr bool HAS_BIAS = {}, HAS_ADD = {}, STATS = {}, VEC_OUT = {};  // VEC_OUT: planes of whole 16-byte "
         "chunks",
         p.conv.bias ? "true" : "false", p.channel_add() ? "true" : "false", p.norm ? "true" : "false",
         s.p % 8 == 0 ? "true" : "false");
  w.line("}}  // namespace fbi");
  w.line("#define FBI_MMA_T \"{}\"", p.types.storage == DType::BF16 ? "bf16" : "f16");
  const char* text = embedded_source("igemm_engine.cuh");
  FB_ASSERT(text != nullptr, "embedded source missing: igemm_engine.cuh");
  w.line("// ---- igemm_engine.cuh ----");
  w.raw(text);
  w.blank();
  w.line("extern \"C\" __global__ void __launch_bounds__({}, {}) fb_ig_conv(const fb_st* __restrict__ x,", s.threads,
         t.ig_blocks);
  w.line("    const fb_st* __restrict__ w, const fb_st* __restrict__ bias, const fb_st* __restrict__ channel_add,");
  w.line("    fb_st* __restrict__ y,");
  if (p.norm) {
    w.line("    float2* __restrict__ partials) {{");
    w.line("  fbi_conv(x, w, bias, channel_add, y, partials);");
  } else {
    w.line("    const float2* __restrict__ partials) {{  // no GroupNorm: no partials (null)");
    w.line("  fbi_conv(x, w, bias, channel_add, y, nullptr);");
  }
  w.line("}}");
  w.blank();
}

}  // namespace fuseblock::cuda
