// store_once's igemm conv engine on the GPU (skips without one; needs no cuDNN except where the
// statistics are compared with the cuDNN-engine program): every tile config that fits each case,
// bf16 and f16, against the CPU backend; conv1d/2d/3d, stride, dilation, asymmetric kernels and
// padding, spatial sizes that are no multiple of the tiles or of 16-byte packs, N = 1 and 3, C_in
// 3 and 5 padded to 8; NaN/Inf injected into x; outputs poisoned (all-ones bits) before the run;
// dropout masks bit for bit (agree()); the weights changed between two runs of one executor (the
// packing runs every call); and the per-(sample, group) statistics merged from the partials
// against those of the cuDNN-engine program.
#include <cmath>
#include <cstring>

#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/executor/storage_io.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/strategies/store_once/emit_igemm.hpp"
#include "cuda/strategies/store_once/store_once_layout.hpp"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"

namespace fbgpu {
namespace {

const cuda::ConvStrategy& store_once() { return *cuda::find_strategy("store_once"); }

// The engine's first tile for the shape (the measured winner first in igemm_configs); not
// store_once's default, which is cuDNN's conv wherever cuDNN loads.
cuda::ConvTuning first_igemm_tile(const cuda::ConvProblem& problem) {
  for (const cuda::ConvTuning& t : store_once().configs(problem))
    if (t.ig_bm > 0) return t;
  return {};
}

struct Result {
  Tensor y;
  int64_t unwritten = 0;
  std::vector<float> partials;  // the StatsPartials scratch: (mean, root of M2) per (sample, channel, chunk)
};

Tensor from_storage(const std::vector<uint8_t>& bytes, const Shape& shape, DType d, int64_t* poisoned) {
  Tensor y(shape);
  *poisoned = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    uint16_t b;
    std::memcpy(&b, bytes.data() + 2 * i, 2);
    *poisoned += b == 0xffffu;
    y.data()[i] = d == DType::BF16 ? bf16_bits_to_float(b) : f16_bits_to_float(b);
  }
  return y;
}

// Runs prog `runs` times on one executor and scratch, params[i] for run i; returns the last run.
Result run_program(const Plan& plan, const cuda::LaunchProgram& prog, const std::vector<Params>& params,
                   const Tensor& x) {
  const DType d = plan.pipeline.types.storage;
  const cuda::Executor ex(plan, prog);
  const size_t out_bytes = static_cast<size_t>(numel(plan.pipeline.output_shape)) * 2;
  cuda::DeviceBuffer dx = cuda::to_device_as(x, d), dy(out_bytes), scratch(ex.scratch_bytes());
  for (const Params& pa : params) {
    cuda::DeviceBuffer dw = cuda::to_device_as(pa.conv_weight, d), db = cuda::to_device_as(pa.conv_bias, d),
                       dg = cuda::to_device_as(pa.norm_weight, d), dbeta = cuda::to_device_as(pa.norm_bias, d);
    dy.fill_u32(0xffffffffu);
    cuda::RunArgs args;
    args.seed = cuda::drawn_dropout(plan.pipeline).seed;  // the one dropout that draws, wherever it stands
    args.offset = cuda::drawn_dropout(plan.pipeline).offset;
    ex.launch(block_tensors(dx, dy, dw, db, dg, dbeta, scratch), args, nullptr);
    cuda::synchronize();
  }
  Result r;
  std::vector<uint8_t> bytes(out_bytes);
  dy.download(bytes.data(), out_bytes);
  r.y = from_storage(bytes, plan.pipeline.output_shape, d, &r.unwritten);
  if (const cuda::Buffer* b = prog.find(cuda::BufferRole::StatsPartials)) {
    r.partials.resize(b->bytes / 4);
    scratch.download(r.partials.data(), b->bytes, *ex.scratch().offset_of(cuda::BufferRole::StatsPartials));
  }
  return r;
}

// Per (sample, group): (mean, biased variance) from a program's partials, Chan's merge in double,
// as fb_so_apply does. chunks per plane and elements per chunk as the program cut them.
std::vector<std::pair<double, double>> group_stats(const Pipeline& p, const std::vector<float>& part, int64_t chunks,
                                                   int64_t chunk) {
  const cuda::StoreOnceLayout l = cuda::store_once_layout(p);
  std::vector<std::pair<double, double>> out;
  for (int64_t ng = 0; ng < l.n * l.groups; ++ng) {
    double n = 0, mean = 0, m2 = 0;
    for (int64_t c = 0; c < l.cpg; ++c)
      for (int64_t k = 0; k < chunks; ++k) {
        const size_t at = static_cast<size_t>(((ng * l.cpg + c) * chunks + k) * 2);
        const double nb = static_cast<double>(std::min(chunk, l.plane - k * chunk));
        const double mb = part[at], m2b = static_cast<double>(part[at + 1]) * part[at + 1];
        const double nn = n + nb, d = mb - mean;
        mean = n == 0 ? mb : mean + d * nb / nn;
        m2 += m2b + d * d * n * nb / nn;
        n = nn;
      }
    out.emplace_back(mean, m2 / n);
  }
  return out;
}

struct Case {
  const char* body;  // after "input <dtype>"
  bool inject_nonfinite;
};

const Case kCases[] = {
    // conv2d, odd spatial size (no 16-byte packs: P = 143), N = 2, C_in 8
    {"[2, 8, 13, 11]\nconv2d 16 3 padding=1\ngroup_norm 4\nsilu\ndropout p=0.2 seed=5 offset=3\n", true},
    // conv1d, C_in 5 padded to 8, stride 2, dilation 2, no padding, no bias, N = 3, G = C
    {"[3, 5, 37]\nconv1d 32 3 stride=2 dilation=2 bias=false\ngroup_norm 32 affine=false\ngelu\n", true},
    // conv3d, C_in 3 padded, N = 2, several M tiles with a partial last one (P = 990)
    {"[2, 3, 9, 10, 11]\nconv3d 16 3 padding=1\ngroup_norm 2\nrelu\ndropout p=0.5 seed=11\n", true},
    // conv3d body, N = 3, planes of whole packs (P = 512) over two 256-row tiles
    {"[3, 32, 8, 8, 8]\nconv3d 32 3 padding=1\ngroup_norm 8\nrelu\ndropout p=0.1 seed=2\n", false},
    // conv2d 64 channels, P = 400 (a partial tile, whole packs), N = 3
    {"[3, 64, 20, 20]\nconv2d 64 3 padding=1\ngroup_norm 32\nsilu\ndropout p=0.1 seed=4\n", false},
    // the SD and VAE channel counts on small planes: the 160- and 128-wide tiles
    {"[2, 320, 12, 12]\nconv2d 320 3 padding=1\ngroup_norm 32 eps=1e-6\nsilu\ndropout p=0.1 seed=9\n", true},
    {"[1, 128, 17, 19]\nconv2d 128 3 padding=1\ngroup_norm 32\nsilu\n", false},
    // asymmetric kernel and padding, stride (2, 1), dilation 2 in H
    {"[2, 16, 21, 17]\nconv2d 32 (3, 5) stride=(2, 1) padding=(2, 2) dilation=(2, 1)\ngroup_norm 8\nmish\n", true},
    // no norm (no partials), a 1x1 conv
    {"[2, 8, 7, 9]\nconv2d 16 1\nminimum 0.5\nclamp min=0 max=0.3\n", true},
};

// Every igemm config of every case (bf16; f16 the default tile alone: the same code paths).
void check(const char* dtype, double rtol) {
  uint64_t seed = 100;
  int ran = 0;
  for (const Case& c : kCases) {
    const std::string spec = std::string("input ") + dtype + c.body;
    const Plan plan = lower(parse_spec(spec, "t.block"));
    const Pipeline& p = plan.pipeline;
    const cuda::ConvProblem problem{&plan, true};
    ASSERT_FALSE(store_once().unsupported(problem, cuda::DeviceLimits{})) << spec;
    std::vector<Params> params = {init_params(p, ++seed), init_params(p, ++seed)};
    Tensor x = uniform_tensor(p.input_shape, ++seed, -2.0f, 2.0f);
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += 0.25f;  // a DC offset: shifted statistics
    if (c.inject_nonfinite) inject_nonfinite_in_first_sample(x);
    x.round_to(p.types.storage);
    const Tensor cpu = run_cpu(plan, params.back(), x);
    for (const cuda::ConvTuning& t : store_once().configs(problem)) {
      if (t.ig_bm == 0) continue;
      if (std::string(dtype) == "f16" && !(t == first_igemm_tile(problem))) continue;
      const cuda::LaunchProgram prog = store_once().build(problem, t);
      const std::string where = std::string(dtype) + " [" + prog.config + "]\n" + spec;
      // Two runs of one executor with different weights: the second must see its own.
      const Result r = run_program(plan, prog, params, x);
      ++ran;
      EXPECT_EQ(r.unwritten, 0) << where;
      const Agreement a = agree(p, r.y, cpu, rtol);
      EXPECT_TRUE(a.ok) << where << a.message;
      if (::testing::Test::HasFailure()) return;
    }
  }
  EXPECT_GE(ran, 9);
}

// bf16/f16 tolerances as GpuStoreOnce's (one storage ulp of conv difference moves later roundings).
TEST(GpuIgemm, Bf16EveryTileAgreesWithTheCpu) {
  REQUIRE_GPU();
  check("bf16", 3e-2);
}

TEST(GpuIgemm, F16DefaultTileAgreesWithTheCpu) {
  REQUIRE_GPU();
  check("f16", 2e-2);
}

// The statistics fb_so_apply normalizes with: merged from the igemm conv's per-tile partials and
// from the cuDNN program's fb_so_stats chunks, per (sample, group), within the half-precision
// conv's difference (a storage ulp per value at most); NaN in the same groups.
TEST(GpuIgemm, StatisticsAgreeWithTheCudnnEngineProgram) {
  REQUIRE_GPU();
  if (auto why = cuda::cudnn_unavailable()) GTEST_SKIP() << "no cuDNN: " << *why;
  uint64_t seed = 7;
  for (const char* dtype : {"bf16", "f16"})
    for (const Case& c : kCases) {
      const std::string spec = std::string("input ") + dtype + c.body;
      const Plan plan = lower(parse_spec(spec, "t.block"));
      const Pipeline& p = plan.pipeline;
      if (!p.norm) continue;
      const cuda::ConvProblem problem{&plan, true};
      const std::vector<Params> params = {init_params(p, ++seed)};
      Tensor x = uniform_tensor(p.input_shape, ++seed, -2.0f, 2.0f);
      for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += 0.25f;
      if (c.inject_nonfinite) x.data()[3] = NAN;
      x.round_to(p.types.storage);
      const cuda::ConvTuning ig = first_igemm_tile(problem);
      ASSERT_GT(ig.ig_bm, 0) << spec;
      const Result a = run_program(plan, store_once().build(problem, ig), params, x);
      const Result b = run_program(plan, store_once().build(problem, cuda::ConvTuning{}), params, x);
      const cuda::StoreOnceLayout l = cuda::store_once_layout(p);
      const auto sa = group_stats(p, a.partials, cuda::igemm_shape(p, ig).tiles, ig.ig_bm);
      const auto sb = group_stats(p, b.partials, l.chunks, l.chunk);
      ASSERT_EQ(sa.size(), sb.size());
      const double tol = std::string(dtype) == "bf16" ? 1e-2 : 2e-3;
      for (size_t i = 0; i < sa.size(); ++i) {
        const std::string where = std::string(dtype) + " group " + std::to_string(i) + "\n" + spec;
        EXPECT_EQ(std::isfinite(sa[i].first) && std::isfinite(sa[i].second),
                  std::isfinite(sb[i].first) && std::isfinite(sb[i].second))
            << where;
        if (!std::isfinite(sb[i].first) || !std::isfinite(sb[i].second)) continue;
        const double sd = std::sqrt(sb[i].second);
        EXPECT_LE(std::fabs(sa[i].first - sb[i].first), tol * (std::fabs(sb[i].first) + sd))
            << where << " mean " << sa[i].first << " vs " << sb[i].first;
        EXPECT_LE(std::fabs(sa[i].second - sb[i].second), 2 * tol * sb[i].second)
            << where << " var " << sa[i].second << " vs " << sb[i].second;
      }
      if (::testing::Test::HasFailure()) return;
    }
}

// The default run of a bf16 block takes cuDNN's conv (measured faster on the realworld shapes,
// store_once.cpp); the engine's tiles come after it in configs(), for tune.
TEST(GpuIgemm, DefaultRunOfABf16BlockUsesCudnnAndTheTilesFollow) {
  REQUIRE_GPU();
  const Plan plan = lower(parse_spec(std::string("input bf16") + kCases[4].body, "t.block"));
  const std::vector<cuda::ConvTuning> configs = store_once().configs({&plan, true});
  ASSERT_GE(configs.size(), 2u);
  EXPECT_EQ(configs.front().ig_bm, 0);
  EXPECT_GT(configs[1].ig_bm, 0);
  const Params params = init_params(plan.pipeline, 3);
  Tensor x = uniform_tensor(plan.pipeline.input_shape, 4, -2.0f, 2.0f);
  x.round_to(DType::BF16);
  RunOptions opts;
  opts.device = Device::Cuda;
  const Tensor gpu = run(plan, params, x, opts);
  EXPECT_EQ(gpu.dtype(), DType::BF16);
  const Agreement a = agree(plan.pipeline, gpu, run_cpu(plan, params, x), 3e-2);
  EXPECT_TRUE(a.ok) << a.message;
}

}  // namespace
}  // namespace fbgpu
