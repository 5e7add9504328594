// The CPU backend's entry points: the guard's per-sample dispatch, and one pipeline over a range
// of samples as conv -> statistics -> epilogue, a chunk of samples at a time so that the conv
// output is still in cache when it is normalized.
#include "cpu/cpu_backend.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "cpu/conv.hpp"
#include "cpu/epilogue.hpp"
#include "cpu/fill.hpp"
#include "cpu/group_norm.hpp"

namespace fuseblock::cpu {

namespace {

constexpr int64_t kChunkElements = int64_t{1} << 20;  // output elements per chunk (4 MB)
constexpr int64_t kGuardBlock = 4096;                 // elements checked between early exits

int64_t batch(const Shape& s) { return s.empty() ? 0 : s[0]; }

int64_t per_sample(const Shape& s) {
  int64_t n = 1;
  for (size_t d = 1; d < s.size(); ++d) n *= s[d];
  return n;
}

const float* param_data(const Tensor& t, int64_t expect, const char* name) {
  FB_ASSERT(t.numel() == expect, std::string(name) + " has " + std::to_string(t.numel()) + " elements, expected " +
                                     std::to_string(expect) + " (check_params should have caught it)");
  return t.data();
}

// conv(x) + add[:, :, None, ...] for samples [n0, n1) of y, as PyTorch eager adds two tensors of
// the storage type: the sum in float32 (its opmath), rounded once to the storage type.
void add_per_sample_channel(DType storage, const float* add, int64_t channels, int64_t spatial, float* y, int64_t n0,
                            int64_t n1) {
#pragma omp parallel for schedule(static)
  for (int64_t nc = n0 * channels; nc < n1 * channels; ++nc) {
    float* plane = y + nc * spatial;
    const float a = add[nc];
    for (int64_t i = 0; i < spatial; ++i) plane[i] += a;
    round_to(storage, plane, spatial);
  }
}

}  // namespace

bool guard_passes(const float* sample, int64_t count, double bound) {
  if (std::isnan(bound)) return false;
  // The largest float not above min(bound, FLT_MAX): a float compare then also rejects NaN and Inf.
  const double cap = std::min(bound, static_cast<double>(FLT_MAX));
  if (cap < 0) return count == 0;
  float limit = static_cast<float>(cap);
  if (static_cast<double>(limit) > cap) limit = std::nextafter(limit, 0.0f);
  for (int64_t lo = 0; lo < count; lo += kGuardBlock) {
    const int64_t hi = std::min(count, lo + kGuardBlock);
    bool ok = true;
    for (int64_t i = lo; i < hi; ++i) ok &= std::fabs(sample[i]) <= limit;
    if (!ok) return false;
  }
  return true;
}

void run_pipeline(const Pipeline& p, const Params& params, const Tensor& x, Tensor& y, int64_t n_begin,
                  int64_t n_end, const Tensor* channel_add) {
  FB_ASSERT(x.shape() == p.input_shape, "input " + shape_str(x.shape()) + " != " + shape_str(p.input_shape));
  FB_ASSERT(y.shape() == p.output_shape, "output " + shape_str(y.shape()) + " != " + shape_str(p.output_shape));
  FB_ASSERT(0 <= n_begin && n_begin <= n_end && n_end <= batch(p.output_shape), "sample range");
  if (p.fill_path()) {
    fill_samples(p, params, y.data(), n_begin, n_end);
    return;
  }

  const ConvGeometry g = ConvGeometry::from(p.conv, p.input_shape, p.output_shape);
  FB_ASSERT(p.channel_add() == (channel_add != nullptr), "the per-(sample, channel) input is given iff the block has it");
  FB_ASSERT(!channel_add || channel_add->shape() == (Shape{p.output_shape.at(0), g.c_out}),
            "the per-(sample, channel) input is [N, C_out] (run() checks it)");
  const float* weight = param_data(params.conv_weight, g.weight_count(), "conv.weight");
  const float* bias = p.conv.bias ? param_data(params.conv_bias, g.c_out, "conv.bias") : nullptr;
  const float *gamma = nullptr, *beta = nullptr;
  if (p.norm && p.norm->affine) {
    gamma = param_data(params.norm_weight, g.c_out, "norm.weight");
    beta = param_data(params.norm_bias, g.c_out, "norm.bias");
  }
  const int64_t out_sample = g.out_sample();
  const int64_t spatial = g.out[0] * g.out[1] * g.out[2];
  const int64_t chunk = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, out_sample));
  std::vector<float> scale, shift;  // O(chunk * C) scratch
  if (p.norm) {
    scale.resize(static_cast<size_t>(std::min(chunk, n_end - n_begin) * g.c_out));
    shift.resize(scale.size());
  }

  for (int64_t n0 = n_begin; n0 < n_end; n0 += chunk) {
    const int64_t n1 = std::min(n_end, n0 + chunk);
    conv_forward(g, x.data(), weight, bias, y.data(), n0, n1);
    // The conv output as PyTorch stores it: rounded once from the float32 sum (bias included) to
    // the storage type, before the statistics read it.
    round_to(p.types.storage, y.data() + n0 * out_sample, (n1 - n0) * out_sample);
    if (channel_add) add_per_sample_channel(p.types.storage, channel_add->data(), g.c_out, spatial, y.data(), n0, n1);
    if (p.norm)
      group_norm_fold(*p.norm, g.c_out, spatial, n1 - n0, y.data() + n0 * out_sample, gamma, beta, scale.data(),
                      shift.data());
    apply_epilogue(p, params, p.norm ? scale.data() : nullptr, p.norm ? shift.data() : nullptr, y.data(), n0, n1);
  }
}

void run(const Plan& plan, const Params& params, const Tensor& x, Tensor& y, const Tensor* channel_add) {
  const Pipeline& p = plan.pipeline;
  FB_ASSERT(x.shape() == p.input_shape, "input " + shape_str(x.shape()) + " != " + shape_str(p.input_shape));
  FB_ASSERT(y.shape() == p.output_shape, "output " + shape_str(y.shape()) + " != " + shape_str(p.output_shape));
  const int64_t N = batch(p.input_shape);
  if (!plan.guard || plan.assume_finite) {
    run_pipeline(p, params, x, y, 0, N, channel_add);
    return;
  }
  FB_ASSERT(!channel_add, "a block with a per-(sample, channel) input never takes the guarded path (lower)");
  FB_ASSERT(plan.fallback.input_shape == p.input_shape && plan.fallback.output_shape == p.output_shape,
            "fallback pipeline shapes differ from the guarded pipeline's");
  const double bound = guard_input_bound(params, plan.guard->conv_output_bound);
  const int64_t in_sample = per_sample(p.input_shape);
  std::vector<char> passes(static_cast<size_t>(N));
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < N; ++n) passes[static_cast<size_t>(n)] = guard_passes(x.data() + n * in_sample, in_sample, bound);

  // Runs of samples with the same outcome go to one pipeline call each.
  for (int64_t n = 0; n < N;) {
    int64_t m = n;
    while (m < N && passes[static_cast<size_t>(m)] == passes[static_cast<size_t>(n)]) ++m;
    run_pipeline(passes[static_cast<size_t>(n)] ? p : plan.fallback, params, x, y, n, m);
    n = m;
  }
}

}  // namespace fuseblock::cpu
