// A tensor-map argument and an sm_90a program through the executor (tests/tensor_map_probe.hpp):
// the executor compiles the probe for its own target, encodes the map on the host from the bound
// input's address at each launch and passes it as a __grid_constant__ parameter; the kernel's TMA
// load brings the box, zeros past the matrix's edges. Two inputs at two addresses, the output
// poisoned before each run, so a map encoded once, or over the wrong buffer, fails. On a GPU that
// is not compute capability 9.0 the sm_90a program is refused with a UserError naming the target.
#include <cmath>
#include <cstring>

#include "cuda/executor/executor.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"
#include "tensor_map_probe.hpp"

namespace fbgpu {
namespace {

using fbprobe::kBoxCols, fbprobe::kBoxRows, fbprobe::kCol0, fbprobe::kCols, fbprobe::kRow0, fbprobe::kRows;

TEST(GpuTensorMap, AnSm90aProgramLoadsABoxThroughItsTensorMap) {
  REQUIRE_GPU();
  const cuda::DeviceInfo& dev = cuda::use_device();
  const Plan plan = lower(parse_spec("input f32[1, 1, 4]\nconv1d 1 1\n", "<probe>"));  // any non-empty output
  if (dev.arch() != "sm_90") {
    try {
      cuda::Executor ex(plan, fbprobe::tensor_map_probe_program());
      ADD_FAILURE() << "an sm_90a program built on " << dev.describe();
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("sm_90a"), std::string::npos) << e.what();
    }
    GTEST_SKIP() << "the sm_90a probe runs on compute capability 9.0 only; " << dev.describe();
  }
  const cuda::Executor ex(plan, fbprobe::tensor_map_probe_program());
  EXPECT_EQ(ex.compiled().arch, "sm_90a");
  for (uint64_t seed : {1u, 2u}) {
    // Values in [1, 2): never 0, so an element the box leaves out of bounds is told apart.
    const std::vector<float> in = uniform_tensor({kRows, kCols}, seed, 1.0f, 2.0f).vec();
    cuda::DeviceBuffer din = cuda::to_device(in);
    cuda::DeviceBuffer dout(size_t{kBoxRows * kBoxCols * 4});
    dout.fill_u32(0x7fa5a5a5u);
    cuda::DeviceTensors t;
    t.bind(cuda::BufferRole::Input, din.ptr()).bind(cuda::BufferRole::Output, dout.ptr());
    ex.launch(t, {}, nullptr);
    cuda::synchronize();
    std::vector<float> out(static_cast<size_t>(kBoxRows * kBoxCols));
    dout.download(out.data(), out.size() * 4);
    int wrong = 0;
    for (int r = 0; r < kBoxRows; ++r)
      for (int c = 0; c < kBoxCols; ++c) {
        const int row = kRow0 + r, col = kCol0 + c;
        const float want = row < kRows && col < kCols ? in[static_cast<size_t>(row * kCols + col)] : 0.0f;
        const float got = out[static_cast<size_t>(r * kBoxCols + c)];
        uint32_t gb, wb;
        std::memcpy(&gb, &got, 4), std::memcpy(&wb, &want, 4);
        if (gb != wb && ++wrong <= 5)
          ADD_FAILURE() << "seed " << seed << " box (" << r << ", " << c << ") = matrix (" << row << ", " << col
                        << "): got " << got << ", want " << want;
      }
    EXPECT_EQ(wrong, 0) << "seed " << seed;
  }
}

}  // namespace
}  // namespace fbgpu
