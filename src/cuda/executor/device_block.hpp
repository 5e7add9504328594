// A block's host tensors on the device in the plan's storage type (f32, bf16 or f16, as the kernels
// read and write them), bound for the executor: the input, the parameters the program declares,
// the output and the scratch. One place for the upload that the host-tensor backend (run) and the
// measuring harness (profile, tune) share, so both run half-precision blocks on the same bytes.
#pragma once
#include <cstdint>

#include "cuda/executor/executor.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "fuseblock/fuseblock.hpp"

namespace fuseblock::cuda {

class DeviceBlock {
 public:
  // Uploads x and the parameters `program` declares (PReLU weights by their op's index; every
  // parameter `params` holds when `program` is null, for a harness running several programs), and
  // allocates the output (uninitialised) and `scratch_bytes` of scratch. `channel_add`: the
  // block's per-(sample, channel) input [N, C_out] where its pipeline has one.
  DeviceBlock(const Plan& plan, const LaunchProgram* program, const Params& params, const Tensor& x,
              size_t scratch_bytes = 0, const Tensor* channel_add = nullptr);
  // Every buffer bound by its role; the scratch grows to `scratch_bytes` first (tunings differ).
  DeviceTensors tensors(size_t scratch_bytes);
  DType storage() const { return storage_; }
  DeviceBuffer& output() { return y_; }
  const DeviceBuffer& output() const { return y_; }

 private:
  DType storage_;
  DeviceBuffer x_, y_, weight_, bias_, gamma_, beta_, channel_add_, scratch_;
  std::vector<DeviceBuffer> prelu_;  // by param_index
};

}  // namespace fuseblock::cuda
