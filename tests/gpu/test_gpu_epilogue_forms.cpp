// store_once's prelu and per-(sample, channel) add on the GPU against the CPU backend, with
// cuDNN's conv and with every igemm tile that applies (bf16/f16), in f32 (TF32 and strict), bf16
// and f16: prelu with one slope and per-channel slopes (random, one NaN slope), the add with
// random per-(n, c) values holding NaN, Inf and -Inf (a non-finite add makes its group NaN, as
// eager's GroupNorm does), before a GroupNorm, an InstanceNorm or no norm; NaN and Inf injected
// in the input; the output poisoned (measure::DeviceRun: an element never written fails); dropout
// masks bit for bit (agree()). Skips without a GPU; the cuDNN runs skip without cuDNN.
#include <cmath>

#include "cpu/cpu_backend.hpp"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"
#include "measure/device_run.hpp"

namespace fbgpu {
namespace {

struct Case {
  const char* body;  // the spec after "input <dtype>"
  bool inject_nonfinite;
};

// C_out a multiple of 16 where the igemm engine should run the case too.
const Case kCases[] = {
    // diffusers ResnetBlock2D: conv1 -> + temb[:, :, None, None] -> GroupNorm -> SiLU -> Dropout
    {"[2, 16, 13, 11]\nconv2d 32 3 padding=1\nadd_per_sample_channel\ngroup_norm 8 eps=1e-6\nsilu\n"
     "dropout p=0.2 seed=5 offset=3\n",
     true},
    {"[3, 8, 16, 16]\nconv2d 16 3 padding=1 bias=false\nadd_per_sample_channel\ngroup_norm 4\nsilu\n", false},
    {"[2, 3, 7, 5]\nconv2d 6 3\nadd_per_sample_channel\nrelu\n", true},  // no norm: the add, then the chain
    // MONAI: InstanceNorm -> Dropout -> PReLU (one slope), and per-channel slopes among other ops
    {"[2, 4, 9, 10, 11]\nconv3d 16 3 padding=1\ninstance_norm affine=true\ndropout p=0.3 seed=9\nprelu\n", true},
    {"[3, 5, 37]\nconv1d 12 3 stride=2\ngroup_norm 4\nprelu num_parameters=12\ntanh\nprelu\n", true},
    {"[2, 8, 12, 10]\nconv2d 16 3 padding=1\nadd_per_sample_channel\ninstance_norm\nprelu num_parameters=16\n"
     "dropout p=0.1 seed=2\n",
     true},
    {"[1, 3, 7, 5]\nconv2d 6 3\nprelu num_parameters=6\n", false},  // no norm
};

// Random slopes (nn.PReLU's are learned: any sign), one NaN among per-channel slopes; the add's
// values random with NaN, Inf and -Inf at a few (sample, channel) pairs. Both in the storage type.
void randomize_epilogue_data(const Plan& plan, Params& params, Tensor* add, uint64_t seed) {
  const DType d = plan.pipeline.types.storage;
  for (Tensor& w : params.prelu_weight) {
    w = uniform_tensor(w.shape(), ++seed, -1.5f, 1.5f);
    if (w.numel() > 2) w.data()[1] = NAN;
    w.round_to(d);
  }
  if (!add) return;
  *add = uniform_tensor(channel_add_shape(plan), ++seed, -3.0f, 3.0f);
  if (add->numel() > 8) add->data()[0] = NAN, add->data()[5] = INFINITY, add->data()[add->numel() - 1] = -INFINITY;
  add->round_to(d);
}

// The program for `config` run on the GPU, its output poisoned first.
Tensor run_store_once(const Plan& plan, const cuda::ConvTuning& config, bool tf32, const Params& params,
                      const Tensor& x, const Tensor* add, int64_t* unwritten) {
  const cuda::LaunchProgram prog = cuda::find_strategy("store_once")->build({&plan, tf32}, config);
  const cuda::Executor ex(plan, prog);
  measure::DeviceRun run(plan, params, x, add);
  run.poison_output();
  run.launch(ex);
  const std::vector<float> values = run.download_output(unwritten);
  Tensor y(plan.pipeline.output_shape);
  std::copy(values.begin(), values.end(), y.data());
  return y;
}

// Every case in `dtype` with each config (cuDNN's conv where it loads, the igemm tiles); returns
// how many runs were compared.
int check(const char* dtype, bool tf32, double rtol) {
  const bool cudnn = !cuda::cudnn_unavailable();
  uint64_t seed = 100;
  int runs = 0;
  for (const Case& c : kCases) {
    const std::string spec = std::string("input ") + dtype + c.body;
    const Plan plan = lower(parse_spec(spec, "t.block"));
    const Pipeline& p = plan.pipeline;
    Params params = init_params(p, ++seed);
    Tensor add;
    randomize_epilogue_data(plan, params, p.channel_add() ? &add : nullptr, ++seed);
    Tensor x = uniform_tensor(p.input_shape, ++seed, -2.0f, 2.0f);
    if (c.inject_nonfinite && x.numel() > 40) x.data()[3] = NAN, x.data()[x.numel() / 2] = INFINITY;
    x.round_to(p.types.storage);
    Tensor cpu(p.output_shape);
    cpu::run(plan, params, x, cpu, p.channel_add() ? &add : nullptr);
    const cuda::ConvProblem problem{&plan, tf32};
    for (const cuda::ConvTuning& t : cuda::find_strategy("store_once")->configs(problem)) {
      if (t.ig_bm == 0 && !cudnn) continue;
      int64_t unwritten = -1;
      const Tensor gpu = run_store_once(plan, t, tf32, params, x, p.channel_add() ? &add : nullptr, &unwritten);
      const std::string where = std::string(dtype) + (tf32 ? " tf32 " : " strict ") + cuda::describe(t) + "\n" + spec;
      EXPECT_EQ(unwritten, 0) << where;
      const Agreement a = agree(p, gpu, cpu, rtol);
      EXPECT_TRUE(a.ok) << where << a.message;
      ++runs;
      if (::testing::Test::HasFailure()) return runs;
    }
  }
  return runs;
}

TEST(GpuEpilogueForms, F32StrictAgreesWithTheCpu) {
  REQUIRE_GPU();
  REQUIRE_CUDNN();
  EXPECT_EQ(check("f32", false, 3e-5), static_cast<int>(std::size(kCases)));
}

TEST(GpuEpilogueForms, F32Tf32AgreesWithTheCpu) {
  REQUIRE_GPU();
  REQUIRE_CUDNN();
  check("f32", true, 4e-3);
}

// The half-precision tolerances of test_gpu_store_once.cpp (design.md); the igemm tiles too.
TEST(GpuEpilogueForms, Bf16AgreesWithTheCpuWithCudnnAndEveryIgemmTile) {
  REQUIRE_GPU();
  EXPECT_GT(check("bf16", true, 3e-2), static_cast<int>(std::size(kCases)));
}

TEST(GpuEpilogueForms, F16AgreesWithTheCpuWithCudnnAndEveryIgemmTile) {
  REQUIRE_GPU();
  EXPECT_GT(check("f16", true, 2e-2), static_cast<int>(std::size(kCases)));
}

// The public run() on host tensors resolves a block with the add and prelu to CUDA (store_once)
// and hands both to the kernels.
TEST(GpuEpilogueForms, HostTensorRunWithTheAddAndPrelu) {
  REQUIRE_GPU();
  REQUIRE_CUDNN();
  const Plan plan = lower(parse_spec(std::string("input bf16") + kCases[5].body, "t.block"));
  Params params = init_params(plan.pipeline, 3);
  Tensor add;
  randomize_epilogue_data(plan, params, &add, 4);
  Tensor x = uniform_tensor(plan.pipeline.input_shape, 5, -2.0f, 2.0f);
  x.round_to(DType::BF16);
  RunOptions opts;
  opts.device = Device::Cuda;
  const Tensor gpu = run(plan, params, x, add, opts);
  EXPECT_EQ(gpu.dtype(), DType::BF16);
  Tensor cpu(plan.pipeline.output_shape);
  cpu::run(plan, params, x, cpu, &add);
  const Agreement a = agree(plan.pipeline, gpu, cpu, 3e-2);
  EXPECT_TRUE(a.ok) << a.message;
}

}  // namespace
}  // namespace fbgpu
