// The `fuseblock` command end to end: exit codes and messages a user sees.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "fuseblock/io.hpp"

namespace {

struct Result {
  int code;
  std::string out;  // stdout and stderr together
};

Result cli(const std::string& args) {
  std::string cmd = std::string(FB_CLI_PATH) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / (std::to_string(::getpid()) + "_" + name)).string();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(Cli, HelpTeaches) {
  Result r = cli("--help");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "run")) << r.out;
  EXPECT_TRUE(contains(r.out, "explain")) << r.out;
  r = cli("--help-spec");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(contains(r.out, "group_norm")) << r.out;
  r = cli("run --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(contains(r.out, "--device")) << r.out;
}

TEST(Cli, BadSpecExitsNonZeroWithLineAndColumn) {
  const std::string spec = temp_path("bad.block");
  std::ofstream(spec) << "input f32[2, 3, 8, 8]\nconv2d out_channels=16 kernel_size=3\ngroup_norm num_groups=5\n";
  Result r = cli("explain " + spec);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, spec + ":3:12: error: 16 channels cannot be split into 5 groups")) << r.out;
  EXPECT_TRUE(contains(r.out, "hint:")) << r.out;
}

TEST(Cli, MissingSpecFileAndUnknownDevice) {
  Result r = cli("run /nonexistent/x.block");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "cannot read the spec file")) << r.out;
  r = cli("run --device tpu --spec-text 'input f32[1, 1, 4]; conv1d 1 3'");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "unknown device 'tpu'")) << r.out;
}

TEST(Cli, BadInputFileNamesTheTensorAndShape) {
  const std::string in = temp_path("x.npy");
  fuseblock::save_npy(in, fuseblock::Tensor({1, 2, 4}, 1.0f));
  Result r = cli("run --device cpu --spec-text 'input f32[1, 1, 4]; conv1d 1 3' --input " + in);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "[1, 2, 4]")) << r.out;
  EXPECT_TRUE(contains(r.out, "[1, 1, 4]")) << r.out;
  std::ofstream(in, std::ios::trunc) << "garbage";
  r = cli("run --device cpu --spec-text 'input f32[1, 1, 4]; conv1d 1 3' --input " + in);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, in)) << r.out;
}

TEST(Cli, RunWritesOutputAndExplainShowsPasses) {
  const std::string out = temp_path("y.npy");
  Result r = cli("run --device cpu --spec-text 'input f32[2, 3, 6, 6]; conv2d 4 3; group_norm 2; silu' --output " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "checksum")) << r.out;
  fuseblock::Tensor y = fuseblock::load_tensor(out);
  EXPECT_EQ(y.shape(), (fuseblock::Shape{2, 4, 4, 4}));
  r = cli("explain");
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* step : {"after infer_shapes", "after simplify (under guard)", "after eliminate_unused", "  fill_memset ", "  guard "})
    EXPECT_TRUE(contains(r.out, step)) << step << "\n" << r.out;
}

TEST(Cli, CudaRequestWithoutGpuSaysSoAndFails) {
  Result r = cli("run --device cuda --spec-text 'input f32[1, 1, 4]; conv1d 1 3'");
  if (r.code == 0) GTEST_SKIP() << "this machine has a GPU";
  EXPECT_TRUE(contains(r.out, "CUDA is not available")) << r.out;
  EXPECT_TRUE(contains(r.out, "--device cpu")) << r.out;
}
