// The GPU fuseblock runs on: the primary context of one device (the one PyTorch uses too, so
// pointers and streams from a framework work here) and the properties the launchers size grids
// and shared memory from. Nothing is hard-wired to one GPU.
#pragma once
#include <cstddef>
#include <string>

namespace fuseblock::cuda {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  int smem_per_block_optin = 0;  // bytes a block may opt in to
  int smem_per_sm = 0;
  int regs_per_sm = 0;
  int l2_bytes = 0;
  size_t total_mem = 0;
  std::string arch() const;      // "sm_90"
  std::string describe() const;  // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)"
};

// The calling thread's device: the last one use_device(ordinal) chose on this thread, else
// $FUSEBLOCK_CUDA_DEVICE (default 0). Retains its primary context once per process and makes it
// current on the thread. Throws the "CUDA is not available" UserError without a GPU.
const DeviceInfo& use_device();
// Device `ordinal` (cuda:N, e.g. the device of a framework's tensor), made the calling thread's
// device as above. Throws a UserError naming the devices there are for an ordinal out of range.
const DeviceInfo& use_device(int ordinal);
// The ordinal $FUSEBLOCK_CUDA_DEVICE names (`env` its value, null or empty: 0): decimal digits
// only; anything else ("cuda:1", "abc", "-1") is a UserError naming the variable.
int device_ordinal_from_env(const char* env);

}  // namespace fuseblock::cuda
