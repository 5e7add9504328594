// The device's memory ceilings, measured in the calling process on the buffer a run writes: a
// cuMemsetD32Async over it (the write ceiling) and a device-to-device copy of its first half onto
// its second (the read + write ceiling, both directions' bytes counted). Same method as every
// other timing here (StepTimer: events, warm-up, median, L2 flushed). Needs a GPU.
#pragma once
#include <cstddef>

#include "cuda/runtime/device_memory.hpp"
#include "measure/step_timer.hpp"

namespace fuseblock::measure {

struct Ceilings {
  size_t write_bytes = 0;   // the memset's
  double write_ms = 0, write_gbs = 0;
  size_t copy_bytes = 0;    // read + write
  double copy_ms = 0, copy_gbs = 0;
};

// `buffer` is overwritten. Bytes per GB: 1e9.
Ceilings measure_ceilings(cuda::DeviceBuffer& buffer, StepTimer& timer, int warmup, int runs);

}  // namespace fuseblock::measure
