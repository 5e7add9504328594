// Faults a user can cause on the GPU: asking for more memory than the card has is a UserError
// with a hint, and the device stays usable after it.
#include "gpu_support.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "pipeline_fixtures.hpp"

namespace fbgpu {
namespace {

TEST(GpuFaults, OutOfMemoryIsAUserErrorAndTheDeviceStaysUsable) {
  REQUIRE_GPU();
  try {
    cuda::DeviceBuffer huge(size_t(1) << 42);  // 4 TiB: more than any GPU has
    FAIL() << "a 4 TiB allocation succeeded";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.hint()).find("does not fit in GPU memory"), std::string::npos) << e.formatted();
  }
  // A run afterwards still works and matches the CPU backend.
  std::mt19937_64 rng(3);
  fbtest::ConvSpec c;
  c.batch = 2;
  const Pipeline p = fbtest::make_pipeline(c, fbtest::group_norm(2), {fbtest::pointwise(OpKind::Silu)});
  const Params params = fbtest::random_params(p, rng);
  const Tensor x = fbtest::uniform_input(p.input_shape, rng, -1.0f, 1.0f);
  int64_t unwritten = -1;
  const Tensor gpu = run_gpu(plan_of(p), params, x, false, &unwritten);
  EXPECT_EQ(unwritten, 0);
  const Agreement a = agree(p, gpu, run_cpu(plan_of(p), params, x), 3e-5);
  EXPECT_TRUE(a.ok) << a.message;
}

}  // namespace
}  // namespace fbgpu
