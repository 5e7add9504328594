// The store-once kernels (emit_store_once.hpp).
#include "cuda/strategies/store_once/emit_store_once.hpp"

#include "cuda/codegen/emit_common.hpp"
#include "cuda/codegen/emit_epilogue.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

// Block-wide sum and max of 256 threads, warps combined by thread 0 in warp order: the result
// does not depend on timing. Every thread gets it.
const char* kBlockReduce = R"(__device__ __forceinline__ float fb_so_block_reduce(float v, bool is_max) {
  __shared__ float s_warp[8];
  __shared__ float s_all;
  v = is_max ? fb_warp_max(v) : fb_warp_sum(v);
  if ((threadIdx.x & 31) == 0) s_warp[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = s_warp[0];
    for (int k = 1; k < 8; ++k) r = is_max ? fmaxf(r, s_warp[k]) : r + s_warp[k];
    s_all = r;
  }
  __syncthreads();
  const float r = s_all;
  __syncthreads();  // s_all and s_warp are reused by the next call
  return r;
}

// f(value) for each element of a chunk of the stored conv output, in this thread's share: 16-byte
// packs where planes are whole packs, else elements.
template <class F>
__device__ __forceinline__ void fb_so_for_chunk(const fb_st* __restrict__ src, long long count, F f) {
  if (fbs::VEC) {
    const uint4* p = reinterpret_cast<const uint4*>(src);
    for (long long j = threadIdx.x; j < count / fbs::PACK; j += 256) {
      fb_pack pk;
      pk.u = p[j];
#pragma unroll
      for (int e = 0; e < fbs::PACK; ++e) f(pk.e[e]);
    }
  } else {
    for (long long j = threadIdx.x; j < count; j += 256) f(src[j]);
  }
}

// The conv output as eager holds it before the norm: the stored conv (already rounded), plus the
// bias as a separate op, rounded again, plus the per-(sample, channel) input (temb[:, :, None,
// None]) as eager's next add, rounded again (the CPU backend's add_per_sample_channel).
__device__ __forceinline__ float fb_so_conv_value(fb_st raw, float bias, float add) {
  const float v = fbs::HAS_BIAS ? fb_round(fb_ld(raw) + bias) : fb_ld(raw);
  return fbs::HAS_ADD ? fb_round(v + add) : v;
}
)";

const char* kStats = R"(
extern "C" __global__ void __launch_bounds__(256) fb_so_stats(const fb_st* __restrict__ conv,
    const fb_st* __restrict__ bias, const fb_st* __restrict__ channel_add, float2* __restrict__ partials) {
  const long long plane = blockIdx.x / fbs::K;
  const long long begin = (long long)(blockIdx.x % fbs::K) * fbs::L;
  const long long count = min(fbs::L, fbs::S - begin);
  const fb_st* src = conv + plane * fbs::S + begin;
  const float b = fbs::HAS_BIAS ? fb_ld(bias[plane % fbs::C]) : 0.0f;
  const float add = fbs::HAS_ADD ? fb_ld(channel_add[plane]) : 0.0f;  // [N, C]: one value per plane
  const float inv_count = 1.0f / (float)count;
  float s = 0.0f, max_abs = 0.0f;
  fb_so_for_chunk(src, count, [&](fb_st raw) {
    const float v = fb_so_conv_value(raw, b, add);
    s = fmaf(v, inv_count, s);  // the mean as a sum of v / count: no partial sum passes max |v|
    max_abs = fmaxf(max_abs, fabsf(v));
  });
  const float mean = fb_so_block_reduce(s, false);
  const float scale = fb_stats_scale(fb_so_block_reduce(max_abs, true)), shift = -mean * scale;
  float m2 = 0.0f;
  fb_so_for_chunk(src, count, [&](fb_st raw) {  // the chunk again, from L1/L2
    const float d = fmaf(fb_so_conv_value(raw, b, add), scale, shift);  // scale * (v - mean)
    m2 = fmaf(d, d, m2);
  });
  m2 = fb_so_block_reduce(m2, false);
  if (threadIdx.x == 0) partials[blockIdx.x] = make_float2(mean, sqrtf(m2) / scale);
}
)";

// The group's (count, mean, M2) from its channels' chunk partials: each thread merges a strided
// share, then lanes and warps merge in a fixed order. Chan's merge in double (fb_chan_merge).
const char* kMerge = R"(
__device__ void fb_so_group_stats(const float2* __restrict__ partials, long long first_plane, double* mean_out,
                                  double* rstd_out) {
  double cnt = 0.0, mean = 0.0, m2 = 0.0;
  for (int i = threadIdx.x; i < fbs::CPG * fbs::K; i += 256) {
    const int k = i % fbs::K;
    const float2 p = partials[(first_plane + i / fbs::K) * fbs::K + k];  // (mean, root of M2)
    const double count = (double)min(fbs::L, fbs::S - (long long)k * fbs::L);
    fb_chan_merge(cnt, mean, m2, count, (double)p.x, (double)p.y * (double)p.y);
  }
  for (int o = 1; o < 32; o <<= 1) {
    const double nb = __shfl_down_sync(0xffffffffu, cnt, o), mb = __shfl_down_sync(0xffffffffu, mean, o),
                 m2b = __shfl_down_sync(0xffffffffu, m2, o);
    if ((threadIdx.x & (2 * o - 1)) == 0) fb_chan_merge(cnt, mean, m2, nb, mb, m2b);
  }
  __shared__ double s_stats[8][3];
  if ((threadIdx.x & 31) == 0) {
    s_stats[threadIdx.x >> 5][0] = cnt;
    s_stats[threadIdx.x >> 5][1] = mean;
    s_stats[threadIdx.x >> 5][2] = m2;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < 8; ++k) fb_chan_merge(cnt, mean, m2, s_stats[k][0], s_stats[k][1], s_stats[k][2]);
    const double var = m2 * __drcp_rn(cnt);  // biased, as GroupNorm
    // A NaN or Inf in the group makes the whole group NaN, as the CPU backend and PyTorch.
    const bool finite = isfinite(mean) && isfinite(var);
    *mean_out = finite ? mean : __longlong_as_double(0x7ff8000000000000ll);
    *rstd_out = finite ? fb_rstd(var + fbs::EPS) : __longlong_as_double(0x7ff8000000000000ll);
  }
}
)";

}  // namespace

void emit_store_once_kernels(SourceWriter& w, const Pipeline& p, const StoreOnceLayout& l, bool stats_kernel) {
  const bool norm = p.norm.has_value();
  const bool affine = norm && p.norm->affine;
  w.line("namespace fbs {{");
  w.line("constexpr long long S = {};  // elements per (sample, channel) plane", l.plane);
  w.line("constexpr int C = {}, G = {}, CPG = {};  // channels, groups, channels per group", l.channels, l.groups,
         l.cpg);
  w.line("constexpr int K = {};  // statistics chunks per plane", l.chunks);
  w.line("constexpr long long L = {};  // elements per chunk", l.chunk);
  w.line("constexpr int B = {};  // apply blocks per (sample, group)", l.apply_blocks);
  w.line("constexpr long long UPB = {};  // apply units per block", l.units_per_block);
  w.line("constexpr bool VEC = {};  // planes are whole 16-byte packs", l.vec ? "true" : "false");
  w.line("constexpr int PACK = {};  // storage elements per 16-byte pack", l.pack);
  w.line("constexpr bool HAS_BIAS = {}, HAS_ADD = {}, AFFINE = {};  // HAS_ADD: the per-(sample, channel) input",
         p.conv.bias ? "true" : "false", p.channel_add() ? "true" : "false", affine ? "true" : "false");
  w.line("constexpr double EPS = {};", double_literal(norm ? p.norm->eps : 0.0));
  w.line("}}  // namespace fbs");
  w.line("union fb_pack {{ uint4 u; fb_st e[fbs::PACK]; }};");
  w.blank();
  w.raw(kBlockReduce);
  if (norm) {
    if (stats_kernel) w.raw(kStats);
    w.raw(kMerge);
  }
  w.blank();
  // One element after the stored conv: conv + bias as eager rounds it, then the normalization
  // (folded per (sample, channel), as the CPU backend folds it), before its rounding.
  w.open("__device__ __forceinline__ float fb_so_norm(fb_st raw, float bias, float add, float a, float b)");
  w.line("const float r = fb_so_conv_value(raw, bias, add);");
  w.line("return {};", norm ? "a * r + b" : "r");
  w.close();
  w.blank();
  emit_epilogue_fn(w, p);
  w.blank();
  // The norm parameters in their own type: the storage type, or float32 where the block keeps its
  // norm in float32 (ElementTypes::norm_params), read as they are.
  const bool f32_norm_params = p.types.norm_params == DType::F32 && p.types.storage != DType::F32;
  const char* np_type = f32_norm_params ? "float" : "fb_st";
  const char* np_load = f32_norm_params ? "" : "fb_ld";
  w.line("extern \"C\" __global__ void __launch_bounds__(256) fb_so_apply(const fb_st* __restrict__ conv,");
  w.line("    const fb_st* __restrict__ bias, const float2* __restrict__ partials, const {}* __restrict__ gamma,",
         np_type);
  w.line("    const {}* __restrict__ beta, const fb_st* __restrict__ channel_add, fb_st* __restrict__ y,", np_type);
  w.line("    const unsigned long long* __restrict__ dropout_state{}) {{", epilogue_params(p));
  w.line("  const long long ng = blockIdx.x / fbs::B;  // (sample, group)");
  w.line("  const long long first_plane = ng * fbs::CPG;  // the group's first (sample, channel)");
  w.line("  const long long g0 = first_plane * fbs::S, gl = (long long)fbs::CPG * fbs::S;  // its flat elements");
  w.line("  __shared__ float s_a[fbs::CPG], s_b[fbs::CPG], s_bias[fbs::CPG], s_add[fbs::CPG];");
  if (norm) {
    w.line("  __shared__ double s_mean, s_rstd;");
    w.line("  fb_so_group_stats(partials, first_plane, &s_mean, &s_rstd);");
    w.line("  __syncthreads();");
  }
  w.line("  for (int c = threadIdx.x; c < fbs::CPG; c += 256) {{");
  w.line("    const int ch = (int)((first_plane + c) % fbs::C);");
  w.line("    s_bias[c] = fbs::HAS_BIAS ? fb_ld(bias[ch]) : 0.0f;");
  w.line("    s_add[c] = fbs::HAS_ADD ? fb_ld(channel_add[first_plane + c]) : 0.0f;");
  if (norm) {
    w.line("    // Folded as the CPU backend folds them (src/cpu/group_norm.cpp): a = rstd gamma, b = beta - mean a.");
    w.line("    const double a = s_rstd * (fbs::AFFINE ? (double){}(gamma[ch]) : 1.0);", np_load);
    w.line("    s_a[c] = (float)a;");
    w.line("    s_b[c] = (float)((fbs::AFFINE ? (double){}(beta[ch]) : 0.0) - s_mean * a);", np_load);
  } else {
    w.line("    s_a[c] = 1.0f, s_b[c] = 0.0f;");
  }
  w.line("  }}");
  w.line("  __syncthreads();");
  if (active_dropout(p)) w.line("  {}", epilogue_random_state(p));
  // Units: packs of the group (VEC), else the 4-element quads of the flat output overlapping it.
  w.line("  const long long u_first = fbs::VEC ? g0 / fbs::PACK : g0 >> 2;");
  w.line("  const long long units = fbs::VEC ? gl / fbs::PACK : ((g0 + gl - 1) >> 2) - (g0 >> 2) + 1;");
  w.line("  const long long u_end = min(units, (long long)(blockIdx.x % fbs::B + 1) * fbs::UPB);");
  w.line("  constexpr int UE = fbs::VEC ? fbs::PACK : 4;  // elements per unit");
  w.line("  for (long long u = (long long)(blockIdx.x % fbs::B) * fbs::UPB + threadIdx.x; u < u_end; u += 256) {{");
  w.line("    const long long i0 = (u_first + u) * UE;  // the unit's first flat index");
  w.line("    fb_pack in, out;");
  w.line("    if (fbs::VEC) in.u = reinterpret_cast<const uint4*>(conv)[u_first + u];");
  w.line("#pragma unroll");
  w.line("    for (int q = 0; q < UE / 4; ++q) {{");
  if (active_dropout(p)) w.line("      {}", epilogue_draws_decl(p, "(i0 >> 2) + q"));
  w.line("#pragma unroll");
  w.line("      for (int k = 0; k < 4; ++k) {{");
  w.line("        const int e = 4 * q + k;");
  w.line("        const long long i = i0 + e;");
  w.line("        if (!fbs::VEC && (i < g0 || i >= g0 + gl)) continue;  // a neighbouring group's element");
  w.line("        const int c = (int)((i - g0) / fbs::S);");
  w.line("        const float v = fb_so_norm(fbs::VEC ? in.e[e] : conv[i], s_bias[c], s_add[c], s_a[c], s_b[c]);");
  w.line("        const fb_st o = {};",
         epilogue_call(p, "v", "(int)((first_plane + c) % fbs::C)", epilogue_draw(p, "k")));
  w.line("        if (fbs::VEC) out.e[e] = o; else y[i] = o;");
  w.line("      }}");
  w.line("    }}");
  w.line("    if (fbs::VEC) reinterpret_cast<uint4*>(y)[u_first + u] = out.u;");
  w.line("  }}");
  w.line("}}");
  w.blank();
}

}  // namespace fuseblock::cuda
