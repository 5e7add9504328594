// `fuseblock tune` and `fuseblock profile` where there is no GPU (CI): the help teaches the rules'
// mapping, and both commands fail with a plain message that names the fix. On a GPU machine the
// no-GPU cases are skipped; tests/gpu/test_gpu_tune.cpp runs the commands for real.
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "cuda/executor/cuda_backend.hpp"

namespace {

struct Result {
  int code;
  std::string out;  // stdout and stderr together
};

Result cli(const std::string& env, const std::string& args) {
  const std::string cmd = env + " " + std::string(FB_CLI_PATH) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(CliTuneProfile, HelpStatesTheMappingAndWhatIsCounted) {
  Result r = cli("", "tune --help");
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* part : {"tile width: mpw 4 -> 2", "epilogue unroll 1 -> 2", "blocks/SM target 2 -> 1",
                           "> 128 registers, occupancy limited by registers, or spills): baseline only",
                           "3+ distinct input loads", ">= 2% faster", "--force", "nothing to tune"})
    EXPECT_TRUE(contains(r.out, part)) << part << "\n" << r.out;
  r = cli("", "profile --help");
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* part : {"--runs", "--ncu", "--strict-fp32", "--assume-finite", "Bytes counted", "limiting resource"})
    EXPECT_TRUE(contains(r.out, part)) << part << "\n" << r.out;
  EXPECT_FALSE(contains(r.out, "--ncu-child")) << "the child flag is internal";
  r = cli("", "--help");
  EXPECT_TRUE(contains(r.out, "tune")) << r.out;
  EXPECT_TRUE(contains(r.out, "profile")) << r.out;
}

TEST(CliTuneProfile, NcuMissingIsSaidPlainly) {
  const Result r = cli("PATH=/nonexistent", "profile --ncu");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "`ncu` is not on PATH")) << r.out;
  EXPECT_TRUE(contains(r.out, "hint:")) << r.out;
}

TEST(CliTuneProfile, WithoutAGpuBothCommandsSayWhatIsNeeded) {
  std::string why;
  if (fuseblock::cuda::available(&why)) GTEST_SKIP() << "a GPU is present: tests/gpu runs these commands";
  Result r = cli("", "profile");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "profile needs a GPU")) << r.out;
  EXPECT_TRUE(contains(r.out, "fuseblock verify")) << r.out;
  r = cli("", std::string("tune ") + FB_SOURCE_DIR + "/tests/specs/problem83_silu.block");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "tune needs a GPU")) << r.out;
  // A spec that does not exist is the first thing said, GPU or not.
  for (const char* cmd : {"tune", "profile"}) {
    r = cli("", std::string(cmd) + " /nonexistent/x.block");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_TRUE(contains(r.out, "/nonexistent/x.block")) << r.out;
    EXPECT_FALSE(contains(r.out, "needs a GPU")) << r.out;
  }
}
