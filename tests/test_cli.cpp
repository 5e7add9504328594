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

// Without a GPU, explain plans for an H200 stand-in: the diffusion ResBlock's conv (kernel 3 over
// 320 channels) is compute-bound, so storing it once beats computing it twice, in f32 and bf16.
TEST(Cli, ExplainChoosesStoreOnceForTheDiffusionResBlock) {
  for (const char* spec : {"sd_resblock.block", "sd_resblock_bf16.block"}) {
    const Result r = cli(std::string("explain ") + FB_SOURCE_DIR + "/tests/specs/" + spec);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(contains(r.out, "chosen: store_once")) << spec << "\n" << r.out;
    // cuDNN's conv by default in both (the igemm engine runs only where cuDNN cannot load).
    EXPECT_TRUE(contains(r.out, "cudnn conv (chosen at run time)")) << spec << "\n" << r.out;
    EXPECT_TRUE(contains(r.out, "fb_so_stats")) << spec << "\n" << r.out;
  }
  // A bf16 block whose chain folds (a fill path): no CUDA strategy runs it; explain says why.
  const Result f = cli("explain --spec-text 'input bf16[2, 3, 8, 8, 8]; conv3d 16 3; group_norm 8; minimum 0; "
                       "clamp min=0 max=1'");
  EXPECT_EQ(f.code, 0) << f.out;
  EXPECT_TRUE(contains(f.out, "not used: no CUDA strategy can run this block")) << f.out;
  EXPECT_TRUE(contains(f.out, "store_once: the chain folds to a constant")) << f.out;
  // verify: the conv output is store_once's one declared intermediate, nothing else is stored.
  const Result v = cli(std::string("verify ") + FB_SOURCE_DIR + "/tests/specs/sd_resblock.block");
  EXPECT_EQ(v.code, 0) << v.out;
  EXPECT_TRUE(contains(v.out, "store_once declares 1 intermediate")) << v.out;
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

// verify checks CUDA kernels and has no --device: for a block only the CPU backend runs, it says
// so and points at `run --device cpu`, not at an option verify does not take.
TEST(Cli, VerifyOfACpuOnlyBlockPointsAtRun) {
  // Two dropouts that draw a mask: the CUDA epilogue draws one (prelu and the per-(sample,
  // channel) add run on CUDA through store_once, which verify checks).
  Result r = cli("verify --spec-text 'input f32[2, 3, 6, 6]; conv2d 4 3; instance_norm; dropout p=0.1; prelu; "
                 "dropout p=0.2 seed=1'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "more than one dropout that draws a mask")) << r.out;
  EXPECT_TRUE(contains(r.out, "fuseblock run --device cpu")) << r.out;
  EXPECT_FALSE(contains(r.out, "hint: use --device cpu")) << r.out;
}

// A malformed command line is the user's error: exit code 1 (README), with CLI11's message, and a
// negative --seed is refused rather than wrapped to 2^64 - 1.
TEST(Cli, BadCommandLineExitsWithOne) {
  for (const char* args : {"run --repeat abc", "verify --device cpu", "run --no-such-flag", "run --seed -1 -q"}) {
    Result r = cli(args);
    EXPECT_EQ(r.code, 1) << args << ": " << r.out;
  }
  EXPECT_TRUE(contains(cli("run --seed -1").out, "--seed")) << cli("run --seed -1").out;
  EXPECT_EQ(cli("--help").code, 0);
  EXPECT_EQ(cli("run --help").code, 0);
}

// ---- bad input the CLI must classify as the user's (exit 1, one clear message) ----------------

TEST(Cli, VerifyArchIsCheckedBeforeCompiling) {
  Result r = cli("verify --arch banana");
  EXPECT_EQ(r.code, 1) << r.out;  // a user error, not an internal one (3)
  EXPECT_TRUE(contains(r.out, "'banana' is not a GPU architecture")) << r.out;
  EXPECT_TRUE(contains(r.out, "sm_90")) << r.out;
  EXPECT_LT(r.out.size(), 400u) << "no emitted source in a user error:\n" << r.out;
  for (const char* arch : {"sm_9", "sm_1000", "SM_90", "sm_90b", "sm_"}) {
    r = cli(std::string("verify --arch ") + arch);
    EXPECT_EQ(r.code, 1) << arch << ": " << r.out;
  }
  r = cli("verify --arch sm_999");  // well formed, but no NVRTC compiles for it
  if (contains(r.out, "NVRTC") && !contains(r.out, "cannot compile")) GTEST_SKIP() << "no NVRTC: " << r.out;
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "cannot compile for sm_999")) << r.out;
  EXPECT_LT(r.out.size(), 400u) << r.out;
}

TEST(Cli, SpecTextEmptyOrBesideASpecFileIsAnError) {
  Result r = cli("explain --spec-text ''");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "<spec-text>:1:1: error: the spec is empty")) << r.out;
  const std::string spec = temp_path("one.block");
  std::ofstream(spec) << "input f32[1, 1, 4]\nconv1d 1 1\n";
  r = cli("explain " + spec + " --spec-text 'input f32[1, 1, 4]; conv1d 2 1'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "both a spec file")) << r.out;
  EXPECT_EQ(cli("explain " + spec).code, 0);
  r = cli("explain /dev/zero");  // read no further than the spec's size limit
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "more than 1048576 bytes")) << r.out;
  r = cli("run " + spec + " --device cpu --repeat 0");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "--repeat must be at least 1")) << r.out;
}

TEST(Cli, OutputThatIsAnInputIsRefusedBeforeRunning) {
  const std::string in = temp_path("same.npy");
  fuseblock::save_npy(in, fuseblock::Tensor({1, 1, 4}, 2.0f));
  const std::string link = temp_path("same_link.npy");
  std::filesystem::remove(link);
  std::filesystem::create_symlink(in, link);
  const std::string spec = "--device cpu --spec-text 'input f32[1, 1, 4]; conv1d 1 1' --input " + in;
  const std::string dir = std::filesystem::path(in).parent_path().string();
  for (const std::string& out : {in, link, dir + "/./" + std::filesystem::path(in).filename().string()}) {
    Result r = cli("run " + spec + " --output " + out);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_TRUE(contains(r.out, "is the same file as --input")) << r.out;
    EXPECT_EQ(fuseblock::load_npy(in).vec(), std::vector<float>(4, 2.0f)) << "the input was replaced";
  }
  // The parameters file, also behind a safetensors tensor name.
  const std::string params = temp_path("p.safetensors");
  fuseblock::save_safetensors(params, {{"conv.weight", fuseblock::Tensor({1, 1, 1}, 1.0f)},
                                       {"conv.bias", fuseblock::Tensor({1}, 0.0f)}});
  Result r = cli("run " + spec + " --params " + params + " --output " + params + ":y");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "same file as the parameters")) << r.out;
  r = cli("run " + spec + " --params " + params + " --output " + temp_path("other.npy"));
  EXPECT_EQ(r.code, 0) << r.out;
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
  // Half blocks run on CUDA through store_once (cuDNN's conv; the igemm engine needs C_out a
  // multiple of 16): where the GPU is missing (CI) or cuDNN is, asking for CUDA fails and says
  // why; where both are present it runs.
  r = cli("run --device cuda --spec-text 'input f16[1, 2, 9]; conv1d 3 3'");
  if (r.code != 0) {
    EXPECT_TRUE(contains(r.out, "CUDA is not available") || contains(r.out, "f16 storage runs on CUDA only through"))
        << r.out;
    EXPECT_TRUE(contains(r.out, "--device cpu")) << r.out;
  }
  // verify checks store_once's bf16 program (without a GPU, planned for the stand-in device).
  r = cli("verify --spec-text 'input bf16[1, 2, 9]; conv1d 3 3'");
  if (r.code == 0)
    EXPECT_TRUE(contains(r.out, "store_once declares 1 intermediate")) << r.out;
  else  // a GPU without cuDNN: no strategy runs a bf16 block there
    EXPECT_TRUE(contains(r.out, "cuDNN")) << r.out;
}

// add_per_sample_channel: --channel-add FILE is added per (sample, channel) before the norm
// (here no norm: the difference from a zero add is the added value); errors name the shape.
TEST(Cli, ChannelAddIsReadFromAFileAndRequiredExactlyWhenTheBlockHasIt) {
  const std::string spec = "--spec-text 'input f32[2, 3, 5]; conv1d 4 3; add_per_sample_channel'";
  const std::string zeros = temp_path("add0.npy"), add = temp_path("add.npy");
  const std::string y0_path = temp_path("ya0.npy"), y1_path = temp_path("ya1.npy");
  fuseblock::save_npy(zeros, fuseblock::Tensor({2, 4}, 0.0f));
  const std::vector<float> a{1, -2, 3, 0.5f, 10, 20, -30, 40};
  fuseblock::save_npy(add, fuseblock::Tensor({2, 4}, a));
  Result r = cli("run --device cpu -q " + spec + " --channel-add " + zeros + " --output " + y0_path);
  ASSERT_EQ(r.code, 0) << r.out;
  r = cli("run --device auto -q " + spec + " --channel-add " + add + " --output " + y1_path);
  ASSERT_EQ(r.code, 0) << r.out;
  const fuseblock::Tensor y0 = fuseblock::load_tensor(y0_path), y1 = fuseblock::load_tensor(y1_path);
  ASSERT_EQ(y1.shape(), (fuseblock::Shape{2, 4, 3}));
  for (int64_t i = 0; i < y1.numel(); ++i) EXPECT_NEAR(y1.data()[i] - y0.data()[i], a[static_cast<size_t>(i / 3)], 1e-4) << i;

  r = cli("run --device cpu -q " + spec);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "--channel-add was not given")) << r.out;
  EXPECT_TRUE(contains(r.out, "[2, 4]")) << r.out;
  fuseblock::save_npy(add, fuseblock::Tensor({2, 3}, 1.0f));
  r = cli("run --device cpu -q " + spec + " --channel-add " + add);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "has shape [2, 3], but the block expects [2, 4]")) << r.out;
  r = cli("run --device cpu -q --spec-text 'input f32[2, 3, 5]; conv1d 4 3' --channel-add " + zeros);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.out, "has no add_per_sample_channel")) << r.out;
  r = cli("run --device cuda -q " + spec + " --channel-add " + zeros);
  EXPECT_NE(r.code, 0);
  r = cli("--help-spec");
  EXPECT_TRUE(contains(r.out, "add_per_sample_channel")) << r.out;
}

// FUSEBLOCK_DUMP=1 prints the IR after every pass to stderr; 0 or empty does not (any value did).
TEST(Cli, DumpEnvironmentVariableZeroIsOff) {
  const std::string run = "run -q --device cpu --spec-text 'input f32[1, 1, 4]; conv1d 1 3'";
  for (const char* v : {"0", ""}) {
    ::setenv("FUSEBLOCK_DUMP", v, 1);
    Result r = cli(run);
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_FALSE(contains(r.out, "-- after infer_shapes")) << "FUSEBLOCK_DUMP='" << v << "'\n" << r.out;
  }
  ::setenv("FUSEBLOCK_DUMP", "1", 1);
  Result r = cli(run);
  EXPECT_TRUE(contains(r.out, "-- after infer_shapes")) << r.out;
  ::unsetenv("FUSEBLOCK_DUMP");
}
