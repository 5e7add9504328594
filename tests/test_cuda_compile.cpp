// The CUDA backend's checks that need no GPU (they run in CI): every emitted program compiles
// with NVRTC for sm_90 (the H100) and sm_89 (the seed's RTX 4090) without spills, its source
// matches the goldens under tests/golden/cuda (FUSEBLOCK_UPDATE_GOLDEN=1 rewrites them), the
// cubin cache rebuilds corrupt, truncated and stale entries and survives two processes filling
// it at once, a compile error shows NVRTC's log and the numbered source, and asking for CUDA on
// a machine without a GPU gives the plain error.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cuda/engines/conv_geometry.hpp"
#include "cuda/runtime/cubin_info.hpp"
#include "cuda/runtime/cubin_cache.hpp"
#include "cuda/executor/cuda_backend.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/codegen/emit_common.hpp"
#include "cuda/codegen/emit_program_options.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "cuda/strategies/constant_fill/emit_fill.hpp"
#include "fuseblock/fuseblock.hpp"
#include "nvrtc_support.hpp"

using namespace fuseblock;
namespace fs = std::filesystem;

namespace {

// A fresh, empty folder under the system's temporary folder.
fs::path temp_dir(const std::string& tag) {
  std::string pattern = (fs::temp_directory_path() / ("fuseblock-" + tag + "-XXXXXX")).string();
  char* made = mkdtemp(pattern.data());
  EXPECT_NE(made, nullptr);
  return fs::path(pattern);
}

struct Case {
  std::string name;  // also the golden file's name
  std::string spec;
  bool assume_finite = false;
  bool golden = false;
};

const std::string kP83Input = "input f32[128, 3, 16, 64, 64]\nconv3d out_channels=16 kernel_size=3\n"
                              "group_norm num_groups=8 eps=1e-5\n";

// Representative blocks: the default (fill path + guard + exact fallback), the same without the
// guard, the chains that do not fold, conv1d/2d with stride, padding, dilation, no bias, no
// norm, G = C, non-affine, a channel count past one chunk, and a reduction too long for the
// tensor-core engine.
std::vector<Case> cases() {
  return {
      {"p83_default", kDefaultSpec, false, true},
      {"p83_assume_finite", kDefaultSpec, true, true},
      {"p83_silu", kP83Input + "silu\ndropout p=0.2\n", false, true},
      {"p83_gelu", kP83Input + "gelu\ndropout p=0.2\n"},
      {"p83_min_clamp_half", kP83Input + "minimum 0.5\nclamp min=0.0 max=0.5\ndropout p=0.2\n"},
      {"conv2d_stride_pad_nobias",
       "input f32[4, 5, 33, 47]\nconv2d out_channels=12 kernel_size=(3, 5) stride=2 padding=(1, 2) bias=false\n"
       "group_norm num_groups=12 affine=false\nmish\ndropout p=0.3 seed=7\n",
       false, true},
      {"conv1d_dilation_nonorm", "input f32[3, 2, 301]\nconv1d out_channels=5 kernel_size=3 dilation=2\ntanh\n"},
      {"conv3d_40_channels", "input f32[2, 4, 7, 9, 11]\nconv3d out_channels=40 kernel_size=2 padding=1\n"
                             "group_norm num_groups=5\nhardswish\ndropout p=0.5\n"},
      {"conv3d_64_in_channels", "input f32[2, 64, 6, 10, 12]\nconv3d out_channels=16 kernel_size=3\n"
                                "group_norm num_groups=4\nrelu\n"},
      {"sd_resblock_bf16", "input bf16[8, 320, 64, 64]\nconv2d out_channels=320 kernel_size=3 padding=1\n"
                           "group_norm num_groups=32 eps=1e-6\nsilu\ndropout p=0.1\n",
       false, true},  // store_once, the one strategy that runs bf16
  };
}

Plan plan_of(const Case& c) {
  LowerOptions lo;
  lo.assume_finite = c.assume_finite;
  return lower(parse_spec(c.spec, c.name), lo);
}

}  // namespace

TEST(CudaCompile, EveryProgramCompilesForHopperAndAdaWithoutSpills) {
  REQUIRE_NVRTC();
  const fs::path dir = temp_dir("cubins");
  cuda::CubinCache cache(dir.string());
  for (const Case& c : cases()) {
    const Plan plan = plan_of(c);
    for (bool tf32 : {true, false}) {
      const cuda::LaunchProgram prog = cuda::default_program(plan, tf32);
      size_t kernels = 0;
      for (const cuda::Step& s : prog.steps) kernels += s.kind == cuda::StepKind::Kernel;
      if (kernels == 0) {  // an unguarded constant fill: the executor's memset alone
        EXPECT_EQ(prog.strategy, "constant_fill") << c.name;
        continue;
      }
      for (const char* arch : {"sm_90", "sm_89"}) {
        cuda::CompileRequest req;
        req.source = prog.source;
        req.arch = arch;
        req.options = cuda::program_compile_options();
        const cuda::CompiledProgram out = cuda::compile_cached(req, &cache);
        EXPECT_FALSE(out.cubin.empty());
        EXPECT_NE(out.ptx.find(".entry"), std::string::npos);
        const std::string where = c.name + (tf32 ? " tf32 " : " fp32 ") + arch;
        EXPECT_EQ(out.kernels.size(), kernels)
            << where << "\n--- NVRTC log (" << cuda::nvrtc_library_path() << ") ---\n" << out.log.substr(0, 3000);
        // The cubin's own attributes agree with ptxas's report (the fallback when a log lacks it).
        const auto info = cuda::read_cubin_info(out.cubin);
        for (const auto& k : out.kernels) {
          if (k.from_cubin) continue;
          ASSERT_TRUE(info.count(k.name)) << where << " " << k.name << " missing from the cubin's .nv.info";
          EXPECT_EQ(info.at(k.name).registers, k.registers) << where << " " << k.name;
          EXPECT_EQ(info.at(k.name).frame_bytes, k.stack_bytes) << where << " " << k.name;
        }
        for (const auto& k : out.kernels) {
          EXPECT_EQ(k.spill_store_bytes + k.spill_load_bytes, 0) << where << " " << k.name << " spills\n" << out.log;
          EXPECT_EQ(k.stack_bytes, 0) << where << " " << k.name << " uses local memory";
          EXPECT_GT(k.registers, 0) << where << " " << k.name;
        }
        if (prog.tensor_cores)
          EXPECT_NE(out.ptx.find("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"), std::string::npos) << where;
        // Strict fp32 keeps the FMA engine; half precision always runs its own MMA (the igemm engine).
        if (!tf32 && plan.pipeline.types.storage == DType::F32)
          EXPECT_EQ(out.ptx.find("mma.sync"), std::string::npos) << where;
        if (prog.half_tensor_cores)
          EXPECT_NE(out.ptx.find("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), std::string::npos) << where;
      }
    }
  }
  fs::remove_all(dir);
}

TEST(CudaCompile, EngineChoice) {
  const Plan p83 = lower(parse_spec(kP83Input + "silu\n", "silu"));
  const cuda::ConvGeometry tc = cuda::choose_conv_geometry(p83.pipeline, true);
  EXPECT_EQ(tc.engine, cuda::ConvEngine::MmaTf32);
  EXPECT_EQ(tc.ksteps, 11);  // K = 3 * 27 = 81, padded to 88
  EXPECT_EQ(tc.seg_level, 1) << tc.describe();  // full-width rows: a (c, d) plane part is one run
  EXPECT_LE(tc.a_conflict_cost, cuda::mma_a_conflict_cost(tc, tc.xw, tc.xh * tc.xw, tc.xd * tc.xh * tc.xw))
      << "the padded pitches must not conflict more than the unpadded ones";
  EXPECT_EQ(cuda::choose_conv_geometry(p83.pipeline, false).engine, cuda::ConvEngine::Fma);
  const Plan wide = lower(parse_spec("input f32[2, 64, 6, 10, 12]\nconv3d out_channels=16 kernel_size=3\n", "w"));
  const cuda::ConvGeometry fg = cuda::choose_conv_geometry(wide.pipeline, true);
  EXPECT_EQ(fg.engine, cuda::ConvEngine::Fma) << "K = 1728 is past the tensor-core engine's registers";
  EXPECT_LT(fg.cic, 64) << "the window is loaded in input-channel chunks";
  EXPECT_LE(fg.smem_bytes(), 96u * 1024);
}

// Goldens pin the emitted source: a refactor of the emitter proves itself with zero diff.
TEST(CudaCompile, EmittedSourceMatchesGoldens) {
  const bool update = std::getenv("FUSEBLOCK_UPDATE_GOLDEN") != nullptr;
  const fs::path dir = fs::path(FB_SOURCE_DIR) / "tests" / "golden" / "cuda";
  for (const Case& c : cases()) {
    if (!c.golden) continue;
    for (bool tf32 : {true, false}) {
      if (!tf32 && c.name != "p83_silu") continue;
      const std::string src = cuda::default_program(plan_of(c), tf32).source;
      const fs::path file = dir / (c.name + (tf32 ? "" : "_fp32") + ".cu");
      if (update) {
        fs::create_directories(dir);
        std::ofstream(file, std::ios::binary) << src;
        continue;
      }
      std::ifstream in(file, std::ios::binary);
      ASSERT_TRUE(in) << "missing golden " << file << " (run with FUSEBLOCK_UPDATE_GOLDEN=1)";
      const std::string want((std::istreambuf_iterator<char>(in)), {});
      EXPECT_EQ(src, want) << "emitted source differs from " << file
                           << "; if the change is intended, rerun with FUSEBLOCK_UPDATE_GOLDEN=1 and review the diff";
    }
  }
}

// fb_guard_bound, the guard's bound computed on the device, alone in a program (the prelude and
// the kernel): it compiles for Ampere, Ada and Hopper without spills or local memory, and its PTX
// rounds as emit_fill.cpp says (sums up, the difference and the quotient down, the float down)
// with no flush of denormal weights to zero.
TEST(CudaCompile, GuardBoundKernelCompilesForAmpereAdaHopperWithoutSpills) {
  REQUIRE_NVRTC();
  const std::string specs[] = {
      kDefaultSpec,
      "input f32[2, 5, 9, 11]\nconv2d out_channels=40 kernel_size=(3, 5) bias=false\n"
      "group_norm num_groups=8 affine=false\nminimum 0.0\nclamp min=0.0 max=1.0\n",
      "input f32[2, 4, 33]\nconv1d out_channels=12 kernel_size=5\nminimum 0.0\nclamp min=0.0 max=1.0\n",
  };
  for (const std::string& spec : specs) {
    const Plan plan = lower(parse_spec(spec, "guard-bound"));
    ASSERT_TRUE(plan.guard.has_value()) << spec;
    cuda::SourceWriter w;
    cuda::emit_prelude(w, "guard bound");
    cuda::emit_guard_bound_kernel(w, plan);
    for (const char* arch : {"sm_80", "sm_89", "sm_90"}) {
      cuda::CompileRequest req;
      req.source = w.str();
      req.arch = arch;
      req.options = cuda::program_compile_options();
      const cuda::CompiledProgram out = cuda::compile_program(req);
      const std::string where = spec + " " + arch;
      const cuda::KernelResources* k = out.find("fb_guard_bound");
      ASSERT_NE(k, nullptr) << where << "\n" << out.log;
      EXPECT_EQ(k->spill_store_bytes + k->spill_load_bytes, 0) << where << "\n" << out.log;
      EXPECT_EQ(k->stack_bytes, 0) << where;
      EXPECT_GT(k->registers, 0) << where;
      for (const char* op : {"add.rp.f64", "sub.rm.f64", "div.rm.f64", "cvt.rm.f32.f64", "shfl.sync.bfly"})
        EXPECT_NE(out.ptx.find(op), std::string::npos) << where << ": no " << op;
      EXPECT_NE(out.ptx.find("cvt.f64.f32"), std::string::npos) << where;
      EXPECT_EQ(out.ptx.find("cvt.ftz.f64.f32"), std::string::npos) << where << ": denormal weights flushed";
    }
  }
}

TEST(CudaCompile, CompileErrorShowsLogAndNumberedSource) {
  REQUIRE_NVRTC();
  cuda::CompileRequest req;
  req.source = "// line 1\nextern \"C\" __global__ void k(float* y) {\n  y[0] = undeclared_name;\n}\n";
  req.arch = "sm_90";
  try {
    cuda::compile_program(req);
    FAIL() << "a broken program compiled";
  } catch (const InternalError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("undeclared_name"), std::string::npos) << m;
    EXPECT_NE(m.find("--- NVRTC log ---"), std::string::npos) << m;
    EXPECT_NE(m.find("    3 |   y[0] = undeclared_name;"), std::string::npos) << m;
  }
}

TEST(CudaCompile, PtxasReportParser) {
  const std::string log =
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function 'fb_a' for 'sm_90'\n"
      "ptxas info    : Function properties for fb_a\n"
      "ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
      "ptxas info    : Used 40 registers, used 1 barriers, 6144 bytes smem, 400 bytes cmem[0]\n"
      "ptxas info    : Compiling entry function 'fb_b' for 'sm_90'\n"
      "ptxas info    : Function properties for fb_b\n"
      "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 128 registers, used 0 barriers, 380 bytes cmem[0]\n";
  const auto ks = cuda::parse_ptxas_report(log);
  ASSERT_EQ(ks.size(), 2u);
  EXPECT_EQ(ks[0].name, "fb_a");
  EXPECT_EQ(ks[0].registers, 40);
  EXPECT_EQ(ks[0].stack_bytes, 16);
  EXPECT_EQ(ks[0].spill_store_bytes, 8);
  EXPECT_EQ(ks[0].spill_load_bytes, 4);
  EXPECT_EQ(ks[0].shared_bytes, 6144);
  EXPECT_EQ(ks[0].barriers, 1);
  EXPECT_EQ(ks[1].name, "fb_b");
  EXPECT_EQ(ks[1].registers, 128);
  EXPECT_EQ(ks[1].shared_bytes, 0);
}

namespace {

cuda::CompileRequest small_request() {
  cuda::CompileRequest req;
  req.source = "extern \"C\" __global__ void fb_k(float* y) { y[threadIdx.x] = 2.0f * threadIdx.x; }\n";
  req.arch = "sm_90";
  return req;
}

void flip_byte(const fs::path& f, std::streamoff at) {
  std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(at);
  char c = 0;
  io.get(c);
  io.seekp(at);
  io.put(static_cast<char>(c ^ 0x5a));
}

}  // namespace

TEST(CudaCubinCache, HitAfterMissAndCorruptOrTruncatedEntriesAreRebuilt) {
  REQUIRE_NVRTC();
  const fs::path dir = temp_dir("cache");
  cuda::CubinCache cache(dir.string());
  const cuda::CompileRequest req = small_request();
  cuda::CacheStats s1, s2, s3, s4;
  const auto first = cuda::compile_cached(req, &cache, cuda::kGeneratorVersion, &s1);
  EXPECT_FALSE(s1.hit);
  const auto second = cuda::compile_cached(req, &cache, cuda::kGeneratorVersion, &s2);
  EXPECT_TRUE(s2.hit);
  EXPECT_EQ(first.cubin, second.cubin);
  EXPECT_EQ(second.kernels.size(), 1u) << "the resource report survives the cache";
  const fs::path entry = cache.entry_path(s1.key);
  ASSERT_TRUE(fs::exists(entry));

  // A flipped payload byte fails the checksum: a miss, then a rebuilt, valid entry.
  flip_byte(entry, static_cast<std::streamoff>(fs::file_size(entry) - 10));
  EXPECT_FALSE(cache.load(s1.key).has_value());
  const auto third = cuda::compile_cached(req, &cache, cuda::kGeneratorVersion, &s3);
  EXPECT_FALSE(s3.hit);
  EXPECT_EQ(third.cubin, first.cubin);
  EXPECT_TRUE(cache.load(s1.key).has_value());

  // A truncated entry (a writer killed mid-write would leave only a temp file, but a disk can
  // still lose a tail) is a miss too.
  fs::resize_file(entry, fs::file_size(entry) / 2);
  EXPECT_FALSE(cache.load(s1.key).has_value());
  cuda::compile_cached(req, &cache, cuda::kGeneratorVersion, &s4);
  EXPECT_FALSE(s4.hit);
  EXPECT_TRUE(cache.load(s1.key).has_value());

  // An entry stored under another key (a renamed file) is rejected by the key in its header.
  fs::copy_file(entry, cache.entry_path(std::string(32, '0')));
  EXPECT_FALSE(cache.load(std::string(32, '0')).has_value());
  fs::remove_all(dir);
}

TEST(CudaCubinCache, StaleGeneratorVersionIsRebuilt) {
  REQUIRE_NVRTC();
  const fs::path dir = temp_dir("cache-stale");
  cuda::CubinCache cache(dir.string());
  const cuda::CompileRequest req = small_request();
  cuda::CacheStats old_gen, new_gen, again;
  cuda::compile_cached(req, &cache, cuda::kGeneratorVersion, &old_gen);
  cuda::compile_cached(req, &cache, cuda::kGeneratorVersion + 1, &new_gen);
  EXPECT_FALSE(new_gen.hit) << "an entry from another generator version must not be used";
  EXPECT_NE(old_gen.key, new_gen.key);
  cuda::compile_cached(req, &cache, cuda::kGeneratorVersion + 1, &again);
  EXPECT_TRUE(again.hit);
  fs::remove_all(dir);
}

TEST(CudaCubinCache, KeyCoversSourceOptionsVersionAndArch) {
  const cuda::CompileRequest a = small_request();
  const std::string k = cuda::cache_key(a, "13.0", 1);
  cuda::CompileRequest b = a;
  b.source += " ";
  EXPECT_NE(cuda::cache_key(b, "13.0", 1), k);
  b = a;
  b.options.push_back("-lineinfo");
  EXPECT_NE(cuda::cache_key(b, "13.0", 1), k);
  b = a;
  b.arch = "sm_89";
  EXPECT_NE(cuda::cache_key(b, "13.0", 1), k);
  EXPECT_NE(cuda::cache_key(a, "12.8", 1), k);
  EXPECT_NE(cuda::cache_key(a, "13.0", 2), k);
  EXPECT_EQ(cuda::cache_key(a, "13.0", 1), k);
  EXPECT_EQ(k.size(), 32u);
}

// Two processes write and read one key at once, many times: every read sees a whole entry
// (or none), and no temporary file is left behind.
TEST(CudaCubinCache, TwoProcessesFillingOneKey) {
  REQUIRE_NVRTC();
  const fs::path dir = temp_dir("cache-race");
  cuda::CubinCache cache(dir.string());
  const cuda::CompileRequest req = small_request();
  const cuda::CompiledProgram prog = cuda::compile_program(req);
  const std::string key = cuda::cache_key(req, cuda::nvrtc_version_string(), cuda::kGeneratorVersion);
  pid_t kids[2];
  for (pid_t& kid : kids) {
    kid = fork();
    ASSERT_GE(kid, 0);
    if (kid == 0) {
      int bad = 0;
      for (int i = 0; i < 200; ++i) {
        if (!cache.store(key, prog)) bad |= 1;
        const auto got = cache.load(key);
        if (got && got->cubin != prog.cubin) bad |= 2;  // a torn entry would show here
      }
      _exit(bad);
    }
  }
  for (pid_t kid : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(kid, &status, 0), kid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: a store failed, 2: a load saw a torn entry";
  }
  const auto got = cache.load(key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->cubin, prog.cubin);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().extension(), ".fbcubin") << "left behind: " << e.path();
  }
  EXPECT_EQ(files, 1);
  fs::remove_all(dir);
}

TEST(CudaBackend, NoGpuGivesThePlainError) {
  std::string why;
  if (cuda::available(&why)) GTEST_SKIP() << "this machine has a GPU";
  EXPECT_FALSE(why.empty());
  const Plan plan = lower(parse_spec("input f32[1, 1, 4]\nconv1d out_channels=1 kernel_size=1\n", "tiny"));
  const Params params = init_params(plan.pipeline, 0);
  RunOptions o;
  o.device = Device::Cuda;
  try {
    run(plan, params, Tensor(plan.pipeline.input_shape, 1.0f), o);
    FAIL() << "ran on CUDA without a GPU";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA is not available"), std::string::npos) << e.what();
  }
}

// The guard bound as the kernels compare it: |x| <= bound_f for a float x exactly when
// |x| <= bound for the real bound; infinite inputs always fail, a NaN bound fails everything.
TEST(CudaBackend, GuardBoundAsFloat) {
  EXPECT_EQ(cuda::guard_bound_as_float(1.0), 1.0f);
  const double b = 0.1;  // 0.1f is above 0.1
  const float f = cuda::guard_bound_as_float(b);
  EXPECT_LE(static_cast<double>(f), b);
  EXPECT_GT(static_cast<double>(std::nextafter(f, INFINITY)), b);
  EXPECT_EQ(cuda::guard_bound_as_float(INFINITY), FLT_MAX);
  EXPECT_EQ(cuda::guard_bound_as_float(1e300), FLT_MAX);
  EXPECT_TRUE(std::isnan(cuda::guard_bound_as_float(NAN)));
  EXPECT_EQ(cuda::guard_bound_as_float(-INFINITY), -INFINITY);
}
