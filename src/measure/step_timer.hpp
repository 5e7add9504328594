// Times a run made of steps (kernels, memsets) the way docs/benchmarks.md describes: CUDA events
// between the steps, warm-up runs first, then the median of each step and of the whole run over
// many runs; before every run an untimed `prepare` (poisoning the output) and a flush of the L2
// (a cuMemsetD32Async over a buffer twice the L2's size, with a new value each run), so no run
// finds the last one's data in cache. Needs a GPU.
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

#include "cuda/runtime/device_memory.hpp"

namespace fuseblock::measure {

struct Timing {
  std::vector<double> step_ms;  // median of each step
  double total_ms = 0;          // median of the whole run (first event to last)
  int warmup = 0, runs = 0;
};

class StepTimer {
 public:
  StepTimer();  // allocates the flush buffer for the current device
  size_t flush_bytes() const { return flush_.bytes(); }
  // `body(record)` enqueues one run on the legacy default stream and calls record(i) before step
  // i and record(steps) after the last (Executor::launch's before_each does exactly that).
  Timing time(size_t steps, int warmup, int runs, const std::function<void()>& prepare,
              const std::function<void(const std::function<void(size_t)>&)>& body);

 private:
  cuda::DeviceBuffer flush_;
};

double median(std::vector<double> v);

}  // namespace fuseblock::measure
