// A plan's tensors on the GPU for repeated, checked runs (profile and tune): input, output,
// parameters and scratch uploaded once in the block's storage type (cuda::DeviceBlock); the output
// poisoned with a signalling-NaN pattern of that type before each run, so a run that leaves an
// element unwritten is seen afterwards. Needs a GPU.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "cuda/executor/device_block.hpp"
#include "cuda/executor/executor.hpp"
#include "fuseblock/fuseblock.hpp"

namespace fuseblock::measure {

// Signalling NaNs no arithmetic produces: one float32, and one of each 16-bit type.
inline constexpr uint32_t kPoisonBits = 0x7fa00001u;
inline constexpr uint16_t kPoisonBitsBf16 = 0x7fa1u, kPoisonBitsF16 = 0x7d01u;

class DeviceRun {
 public:
  // `channel_add`: the block's per-(sample, channel) input; where the block has one and none is
  // given, uniform values in [-1, 1) (what profile and tune time).
  DeviceRun(const Plan& plan, const Params& params, const Tensor& x, const Tensor* channel_add = nullptr);
  // Enqueues one run of `ex` (built from this plan, any tuning) on the legacy default stream.
  void launch(const cuda::Executor& ex, const std::function<void(size_t)>& before_each = {});
  void poison_output();  // enqueued on the legacy default stream
  // The output as floats (synchronizes first); *unwritten: elements still holding the poison.
  std::vector<float> download_output(int64_t* unwritten = nullptr) const;
  cuda::DeviceBuffer& output() { return block_.output(); }
  const cuda::RunArgs& args() const { return args_; }

 private:
  std::optional<Tensor> channel_add_;  // the per-(sample, channel) input where the block has one
  cuda::DeviceBlock block_;
  cuda::RunArgs args_;
};

// Elements of the raw output bytes (`storage` elements) that still hold its poison.
int64_t count_poisoned(const std::vector<uint8_t>& bytes, DType storage);

}  // namespace fuseblock::measure
