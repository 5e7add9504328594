// A plan's tensors on the GPU for repeated, checked runs (profile and tune): input, output,
// parameters and scratch uploaded once; the output poisoned with a signalling-NaN pattern before
// each run, so a run that leaves an element unwritten is seen afterwards. Needs a GPU.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "cuda/runtime/device_memory.hpp"
#include "cuda/executor/executor.hpp"
#include "fuseblock/fuseblock.hpp"

namespace fuseblock::measure {

inline constexpr uint32_t kPoisonBits = 0x7fa00001u;  // a signalling NaN no arithmetic produces

class DeviceRun {
 public:
  DeviceRun(const Plan& plan, const Params& params, const Tensor& x);
  // Enqueues one run of `ex` (built from this plan, any tuning) on the legacy default stream.
  void launch(const cuda::Executor& ex, const std::function<void(size_t)>& before_each = {});
  void poison_output();  // enqueued on the legacy default stream
  std::vector<float> download_output() const;  // synchronizes first
  cuda::DeviceBuffer& output() { return y_; }
  const cuda::RunArgs& args() const { return args_; }

 private:
  cuda::DeviceBuffer x_, y_, w_, b_, gamma_, beta_, scratch_;
  cuda::RunArgs args_;
};

// Elements of y that still hold the poison.
int64_t count_poisoned(const std::vector<float>& y);

}  // namespace fuseblock::measure
