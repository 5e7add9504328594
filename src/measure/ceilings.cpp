#include "measure/ceilings.hpp"

#include "cuda/runtime/driver_api.hpp"

namespace fuseblock::measure {

Ceilings measure_ceilings(cuda::DeviceBuffer& buffer, StepTimer& timer, int warmup, int runs) {
  Ceilings c;
  const size_t words = buffer.bytes() / 4;
  if (words < 2) return c;
  Timing t = timer.time(1, warmup, runs, {}, [&](const std::function<void(size_t)>& record) {
    record(0);
    FB_CU(cuMemsetD32Async(buffer.ptr(), 0x3f800000u, words, nullptr));
    record(1);
  });
  c.write_bytes = words * 4;
  c.write_ms = t.total_ms;
  c.write_gbs = c.write_bytes / (c.write_ms * 1e6);
  const size_t half = words / 2 * 4;
  t = timer.time(1, warmup, runs, {}, [&](const std::function<void(size_t)>& record) {
    record(0);
    FB_CU(cuMemcpyDtoDAsync(buffer.ptr() + half, buffer.ptr(), half, nullptr));
    record(1);
  });
  c.copy_bytes = 2 * half;
  c.copy_ms = t.total_ms;
  c.copy_gbs = c.copy_bytes / (c.copy_ms * 1e6);
  return c;
}

}  // namespace fuseblock::measure
