// The store-once strategy without a GPU: what it accepts and refuses (and that the recompute
// strategies still refuse bf16/f16, with the reason), how it cuts the work for few big planes and
// many small ones, that the cost model chooses it for the diffusion ResBlock and leaves problem
// 83's choices alone, and that its programs compile with NVRTC for sm_80/89/90 in f32, bf16 and
// f16 without spills (registers printed).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cuda/codegen/emit_program_options.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "cuda/select/launch_cost.hpp"
#include "cuda/select/select.hpp"
#include "cuda/strategies/store_once/store_once_layout.hpp"
#include "fuseblock/fuseblock.hpp"

using namespace fuseblock;

namespace {

Plan plan_of(const std::string& spec, bool assume_finite = false) {
  LowerOptions lo;
  lo.assume_finite = assume_finite;
  return lower(parse_spec(spec, "t.block"), lo);
}

Plan spec_file(const std::string& name) {
  std::ifstream f(std::string(FB_SOURCE_DIR) + "/tests/specs/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return plan_of(ss.str());
}

std::string with_dtype(const std::string& dtype, const std::string& rest) { return "input " + dtype + rest; }

const cuda::ConvStrategy& store_once() { return *cuda::find_strategy("store_once"); }

const std::string kSd =
    "[8, 320, 64, 64]\nconv2d out_channels=320 kernel_size=3 padding=1\n"
    "group_norm num_groups=32 eps=1e-6\nsilu\ndropout p=0.1\n";

}  // namespace

TEST(StoreOnce, AcceptsHalfStorageWhichTheOtherStrategiesRefuseWithTheReason) {
  for (const char* dt : {"bf16", "f16"}) {
    const Plan plan = plan_of(with_dtype(dt, kSd));
    const cuda::ConvProblem problem{&plan, true};
    for (const cuda::ConvStrategy* st : cuda::conv_strategies()) {
      const std::optional<std::string> why = st->unsupported(problem, cuda::DeviceLimits{});
      if (std::string(st->name()) == "store_once") {
        EXPECT_FALSE(why.has_value()) << dt << ": " << *why;
      } else {
        ASSERT_TRUE(why.has_value()) << dt << " " << st->name();
        EXPECT_NE(why->find(std::string(dt) + " storage"), std::string::npos) << *why;
      }
    }
    const cuda::Selection s = cuda::select_strategy(problem, cuda::DeviceLimits{});
    EXPECT_STREQ(s.winner().strategy->name(), "store_once") << dt;
  }
}

TEST(StoreOnce, RefusesWhatItCannotRunWithAReason) {
  const cuda::DeviceLimits dev;
  auto why = [&](const Plan& plan) { return store_once().unsupported({&plan, true}, dev); };
  // The fill path (problem 83 folds to a constant), and its guarded plan.
  const Plan p83 = spec_file("problem83.block");
  ASSERT_TRUE(why(p83).has_value());
  // The per-(sample, channel) add and prelu it runs (the recompute strategies refuse them).
  const Plan chan = plan_of("input f32[2, 3, 8, 8]\nconv2d 8 3\nadd_per_sample_channel\ngroup_norm 4\n");
  EXPECT_FALSE(why(chan).has_value()) << *why(chan);
  const Plan prelu = plan_of("input f32[2, 3, 8, 8]\nconv2d 8 3\ngroup_norm 4\nprelu\n");
  EXPECT_FALSE(why(prelu).has_value()) << *why(prelu);
  for (const Plan* plan : {&chan, &prelu}) {
    const cuda::Selection s = cuda::select_strategy({plan, true}, cuda::DeviceLimits{});
    EXPECT_STREQ(s.winner().strategy->name(), "store_once");
    for (const cuda::ConvStrategy* st : cuda::conv_strategies())
      if (std::string(st->name()) != "store_once") {
        const std::optional<std::string> no = st->unsupported({plan, true}, cuda::DeviceLimits{});
        ASSERT_TRUE(no.has_value()) << st->name();
        EXPECT_NE(no->find("only store_once"), std::string::npos) << st->name() << ": " << *no;
      }
  }
  const Plan empty = plan_of("input f32[0, 3, 8, 8]\nconv2d 8 3\ngroup_norm 4\n");
  EXPECT_TRUE(why(empty).has_value());
  cuda::DeviceLimits old = dev;
  old.cc_major = 7;
  const Plan sd = plan_of(with_dtype("f32", kSd));
  EXPECT_TRUE(store_once().unsupported({&sd, true}, old).has_value());
  // On a real device it asks whether cuDNN loads; the stand-in (explain, CI) does not.
  EXPECT_FALSE(why(sd).has_value());
  cuda::DeviceLimits real = dev;
  real.probe_libraries = true;
  const std::optional<std::string> missing = cuda::cudnn_unavailable();
  const std::optional<std::string> r = store_once().unsupported({&sd, true}, real);
  EXPECT_EQ(r.has_value(), missing.has_value());
  if (r) EXPECT_NE(r->find(*missing), std::string::npos) << *r;
}

TEST(StoreOnce, ChunksFillTheGpuForFewBigPlanesAndStayOneForManySmallOnes) {
  // MONAI 3-D: 64 planes of 884736 elements.
  const cuda::StoreOnceLayout monai = cuda::store_once_layout(
      plan_of("input f32[2, 32, 96, 96, 96]\nconv3d 32 3 padding=1\ngroup_norm 8\nrelu\n").pipeline);
  EXPECT_EQ(monai.plane, 884736);
  EXPECT_GE(monai.stats_grid(), 132 * 4) << monai.chunks;
  EXPECT_GE(monai.chunks * monai.chunk, monai.plane);
  EXPECT_LT((monai.chunks - 1) * monai.chunk, monai.plane) << "no empty chunk";
  EXPECT_EQ(monai.chunk % monai.pack, 0);
  EXPECT_GE(monai.apply_grid(), 132 * 4);
  // SD: 2560 planes of 4096.
  const cuda::StoreOnceLayout sd = cuda::store_once_layout(plan_of(with_dtype("bf16", kSd)).pipeline);
  EXPECT_EQ(sd.chunks, 1);
  EXPECT_EQ(sd.chunk, 4096);
  EXPECT_EQ(sd.pack, 8);
  EXPECT_TRUE(sd.vec);
  // Odd planes: no 16-byte packs, every element still in one chunk and one apply unit range.
  const cuda::StoreOnceLayout odd =
      cuda::store_once_layout(plan_of("input f32[1, 3, 7, 5]\nconv2d 6 3\ngroup_norm 3\n").pipeline);
  EXPECT_FALSE(odd.vec);
  EXPECT_EQ(odd.chunks, 1);
  EXPECT_GE(odd.units_per_block * odd.apply_blocks, (odd.cpg * odd.plane + 3) / 4 + 1);
}

TEST(StoreOnce, CostModelChoosesItForTheDiffusionResBlockAndNotForProblem83) {
  for (bool tf32 : {true, false}) {
    const Plan sd = spec_file("sd_resblock.block");
    EXPECT_STREQ(cuda::select_strategy({&sd, tf32}, cuda::DeviceLimits{}).winner().strategy->name(), "store_once");
    for (const char* p83 : {"problem83.block", "problem83_silu.block", "problem83_gelu.block", "problem83_min05.block"})
      for (bool assume_finite : {false, true}) {
        std::ifstream f(std::string(FB_SOURCE_DIR) + "/tests/specs/" + p83);
        std::stringstream ss;
        ss << f.rdbuf();
        const Plan plan = plan_of(ss.str(), assume_finite);
        const cuda::Selection s = cuda::select_strategy({&plan, tf32}, cuda::DeviceLimits{});
        EXPECT_STRNE(s.winner().strategy->name(), "store_once") << p83 << "\n" << s.text();
      }
  }
}

TEST(StoreOnce, LibraryConvIsPricedAtItsDtypesTensorCoreRate) {
  cuda::LibraryConvDesc d;
  d.dtype = DType::BF16;
  EXPECT_EQ(cuda::library_conv_flops_rate(d), 793e12);
  d.dtype = DType::F16;
  EXPECT_EQ(cuda::library_conv_flops_rate(d), 793e12);
  d.dtype = DType::F32;
  EXPECT_EQ(cuda::library_conv_flops_rate(d), 390e12);
  d.allow_tf32 = false;
  EXPECT_EQ(cuda::library_conv_flops_rate(d), 67e12);
  const Plan sd = spec_file("sd_resblock.block");
  const cuda::LaunchProgram prog = store_once().build({&sd, true}, {});
  const cuda::Step& conv = prog.steps.at(1);
  ASSERT_EQ(conv.kind, cuda::StepKind::LibraryConv);
  EXPECT_NEAR(conv.flops, 60.4e9, 0.1e9);
  EXPECT_EQ(conv.library_conv.c_in, 320);
  EXPECT_EQ(conv.library_conv.padding[0], 1);
  EXPECT_EQ(prog.find(cuda::BufferRole::ConvOutput)->kind, cuda::BufferKind::Intermediate);
  EXPECT_NE(cuda::describe(prog).find("cudnn conv (chosen at run time)"), std::string::npos);
}

TEST(StoreOnce, ProgramsCompileForAmpereAdaAndHopperInEveryDtypeWithoutSpills) {
  try {
    cuda::nvrtc_version_string();
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no NVRTC: " << e.what();
  }
  const std::vector<std::string> bodies = {
      kSd,
      "[2, 32, 12, 12, 12]\nconv3d 32 3 padding=1\ngroup_norm 8\nrelu\n",
      "[3, 6, 101]\nconv1d 10 3 bias=false\ngroup_norm 10 affine=false\ngelu\ntanh\ndropout p=0.3\n",
      "[1, 3, 7, 5]\nconv2d 6 3\nminimum 0.5\nclamp min=0 max=0.3\n",
      // diffusers' ResnetBlock2D: conv1 + temb[:, :, None, None] -> GroupNorm -> SiLU -> Dropout
      "[2, 32, 9, 9]\nconv2d 32 3 padding=1\nadd_per_sample_channel\ngroup_norm 8 eps=1e-6\nsilu\ndropout p=0.2\n",
      // MONAI's InstanceNorm -> Dropout -> PReLU, and two prelus (one slope, per-channel slopes)
      "[2, 4, 6, 5, 3]\nconv3d 8 3 padding=1\ninstance_norm affine=true\ndropout p=0.1\nprelu\n",
      "[3, 6, 21]\nconv1d 10 3\ngroup_norm 5\nprelu num_parameters=10\ntanh\nprelu\n",
      "[1, 3, 7, 5]\nconv2d 6 3\nadd_per_sample_channel\nprelu num_parameters=6\n",  // no norm
  };
  for (const std::string& body : bodies)
    for (const char* dt : {"f32", "bf16", "f16"}) {
      const Plan plan = plan_of(with_dtype(dt, body));
      const cuda::LaunchProgram prog = store_once().build({&plan, true}, {});
      for (const char* arch : {"sm_80", "sm_89", "sm_90"}) {
        cuda::CompileRequest req;
        req.source = prog.source;
        req.arch = arch;
        req.options = cuda::program_compile_options();
        const cuda::CompiledProgram out = cuda::compile_program(req);
        const std::string where = std::string(dt) + " " + arch + " " + body.substr(0, body.find('\n'));
        ASSERT_FALSE(out.cubin.empty()) << where << "\n" << out.log;
        for (const auto& k : out.kernels) {
          std::printf("[ store_once ] %-40s %-14s %3d registers, %d B spill\n", where.c_str(), k.name.c_str(),
                      k.registers, k.spill_store_bytes + k.spill_load_bytes);
          EXPECT_EQ(k.spill_store_bytes + k.spill_load_bytes, 0) << where << " " << k.name << "\n" << out.log;
          EXPECT_EQ(k.stack_bytes, 0) << where << " " << k.name;
        }
      }
    }
}

// The kernels' index arithmetic (emit_store_once.cpp), replayed on the host for awkward shapes:
// the statistics chunks cover each plane once, and the apply blocks write every output element
// exactly once (odd planes: 4-element quads shared by neighbouring groups, each element written
// by its own group's block only).
TEST(StoreOnce, ChunksAndApplyUnitsCoverEveryElementOnce) {
  for (const char* spec :
       {"input f32[1, 3, 7, 5]\nconv2d 6 3\ngroup_norm 3\n", "input bf16[3, 5, 37]\nconv1d 12 3\ngroup_norm 4\n",
        "input f16[2, 4, 9, 10, 11]\nconv3d 8 3 padding=1\ngroup_norm 2\n",
        "input f32[2, 8, 16, 16]\nconv2d 16 3 padding=1\ngroup_norm 16\n", "input bf16[1, 2, 70, 70]\nconv2d 4 3\n"}) {
    const cuda::StoreOnceLayout l = cuda::store_once_layout(plan_of(spec).pipeline);
    for (int64_t k = 0; k < l.chunks; ++k) EXPECT_GT(std::min(l.chunk, l.plane - k * l.chunk), 0) << spec;
    EXPECT_GE(l.chunks * l.chunk, l.plane) << spec;
    const int64_t total = l.n * l.channels * l.plane;
    std::vector<int> written(static_cast<size_t>(total), 0);
    const int64_t gl = l.cpg * l.plane, ue = l.vec ? l.pack : 4;
    for (int64_t block = 0; block < l.apply_grid(); ++block) {
      const int64_t ng = block / l.apply_blocks, part = block % l.apply_blocks;
      const int64_t g0 = ng * l.cpg * l.plane;
      const int64_t u_first = l.vec ? g0 / l.pack : g0 >> 2;
      const int64_t units = l.vec ? gl / l.pack : ((g0 + gl - 1) >> 2) - (g0 >> 2) + 1;
      const int64_t u_end = std::min(units, (part + 1) * l.units_per_block);
      for (int64_t u = part * l.units_per_block; u < u_end; ++u)
        for (int64_t e = 0; e < ue; ++e) {
          const int64_t i = (u_first + u) * ue + e;
          if (!l.vec && (i < g0 || i >= g0 + gl)) continue;
          ASSERT_LT(i, total) << spec;
          ++written[static_cast<size_t>(i)];
        }
    }
    for (int64_t i = 0; i < total; ++i) ASSERT_EQ(written[static_cast<size_t>(i)], 1) << spec << " element " << i;
  }
}
