// The `fuseblock` command end to end: exit codes and messages a user sees.
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "fuseblock/fuseblock.hpp"
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

// bf16 and f16 blocks: files in the block's dtype, the same output as the library's run, and the
// errors for a file of another dtype, bf16 to .npy and half blocks on CUDA.
TEST(Cli, RunsHalfBlocksWithFilesInTheirType) {
  namespace fb = fuseblock;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  fb::Tensor x({2, 3, 7, 6});
  for (float& v : x.vec()) v = u(rng);
  x.round_to(fb::DType::F16);
  const std::string in = temp_path("x16.npy"), out = temp_path("y16.npy");
  fb::save_tensor(in, x);
  Result r = cli("run --device cpu -q --spec-text 'input f16[2, 3, 7, 6]; conv2d 4 3; group_norm 2; gelu' --input " +
                 in + " --output " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "output  f16[2, 4, 5, 4]")) << r.out;
  const fb::Tensor y = fb::load_tensor(out);
  EXPECT_EQ(y.dtype(), fb::DType::F16);
  const fb::Plan plan = fb::lower(fb::parse_spec("input f16[2, 3, 7, 6]\nconv2d 4 3\ngroup_norm 2\ngelu\n"));
  const fb::Tensor want = fb::run(plan, fb::init_params(plan.pipeline, 0), x, {fb::Device::Cpu});
  ASSERT_EQ(y.numel(), want.numel());
  EXPECT_EQ(0, std::memcmp(y.data(), want.data(), sizeof(float) * static_cast<size_t>(y.numel())));

  r = cli("run --device cpu --spec-text 'input bf16[2, 3, 7, 6]; conv2d 4 3' --input " + in);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "holds f16 data, but the block's input is bf16")) << r.out;
  const std::string st = temp_path("b16.safetensors");
  r = cli("run --device cpu -q --spec-text 'input bf16[1, 2, 9]; conv1d 3 3' --output " + st);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(fb::load_tensor(st).dtype(), fb::DType::BF16);
  r = cli("run --device cpu -q --spec-text 'input bf16[1, 2, 9]; conv1d 3 3' --output " + temp_path("b16.npy"));
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "safetensors")) << r.out;
  r = cli("run --device cuda --spec-text 'input f16[1, 2, 9]; conv1d 3 3'");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "f16 storage runs on the CPU backend only in this version")) << r.out;
  EXPECT_TRUE(contains(r.out, "--device cpu")) << r.out;
  r = cli("verify --spec-text 'input bf16[1, 2, 9]; conv1d 3 3'");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "verify works on the CUDA kernels, which are float32 only")) << r.out;
}
