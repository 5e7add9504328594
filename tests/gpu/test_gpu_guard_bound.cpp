// The guard's bound computed on the device (fb_guard_bound, the constant fill's first guard step):
// it equals the host's guard_input_bound() converted by guard_bound_as_float(), bit for bit or one
// float ulp below (the device's sums round up and its quotient rounds down; see emit_fill.hpp), on
// random parameters over a wide range of magnitudes and on NaN, Inf, huge biases, affine
// parameters past the bound, zero, tiny and huge weights. The guard kernels read it: an input at
// the bound passes, the next float fails; parameters past the bound fail every sample. A captured
// CUDA graph reads the parameters at each replay (no value is baked in on the host).
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <random>

#include "cuda/executor/executor.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/select/select.hpp"
#include "cuda/strategies/constant_fill/emit_fill.hpp"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"

namespace fbgpu {
namespace {

using R = cuda::BufferRole;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Blocks whose chain folds under the guard: conv3d with bias and affine GroupNorm (81 weights a
// channel, problem 83's; to 0, a memset and fb_guard), the same folding to 1 with a dropout mask
// (fb_fill writes it and checks the guard), conv2d without
// bias and a non-affine norm (40 channels: 5 a warp), one channel of one weight, 576 weights a
// channel (lane loops with tails), and a conv without a norm.
const char* kSpecs[] = {
    "input f32[3, 3, 5, 6, 7]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8\n"
    "minimum 0.0\nclamp min=0.0 max=1.0\n",
    "input f32[3, 3, 5, 6, 7]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8\n"
    "maximum 1.0\nclamp min=0.0 max=1.0\ndropout p=0.2 seed=3\n",
    "input f32[2, 5, 9, 11]\nconv2d out_channels=40 kernel_size=(3, 5) bias=false\n"
    "group_norm num_groups=8 affine=false\nminimum 0.0\nclamp min=0.0 max=1.0\n",
    "input f32[3, 1, 40]\nconv1d out_channels=1 kernel_size=1\ngroup_norm num_groups=1\n"
    "minimum 0.0\nclamp min=0.0 max=1.0\n",
    "input f32[2, 64, 6, 7]\nconv2d out_channels=9 kernel_size=3\ngroup_norm num_groups=3\n"
    "minimum 0.0\nclamp min=0.0 max=1.0\n",
    "input f32[2, 4, 33]\nconv1d out_channels=12 kernel_size=5\nminimum 0.0\nclamp min=0.0 max=1.0\n",
};

uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}

// The host's bound as the guard compares it.
float host_bound(const Plan& plan, const Params& params) {
  return cuda::guard_bound_as_float(guard_input_bound(params, plan.guard->conv_output_bound));
}

// One guarded plan's constant-fill program on this device, run on given parameters and input,
// with the scratch (guard bound, guard flags) read back.
class Rig {
 public:
  explicit Rig(const char* spec)
      : plan_(lower(parse_spec(spec, "guard-bound.block"))),
        ex_(plan_, cuda::default_program(plan_, true, cuda::current_device_limits())) {}

  const Plan& plan() const { return plan_; }
  const cuda::Executor& executor() const { return ex_; }

  struct Result {
    float bound = 0;
    std::vector<int> flags;  // N + 1
    Tensor y;
  };

  Result run(const Params& params, const Tensor& x) const {
    const cuda::LaunchProgram& prog = ex_.program();
    cuda::DeviceBuffer dx = cuda::to_device(x.vec());
    cuda::DeviceBuffer dy(static_cast<size_t>(numel(plan_.pipeline.output_shape)) * 4);
    cuda::DeviceBuffer dw, db, dg, dbeta;
    if (prog.find(R::ConvWeight)) dw = cuda::to_device(params.conv_weight.vec());
    if (prog.find(R::ConvBias)) db = cuda::to_device(params.conv_bias.vec());
    if (prog.find(R::NormWeight)) dg = cuda::to_device(params.norm_weight.vec());
    if (prog.find(R::NormBias)) dbeta = cuda::to_device(params.norm_bias.vec());
    cuda::DeviceBuffer scratch(ex_.scratch_bytes());
    scratch.fill_u32(kPoisonBits);  // a bound or flag left unwritten shows
    dy.fill_u32(kPoisonBits);
    cuda::RunArgs args;
    args.seed = plan_.pipeline.dropout.seed;
    args.offset = plan_.pipeline.dropout.offset;
    ex_.launch(block_tensors(dx, dy, dw, db, dg, dbeta, scratch), args, nullptr);
    cuda::synchronize();
    return read(dy, scratch);
  }

  Result read(const cuda::DeviceBuffer& dy, const cuda::DeviceBuffer& scratch) const {
    Result r;
    scratch.download(&r.bound, 4, *ex_.scratch().offset_of(R::GuardBound));
    r.flags.resize(static_cast<size_t>(plan_.pipeline.input_shape[0] + 1));
    scratch.download(r.flags.data(), r.flags.size() * 4, *ex_.scratch().offset_of(R::GuardFlags));
    r.y = Tensor(plan_.pipeline.output_shape);
    dy.download(r.y.data(), static_cast<size_t>(r.y.numel()) * 4);
    return r;
  }

  static constexpr uint32_t kPoisonBits = 0x7fa5a5a5u;  // a signalling NaN no kernel writes

 private:
  Plan plan_;
  cuda::Executor ex_;
};

// Random parameters, each tensor scaled by 2^e for a random e in its range. exact_sums: weights on
// a grid of 2^(e - 20) and biases on 2^-12, so every double sum (any order) and B - |bias| are exact
// on host and device alike; then the device's float is provably the host's or one ulp below.
Params random_params(const Plan& plan, std::mt19937_64& rng, bool exact_sums) {
  Params p = init_params(plan.fallback, rng());
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto fill = [&](Tensor& t, int lo, int hi, int grid_bits) {
    const int e = std::uniform_int_distribution<int>(lo, hi)(rng);
    for (float& v : t.vec()) {
      float r = u(rng);
      if (grid_bits > 0) r = std::ldexp(std::round(std::ldexp(r, grid_bits)), -grid_bits);
      v = std::ldexp(r, e);
    }
  };
  fill(p.conv_weight, -40, 40, exact_sums ? 20 : 0);
  if (p.conv_bias.numel()) {
    fill(p.conv_bias, -10, 38, 0);
    if (exact_sums)
      for (float& v : p.conv_bias.vec()) v = std::ldexp(std::round(std::ldexp(v, 12)), -12);
  }
  if (p.norm_weight.numel()) fill(p.norm_weight, -5, 38, 0);
  if (p.norm_bias.numel()) fill(p.norm_bias, -5, 38, 0);
  return p;
}

Tensor small_input(const Plan& plan, uint64_t seed) {
  return uniform_tensor(plan.pipeline.input_shape, seed, -1.0f, 1.0f);
}

// Device == host bit for bit (NaN: both NaN), or the device one float below.
void expect_bound(float device, float host, const std::string& where, int* one_below = nullptr) {
  ASSERT_NE(bits_of(device), Rig::kPoisonBits) << where << ": fb_guard_bound wrote nothing";
  if (std::isnan(host)) {
    EXPECT_TRUE(std::isnan(device)) << where << ": device " << device;
    return;
  }
  if (bits_of(device) == bits_of(host)) return;
  EXPECT_EQ(bits_of(device), bits_of(std::nextafter(host, -kInf)))
      << where << ": device " << device << " host " << host << " (" << std::hexfloat << device << " vs " << host << ")";
  if (one_below) ++*one_below;
}

TEST(GpuGuardBound, MatchesTheHostOnRandomParameters) {
  REQUIRE_GPU();
  for (const char* spec : kSpecs) {
    SCOPED_TRACE(spec);
    const Rig rig(spec);
    ASSERT_TRUE(rig.plan().guard.has_value());
    ASSERT_EQ(rig.executor().program().strategy, "constant_fill");
    const Tensor x = small_input(rig.plan(), 5);
    std::mt19937_64 rng(1234);
    int one_below = 0, cases = 0;
    for (bool exact_sums : {true, false})
      for (int i = 0; i < 40; ++i, ++cases) {
        const Params p = random_params(rig.plan(), rng, exact_sums);
        const float host = host_bound(rig.plan(), p);
        expect_bound(
            rig.run(p, x).bound, host,
            "case " + std::to_string(i) + (exact_sums ? " (exact sums)" : "") + " host " + std::to_string(host),
            &one_below);
      }
    // One below happens only when the host's double rounds up onto a float: about 2^-29 a case.
    EXPECT_LE(one_below, 1) << "of " << cases;
  }
}

TEST(GpuGuardBound, SpecialParameters) {
  REQUIRE_GPU();
  for (const char* spec : kSpecs) {
    SCOPED_TRACE(spec);
    const Rig rig(spec);
    const Plan& plan = rig.plan();
    const Tensor x = small_input(plan, 6);
    std::mt19937_64 rng(99);
    const Params base = init_params(plan.fallback, 7);
    const bool bias = base.conv_bias.numel() > 0, affine = base.norm_weight.numel() > 0;
    const int64_t c_out = base.conv_weight.size(0), last = c_out - 1;
    struct Case {
      std::string name;
      std::function<void(Params&)> change;
      std::optional<float> want;  // besides agreeing with the host (NaN: any NaN)
    };
    auto weights = [](float v) {
      return [v](Params& p) {
        for (float& w : p.conv_weight.vec()) w = v;
      };
    };
    std::vector<Case> cases = {
        {"NaN weight", [&](Params& p) { p.conv_weight.data()[p.conv_weight.numel() / 2] = kNaN; }, kNaN},
        {"+Inf weight", [&](Params& p) { p.conv_weight.data()[0] = kInf; }, kNaN},
        {"-Inf last weight", [&](Params& p) { p.conv_weight.data()[p.conv_weight.numel() - 1] = -kInf; }, kNaN},
        {"all-zero weights (and -0)",
         [&](Params& p) {
           weights(0.0f)(p);
           p.conv_weight.data()[0] = -0.0f;
         },
         FLT_MAX},
        {"weights 1e-30: bound past FLT_MAX", weights(1e-30f), FLT_MAX},
        {"denormal weights", weights(1e-44f), FLT_MAX},
        {"weights 1e30: a tiny bound", weights(1e30f), std::nullopt},
        {"weights -3e38", weights(-3e38f), std::nullopt},
        {"one zero channel",
         [&](Params& p) {
           const int64_t k = p.conv_weight.numel() / c_out;
           for (int64_t i = 0; i < k; ++i) p.conv_weight.data()[last * k + i] = 0.0f;
         },
         std::nullopt},
    };
    if (bias) {
      const float below = static_cast<float>(plan.guard->conv_output_bound);  // 999999995904 < 1e12
      ASSERT_LT(static_cast<double>(below), plan.guard->conv_output_bound);
      cases.push_back({"NaN bias", [&](Params& p) { p.conv_bias.data()[last] = kNaN; }, kNaN});
      cases.push_back({"-Inf bias", [&](Params& p) { p.conv_bias.data()[0] = -kInf; }, kNaN});
      cases.push_back({"bias just past B", [&](Params& p) { p.conv_bias.data()[last] = 1.0000001e12f; }, -kInf});
      cases.push_back({"bias -3e38", [&](Params& p) { p.conv_bias.data()[0] = -3e38f; }, -kInf});
      cases.push_back({"bias float(B), just below B: a small bound", [&](Params& p) { p.conv_bias.data()[0] = below; },
                       std::nullopt});
      cases.push_back({"NaN weight and a huge bias: NaN first",
                       [&](Params& p) { p.conv_weight.data()[p.conv_weight.numel() - 1] = kNaN, p.conv_bias.data()[0] = 1e20f; },
                       kNaN});
    }
    if (affine) {
      cases.push_back({"NaN gamma", [&](Params& p) { p.norm_weight.data()[last] = kNaN; }, kNaN});
      cases.push_back({"Inf beta", [&](Params& p) { p.norm_bias.data()[0] = kInf; }, kNaN});
      cases.push_back({"gamma 2e12", [&](Params& p) { p.norm_weight.data()[0] = 2e12f; }, -kInf});
      cases.push_back({"beta -1e13", [&](Params& p) { p.norm_bias.data()[last] = -1e13f; }, -kInf});
      cases.push_back(
          {"gamma and beta at float(B)",
           [&](Params& p) { p.norm_weight.data()[0] = p.norm_bias.data()[last] = static_cast<float>(1e12); },
           std::nullopt});
      cases.push_back({"Inf beta and a huge gamma: NaN first",
                       [&](Params& p) { p.norm_bias.data()[0] = kInf, p.norm_weight.data()[last] = 1e30f; }, kNaN});
    }
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      Params p = base;
      for (float& v : p.conv_weight.vec()) v = std::uniform_real_distribution<float>(-0.3f, 0.3f)(rng);
      c.change(p);
      const float host = host_bound(plan, p);
      const float device = rig.run(p, x).bound;
      if (c.want && std::isnan(*c.want)) {
        EXPECT_TRUE(std::isnan(host) && std::isnan(device)) << "host " << host << " device " << device;
      } else if (c.want) {
        EXPECT_EQ(host, *c.want);
        EXPECT_EQ(device, *c.want);
      }
      expect_bound(device, host, c.name);
    }
  }
}

// The guard kernels compare with the device's bound: an input element at the bound passes, the
// next float up fails; parameters past the bound or not finite fail every sample; each result
// matches the CPU backend (the exact fallback ran for the samples flagged).
TEST(GpuGuardBound, TheGuardReadsIt) {
  REQUIRE_GPU();
  for (const char* spec : {kSpecs[0], kSpecs[1]}) {
    SCOPED_TRACE(spec);
    const Rig rig(spec);
    const Plan& plan = rig.plan();
    const bool mask = spec == kSpecs[1];
    ASSERT_NE(rig.executor().program().find_step(mask ? "fb_fill" : "fb_guard"), nullptr);
    const int64_t n = plan.pipeline.input_shape[0];
    const Params base = init_params(plan.fallback, 11);
    Tensor x = small_input(plan, 12);
    const Rig::Result first = rig.run(base, x);
    expect_bound(first.bound, host_bound(plan, base), "init_params");
    const float b = first.bound;
    ASSERT_TRUE(std::isfinite(b) && b > 1.0f) << b;
    for (int64_t i = 0; i <= n; ++i) EXPECT_EQ(first.flags[static_cast<size_t>(i)], 0) << i;
    const int64_t per = x.numel() / n;
    x.data()[0 * per + 17] = b;                              // sample 0: |x| = bound passes
    x.data()[1 * per + per - 1] = -std::nextafter(b, kInf);  // sample 1: one float past it fails
    x.data()[2 * per + 3] = std::nextafter(b, 0.0f);         // sample 2 passes
    const Rig::Result edge = rig.run(base, x);
    EXPECT_EQ(bits_of(edge.bound), bits_of(b));
    EXPECT_EQ(edge.flags, (std::vector<int>{0, 1, 0, 1}));
    const Agreement a = agree(plan.fallback, edge.y, run_cpu(plan, base, x), 4e-3);
    EXPECT_TRUE(a.ok) << a.message;

    const Tensor clean = small_input(plan, 13);
    const int64_t last = base.conv_bias.numel() - 1;
    for (const char* what : {"bias past B", "gamma past B", "beta past B", "NaN gamma"}) {
      SCOPED_TRACE(what);
      Params p = base;
      const std::string w = what;
      if (w == "bias past B") p.conv_bias.data()[last] = -1.0000001e12f;
      if (w == "gamma past B") p.norm_weight.data()[0] = 3e12f;
      if (w == "beta past B") p.norm_bias.data()[last] = 1e15f;
      if (w == "NaN gamma") p.norm_weight.data()[1] = kNaN;
      const Rig::Result r = rig.run(p, clean);
      if (w == "NaN gamma")
        EXPECT_TRUE(std::isnan(r.bound));
      else
        EXPECT_EQ(r.bound, -kInf);
      for (int64_t i = 0; i <= n; ++i) EXPECT_EQ(r.flags[static_cast<size_t>(i)], 1) << i;
      const Agreement ag = agree(plan.fallback, r.y, run_cpu(plan, p, clean), 4e-3);
      EXPECT_TRUE(ag.ok) << ag.message;
    }
  }
}

// A run captured once reads the parameters at every replay: new weights written into the same
// device memory change the bound (NaN: every sample fails) with no host step in between.
TEST(GpuGuardBound, GraphReplayReadsTheCurrentParameters) {
  REQUIRE_GPU();
  const Rig rig(kSpecs[0]);
  const Plan& plan = rig.plan();
  const Params p1 = init_params(plan.fallback, 21);
  Params p2 = p1;
  for (float& v : p2.conv_weight.vec()) v *= 4.0f;
  Params p3 = p1;
  p3.conv_weight.data()[5] = kNaN;
  const Tensor x = small_input(plan, 22);
  cuda::use_device();
  cuda::DeviceBuffer dx = cuda::to_device(x.vec());
  cuda::DeviceBuffer dy(static_cast<size_t>(numel(plan.pipeline.output_shape)) * 4);
  cuda::DeviceBuffer dw = cuda::to_device(p1.conv_weight.vec()), db = cuda::to_device(p1.conv_bias.vec());
  cuda::DeviceBuffer dg = cuda::to_device(p1.norm_weight.vec()), dbeta = cuda::to_device(p1.norm_bias.vec());
  cuda::DeviceBuffer scratch(rig.executor().scratch_bytes());
  CUstream stream = nullptr;
  FB_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  FB_CU(cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  rig.executor().launch(block_tensors(dx, dy, dw, db, dg, dbeta, scratch), cuda::RunArgs{},
                        stream);
  CUgraph graph = nullptr;
  FB_CU(cuStreamEndCapture(stream, &graph));
  CUgraphExec exec = nullptr;
  FB_CU(cuGraphInstantiateWithFlags(&exec, graph, 0));
  const size_t weight_bytes = static_cast<size_t>(p1.conv_weight.numel()) * 4;
  for (const Params* p : std::vector<const Params*>{&p1, &p2, &p3, &p1}) {
    dw.upload(p->conv_weight.data(), weight_bytes);
    dy.fill_u32(Rig::kPoisonBits);
    scratch.fill_u32(Rig::kPoisonBits);
    cuda::synchronize();
    FB_CU(cuGraphLaunch(exec, stream));
    FB_CU(cuStreamSynchronize(stream));
    const Rig::Result r = rig.read(dy, scratch);
    expect_bound(r.bound, host_bound(plan, *p), "replay");
    const bool nan = p == &p3;
    for (int v : r.flags) EXPECT_EQ(v, nan ? 1 : 0);
    const Agreement a = agree(plan.fallback, r.y, run_cpu(plan, *p, x), 4e-3);
    EXPECT_TRUE(a.ok) << a.message;
  }
  FB_CU(cuGraphExecDestroy(exec));
  FB_CU(cuGraphDestroy(graph));
  FB_CU(cuStreamDestroy(stream));
}

}  // namespace
}  // namespace fbgpu
