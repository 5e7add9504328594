// `verify` passes on every test spec (for sm_90 and the seed's sm_89), and fails planted bad
// kernels: a store through a cast-away const input, and a writable scratch the plan never declared.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "cuda/runtime/driver_api.hpp"
#include "cuda/select/select.hpp"
#include "fuseblock/fuseblock.hpp"
#include "verify/verify_plan.hpp"

using namespace fuseblock;

namespace {

std::vector<std::string> spec_files() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(FB_SOURCE_DIR) + "/tests/specs"))
    if (e.path().extension() == ".block") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

Plan plan_of(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return lower(parse_spec(ss.str(), path));
}

class Verify : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!cuda::nvrtc_available(&why)) GTEST_SKIP() << "NVRTC not available: " << why;
  }
};

// Inserts `stmt` as the first statement of kernel `name` in `src`.
std::string plant(std::string src, const std::string& name, const std::string& stmt) {
  size_t k = src.find(" " + name + "(");
  EXPECT_NE(k, std::string::npos) << name;
  size_t body = src.find("{\n", k);
  return src.insert(body + 2, "  " + stmt + "\n");
}

}  // namespace

TEST_F(Verify, EveryTestSpecPassesForSm90AndSm89) {
  const auto files = spec_files();
  ASSERT_GE(files.size(), 8u);
  for (const std::string& f : files)
    for (const char* arch : {"sm_90", "sm_89"}) {
      verify::VerifyOptions o;
      o.arch = arch;
      const Plan plan = plan_of(f);
      verify::VerifyReport r = verify::verify_plan(plan, o);
      EXPECT_TRUE(r.ok()) << f << " " << arch << "\n" << r.text();
      // An unguarded constant fill (nan_bound.block) is a memset alone: no kernel to check.
      EXPECT_EQ(r.kernels.empty(), !cuda::default_program(plan, true).has_kernels()) << f;
    }
}

TEST_F(Verify, StrictFp32AndAssumeFiniteVariantsPass) {
  for (const char* spec : {"problem83_silu.block", "problem83.block"}) {
    Plan p = plan_of(std::string(FB_SOURCE_DIR) + "/tests/specs/" + spec);
    verify::VerifyOptions o;
    o.arch = "sm_90";
    o.allow_tf32 = false;
    verify::VerifyReport r = verify::verify_plan(p, o);
    EXPECT_TRUE(r.ok()) << spec << "\n" << r.text();
  }
}

TEST_F(Verify, StoreIntoTheInputFails) {
  Plan p = plan_of(std::string(FB_SOURCE_DIR) + "/tests/specs/problem83_silu.block");
  cuda::LaunchProgram prog = cuda::default_program(p, true);
  std::string bad = plant(prog.source, "fbl_conv_output", "if (threadIdx.x == 7) ((float*)x)[blockIdx.x] = 0.0f;");
  verify::VerifyReport r = verify::verify_source(p, prog, bad, "sm_90");
  EXPECT_FALSE(r.ok()) << r.text();
  EXPECT_NE(r.text().find("FAIL  fbl_conv_output"), std::string::npos) << r.text();
  // The same program unplanted passes.
  EXPECT_TRUE(verify::verify_source(p, prog, prog.source, "sm_90").ok());
}

TEST_F(Verify, UndeclaredIntermediateBufferFails) {
  Plan p = plan_of(std::string(FB_SOURCE_DIR) + "/tests/specs/problem83.block");
  cuda::LaunchProgram prog = cuda::default_program(p, true);
  // A kernel that stores the conv output to a buffer of its own, then reads it back.
  std::string bad = prog.source + R"(
extern "C" __global__ void __launch_bounds__(256) fb_spill_conv(const float* __restrict__ x, float* __restrict__ tmp, float* __restrict__ y) {
  long long i = blockIdx.x * 256ll + threadIdx.x;
  tmp[i] = x[i] * 2.0f;
  y[i] = tmp[i] + 1.0f;
}
)";
  verify::VerifyReport r = verify::verify_source(p, prog, bad, "sm_90");
  EXPECT_FALSE(r.ok()) << r.text();
  EXPECT_NE(r.text().find("may write 'tmp'"), std::string::npos) << r.text();
}

// A small output map (4x4 per channel, a 1-long conv1d output) has statistics as large as the
// output itself: that is the norm's per-(sample, channel) scale and mean, not an intermediate, and
// verify passes (it failed with "scratch is far below a full-size intermediate" at 25%-400%).
TEST_F(Verify, SmallOutputMapsPassTheScratchCheck) {
  for (const char* spec : {"input f32[2, 3, 6, 6]\nconv2d 16 3\ngroup_norm 2\nsilu\n",
                           "input f32[2, 64, 4, 4]\nconv2d 64 3 padding=1\ngroup_norm 32\nsilu\n",
                           "input bf16[2, 3, 6, 6]\nconv2d 16 3\ngroup_norm 2\nsilu\n",
                           "input f32[1, 16, 1]\nconv1d 16 1\ngroup_norm 1\nsilu\n",
                           "input f32[4, 3, 2, 2, 2]\nconv3d 16 1\ngroup_norm 1\nsilu\n"}) {
    verify::VerifyOptions o;
    o.arch = "sm_90";
    verify::VerifyReport r = verify::verify_plan(lower(parse_spec(spec)), o);
    EXPECT_TRUE(r.ok()) << spec << r.text();
  }
}

// A scratch buffer as large as the output is still a hidden full-size intermediate.
TEST_F(Verify, FullSizeScratchFails) {
  Plan p = plan_of(std::string(FB_SOURCE_DIR) + "/tests/specs/problem83_silu.block");
  cuda::LaunchProgram prog = cuda::default_program(p, true);
  bool grown = false;
  for (cuda::Buffer& b : prog.buffers)
    if (!grown && b.kind == cuda::BufferKind::Scratch && b.ref.role != cuda::BufferRole::LibraryWorkspace)
      b.bytes = prog.bytes_of(cuda::BufferRole::Output), grown = true;
  ASSERT_TRUE(grown);
  verify::VerifyReport r = verify::verify_source(p, prog, prog.source, "sm_90");
  EXPECT_FALSE(r.ok()) << r.text();
  EXPECT_NE(r.text().find("FAIL  scratch is far below a full-size intermediate"), std::string::npos) << r.text();
}
