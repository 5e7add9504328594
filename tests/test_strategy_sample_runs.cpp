// Where the sample-runs recompute strategy (lean_kernels.cuh) applies, what its unsupported()
// says elsewhere, and the sizes it is launched with: checked without a GPU, on the specs of the
// tests and the GPU suite's sample-runs cases.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "cuda/strategies/recompute_sample_runs/emit_lean.hpp"
#include "cuda/select/select.hpp"
#include "fuseblock/fuseblock.hpp"

namespace fuseblock {
namespace {

Plan plan_from_file(const std::string& name) {
  std::ifstream f(std::string(FB_SOURCE_DIR) + "/tests/specs/" + name);
  return lower(parse_spec(std::string(std::istreambuf_iterator<char>(f), {}), name));
}

const cuda::ConvStrategy& sample_runs() { return *cuda::find_strategy("recompute_sample_runs"); }

TEST(StrategySampleRuns, ChosenForProblem83WithAChainThatDoesNotFold) {
  for (const char* name : {"problem83_silu.block", "problem83_gelu.block", "problem83_min05.block"}) {
    const cuda::LaunchProgram prog = cuda::default_program(plan_from_file(name), true);
    EXPECT_EQ(prog.strategy, "recompute_sample_runs") << name;
    EXPECT_NE(prog.find_step("fbl_conv_stats"), nullptr) << name;
    EXPECT_NE(prog.source.find("// ---- lean_kernels.cuh ----"), std::string::npos) << name;
  }
  // The shape of tests/gpu/test_gpu_lean.cpp's cases, with one sample and without bias or affine.
  for (const char* s : {"input f32[1, 3, 8, 16, 64]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8\nsilu\n",
                        "input f32[2, 3, 8, 16, 64]\nconv3d out_channels=16 kernel_size=3 bias=false\n"
                        "group_norm num_groups=4 affine=false\ngelu\ndropout p=0.2 training=false\n"})
    EXPECT_EQ(cuda::default_program(lower(parse_spec(s, "lean")), true).strategy, "recompute_sample_runs") << s;
}

TEST(StrategySampleRuns, UnsupportedOutsideItsGeometryWithAReason) {
  const Plan silu = plan_from_file("problem83_silu.block");
  const cuda::DeviceLimits h200;
  auto why = sample_runs().unsupported({&silu, false}, h200);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("TF32"), std::string::npos) << *why;
  const Plan p83 = plan_from_file("problem83.block");
  why = sample_runs().unsupported({&p83, true}, h200);
  ASSERT_TRUE(why.has_value()) << "a fill path";
  EXPECT_NE(why->find("constant"), std::string::npos) << *why;
  for (const char* name : {"conv2d_strided.block", "conv1d_dilated.block", "conv3d_no_norm.block"}) {
    const Plan p = plan_from_file(name);
    why = sample_runs().unsupported({&p, true}, h200);
    EXPECT_TRUE(why.has_value()) << name;
    EXPECT_NE(cuda::default_program(p, true).strategy, "recompute_sample_runs") << name;
  }
  cuda::DeviceLimits small = h200;
  small.smem_per_block_optin = 48 * 1024;
  why = sample_runs().unsupported({&silu, true}, small);
  ASSERT_TRUE(why.has_value()) << "60.9 KB of shared memory does not fit 48 KB";
  EXPECT_NE(why->find("shared memory"), std::string::npos) << *why;
}

TEST(StrategySampleRuns, SizesOfProblem83) {
  const Plan plan = plan_from_file("problem83_silu.block");
  const cuda::ConvGeometry g = cuda::choose_conv_geometry(plan.pipeline, true);
  const int64_t pitch = cuda::lean_staging_pitch(g);
  EXPECT_EQ(pitch, 500) << "2 x 4 x 62 = 496 rounded up to the first pitch with 2 * pitch = 8 (mod 32)";
  EXPECT_EQ((2 * pitch) % 32, 8);
  // The output kernel: one window of 3 x 1824 floats, 16 x 500 staging, 256 junk, 88 offsets, the
  // 1408-float B table; the statistics kernel: two windows, offsets, B.
  EXPECT_EQ(cuda::lean_output_smem_bytes(g), size_t(3 * 1824 + 16 * 500 + 256 + 88 + 1408) * 4);
  EXPECT_EQ(cuda::lean_stats_smem_bytes(g), size_t(2 * 3 * 1824 + 88 + 1408) * 4);
  const cuda::LaunchProgram prog = sample_runs().build({&plan, true}, {});
  EXPECT_EQ(prog.find_step("fbl_conv_stats")->dynamic_smem, cuda::lean_stats_smem_bytes(g)) << "each kernel its own";
  EXPECT_EQ(prog.find_step("fbl_conv_output")->dynamic_smem, cuda::lean_output_smem_bytes(g));
  // Scratch: partials for up to 16 blocks per sample (2048 / 128), then a and b per (n, c); far
  // below the output. A batch of 1 may spread over every tile.
  const cuda::ScratchLayout l = cuda::scratch_layout(prog);
  const size_t partials = *l.offset_of(cuda::BufferRole::StatsPartials), ab = *l.offset_of(cuda::BufferRef::scratch("norm a, b"));
  EXPECT_GE(ab - partials, cuda::lean_partials_bytes(g));
  EXPECT_EQ(cuda::lean_max_blocks_per_sample(g), 16);
  EXPECT_EQ(cuda::lean_partials_bytes(g), size_t(128 * 16 * 8 * 16 * 16));
  cuda::ConvGeometry one = g;
  one.n = 1;
  EXPECT_EQ(cuda::lean_max_blocks_per_sample(one), 112) << "every tile its own block";
  EXPECT_GE(l.bytes - ab, size_t(128 * 16 * 8));
  EXPECT_LT(l.bytes * 100, size_t(128) * 16 * 14 * 62 * 62 * 4) << "under 1% of the output";
}

}  // namespace
}  // namespace fuseblock
