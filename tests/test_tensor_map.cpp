// Tensor-map arguments and per-program targets without a GPU: a description the driver would
// refuse is caught on the host with the field named (each rule broken on its own, from a valid
// map), the probe program's signature takes the map where its step binds it, and the probe builds
// for sm_90a but not for sm_90 (wgmma), through a cubin cache that keys on the target. The launch
// itself is tests/gpu/test_gpu_tensor_map.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "cuda/codegen/emit_program_options.hpp"
#include "cuda/executor/tensor_map.hpp"
#include "cuda/runtime/cubin_cache.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "nvrtc_support.hpp"
#include "tensor_map_probe.hpp"
#include "verify/kernel_signature.hpp"

using namespace fuseblock;
namespace fs = std::filesystem;

namespace {

cuda::TensorMapDesc im2col_desc() {  // a [N=2][H=10][W=12][C=64] bf16 tensor, channels innermost
  cuda::TensorMapDesc t;
  t.mode = cuda::TensorMapMode::Im2col;
  t.dtype = DType::BF16;
  t.rank = 4;
  t.dims = {64, 12, 10, 2, 0};
  t.strides_bytes = {0, 64 * 2, 64 * 2 * 12, 64 * 2 * 12 * 10, 0};
  t.lower_corner = {-1, -1, 0};
  t.upper_corner = {-1, -1, 0};
  t.channels_per_pixel = 64;
  t.pixels_per_column = 128;
  t.swizzle = cuda::TensorMapSwizzle::Bytes128;
  return t;
}

}  // namespace

TEST(TensorMap, ValidDescriptionsPassAndEachBrokenRuleIsNamed) {
  EXPECT_EQ(cuda::tensor_map_invalid(fbprobe::tensor_map_probe_desc()), std::nullopt);
  EXPECT_EQ(cuda::tensor_map_invalid(im2col_desc()), std::nullopt);
  EXPECT_EQ(cuda::tensor_map_invalid(fbprobe::tensor_map_probe_desc(), 0x10000), std::nullopt);
  struct Broken {
    const char* what;
    std::function<void(cuda::TensorMapDesc&)> breaks;
    const char* named;  // a part of the message
  };
  const std::vector<Broken> tiled = {
      {"rank 0", [](auto& t) { t.rank = 0; }, "rank 0"},
      {"rank 6", [](auto& t) { t.rank = 6; }, "rank 6"},
      {"empty dimension", [](auto& t) { t.dims[1] = 0; }, "dimension 1 has extent 0"},
      {"unaligned stride", [](auto& t) { t.strides_bytes[1] = 100; }, "stride 100 B is not a positive multiple of 16"},
      {"overlapping rows", [](auto& t) { t.strides_bytes[1] = 32; }, "less than the 96 B"},
      {"box past 256", [](auto& t) { t.box[1] = 257; }, "box dimension 1 is 257"},
      {"box row of 12 bytes", [](auto& t) { t.box[0] = 3; }, "not a multiple of 16 bytes"},
      {"element stride 9", [](auto& t) { t.element_strides[0] = 9; }, "element stride 9"},
      {"swizzle narrower than the box", [](auto& t) { t.swizzle = cuda::TensorMapSwizzle::Bytes32; },
       "more than its 32 B swizzle span"},
  };
  for (const Broken& b : tiled) {
    cuda::TensorMapDesc t = fbprobe::tensor_map_probe_desc();
    b.breaks(t);
    const std::optional<std::string> why = cuda::tensor_map_invalid(t);
    ASSERT_TRUE(why.has_value()) << b.what;
    EXPECT_NE(why->find(b.named), std::string::npos) << b.what << ": " << *why;
  }
  const std::optional<std::string> unaligned = cuda::tensor_map_invalid(fbprobe::tensor_map_probe_desc(), 0x10008);
  ASSERT_TRUE(unaligned.has_value());
  EXPECT_NE(unaligned->find("0x10008 is not 16-byte aligned"), std::string::npos) << *unaligned;
  const std::vector<Broken> im2col = {
      {"rank 2", [](auto& t) { t.rank = 2; }, "im2col map has 3 to 5"},
      {"channels of 8 bytes", [](auto& t) { t.channels_per_pixel = 4; }, "4 channels per pixel"},
      {"a column of 2000 pixels", [](auto& t) { t.pixels_per_column = 2000; }, "2000 pixels per column"},
      {"a corner out of range", [](auto& t) { t.lower_corner[0] = -200; }, "corners (-200, -1)"},
  };
  for (const Broken& b : im2col) {
    cuda::TensorMapDesc t = im2col_desc();
    b.breaks(t);
    const std::optional<std::string> why = cuda::tensor_map_invalid(t);
    ASSERT_TRUE(why.has_value()) << b.what;
    EXPECT_NE(why->find(b.named), std::string::npos) << b.what << ": " << *why;
  }
  EXPECT_EQ(cuda::describe(fbprobe::tensor_map_probe_desc()), "tiled f32 [24 x 20] box [16 x 8], no swizzle");
}

TEST(TensorMap, TheProbeTakesTheMapWhereItsStepBindsIt) {
  const cuda::LaunchProgram p = fbprobe::tensor_map_probe_program();
  const std::vector<verify::KernelSignature> sigs = verify::parse_kernel_signatures(p.source);
  ASSERT_EQ(sigs.size(), 1u);
  ASSERT_EQ(sigs[0].params.size(), p.steps[0].args.size());
  EXPECT_EQ(p.steps[0].args[0].kind, cuda::ArgKind::TensorMap);
  EXPECT_FALSE(sigs[0].params[0].pointer) << "a map is passed by value";
  EXPECT_NE(sigs[0].params[0].type.find("__grid_constant__"), std::string::npos) << sigs[0].params[0].type;
  EXPECT_NE(sigs[0].params[0].type.find(cuda::kTensorMapType), std::string::npos) << sigs[0].params[0].type;
  EXPECT_TRUE(sigs[0].params[1].pointer && sigs[0].params[1].writable);
  const std::string text = cuda::describe(p);
  EXPECT_NE(text.find("target: sm_90a"), std::string::npos) << text;
  EXPECT_NE(text.find("tensor map of input (tiled f32 [24 x 20] box [16 x 8], no swizzle)"), std::string::npos) << text;
}

TEST(TensorMap, TheProbeBuildsForSm90aOnlyAndTheCacheKeysOnTheTarget) {
  REQUIRE_NVRTC();
  const fs::path dir = fs::temp_directory_path() / ("fuseblock-target-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const cuda::CubinCache cache(dir.string());
  cuda::CompileRequest req;
  req.source = fbprobe::tensor_map_probe_source();
  req.options = cuda::program_compile_options();
  req.arch = "sm_90a";
  cuda::CacheStats first, again;
  const cuda::CompiledProgram built = cuda::compile_cached(req, &cache, cuda::kGeneratorVersion, &first);
  EXPECT_FALSE(first.hit);
  EXPECT_EQ(built.arch, "sm_90a");
  EXPECT_FALSE(built.cubin.empty());
  EXPECT_NE(built.ptx.find(".target sm_90a"), std::string::npos);
  EXPECT_NE(built.ptx.find("cp.async.bulk.tensor.2d"), std::string::npos);
  cuda::compile_cached(req, &cache, cuda::kGeneratorVersion, &again);
  EXPECT_TRUE(again.hit);
  req.arch = "sm_90";  // the same source, the base target: ptxas refuses wgmma, and no cached sm_90a cubin answers
  EXPECT_THROW(cuda::compile_cached(req, &cache), std::exception);
  fs::remove_all(dir);
}
