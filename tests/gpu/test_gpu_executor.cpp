// The executor as a library: programs compile once per process (and once per machine through
// the cubin cache), launch grids follow the device, several threads may run plans at once, and
// misaligned buffers are refused with a plain error.
#include <thread>

#include "cuda/runtime/device_context.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"
#include "random_blocks.hpp"

namespace fbgpu {
namespace {

TEST(GpuExecutor, OneBuildPerProgramAndGridsFromTheDevice) {
  REQUIRE_GPU();
  const Plan plan = lower(parse_spec(kDefaultSpec, "<default>"));
  auto a = cuda::executor_for(plan, true);
  auto b = cuda::executor_for(plan, true);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), cuda::executor_for(plan, false).get()) << "strict fp32 is another program";
  const cuda::DeviceInfo& dev = cuda::use_device();
  for (const cuda::KernelLaunch& l : a->launches()) {
    if (l.driver_memset) continue;  // the constant fill: no grid of ours
    EXPECT_GT(l.blocks_per_sm, 0) << l.kernel;
    if (l.kernel != "fb_fill" && l.kernel != "fb_norm_finalize")
      EXPECT_LE(l.grid_x * l.grid_y, static_cast<unsigned>(l.blocks_per_sm * dev.sm_count)) << "persistent: " << l.kernel;
    std::printf("%-18s grid %u x %u, %u threads, %zu B shared, %d blocks/SM on %s\n", l.kernel.c_str(), l.grid_x,
                l.grid_y, l.threads, l.dynamic_smem, l.blocks_per_sm, dev.describe().c_str());
  }
  for (const auto& k : a->compiled().kernels)
    std::printf("%-18s %d registers, %d B spill\n", k.name.c_str(), k.registers, k.spill_store_bytes);
}

TEST(GpuExecutor, ThreadsRunPlansConcurrently) {
  REQUIRE_GPU();
  std::vector<fbtest::RandomBlock> blocks;
  for (uint64_t s = 300; s < 306; ++s) blocks.push_back(fbtest::random_block(s));
  std::vector<Tensor> alone;
  for (const auto& b : blocks) alone.push_back(run_gpu(plan_of(b.pipeline), b.params, b.input, true));
  std::vector<Tensor> together(blocks.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < blocks.size(); ++i)
    threads.emplace_back([&, i] {
      for (int rep = 0; rep < 3; ++rep)
        together[i] = run_gpu(plan_of(blocks[i].pipeline), blocks[i].params, blocks[i].input, true);
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < blocks.size(); ++i)
    EXPECT_EQ(0, std::memcmp(alone[i].data(), together[i].data(), static_cast<size_t>(alone[i].numel()) * 4)) << i;
}

TEST(GpuExecutor, EveryDeviceByOrdinalAndAClearErrorPastTheLast) {
  REQUIRE_GPU();
  int count = 0;
  FB_CU(cuDeviceGetCount(&count));
  const Plan plan = lower(parse_spec("input f32[2, 3, 6, 9, 10]\nconv3d 8 3\ngroup_norm 4\nsilu\n", "dev"));
  const Params params = init_params(plan.pipeline, 3);
  const Tensor x = uniform_tensor(plan.pipeline.input_shape, 4);
  const Tensor want = run_cpu(plan, params, x);
  for (int i = 0; i < count; ++i) {
    EXPECT_EQ(cuda::use_device(i).ordinal, i);
    EXPECT_EQ(cuda::use_device().ordinal, i) << "the thread's device follows use_device(ordinal)";
    const Tensor got = run_gpu(plan, params, x, true);  // on device i: its own executor and module
    const Agreement a = agree(plan.pipeline, got, want, 5e-3);
    EXPECT_TRUE(a.ok) << "cuda:" << i << ": " << a.message;
  }
  try {
    cuda::use_device(count);
    ADD_FAILURE() << "cuda:" << count << " does not exist";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("there is no CUDA device " + std::to_string(count)), std::string::npos)
        << e.what();
  }
  cuda::use_device(0);
}

TEST(GpuExecutor, MisalignedBuffersAreRefused) {
  REQUIRE_GPU();
  const Plan plan = lower(parse_spec(kDefaultSpec, "<default>"));
  auto ex = cuda::executor_for(plan, true);
  cuda::DeviceTensors t;
  t.bind(cuda::BufferRole::Input, 4096 + 4).bind(cuda::BufferRole::Output, 8192);
  EXPECT_THROW(ex->launch(t, {}, nullptr), UserError);
}

}  // namespace
}  // namespace fbgpu
