#include "measure/occupancy.hpp"

#include <algorithm>
#include <limits>

#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/driver_api.hpp"

namespace fuseblock::measure {

Occupancy occupancy(int regs, int threads_per_block, size_t shared, const SmLimits& sm) {
  Occupancy o;
  const int warps = (std::max(threads_per_block, 1) + sm.warp_size - 1) / sm.warp_size;
  // Registers: each warp gets regs * 32 rounded up to the allocation unit; blocks take whole warps.
  const int per_warp = (std::max(regs, 1) * sm.warp_size + sm.register_unit - 1) / sm.register_unit * sm.register_unit;
  o.by_registers = sm.registers / per_warp / warps;
  // Shared memory: the block's bytes plus the driver's reservation, in 128-byte allocation units.
  const size_t smem_block = (shared + sm.reserved_shared_per_block + 127) / 128 * 128;
  o.by_shared_memory = shared == 0 ? std::numeric_limits<int>::max() : static_cast<int>(sm.shared_bytes / smem_block);
  o.by_threads = sm.max_threads / (warps * sm.warp_size);
  o.by_block_limit = sm.max_blocks;
  o.blocks = std::min({o.by_registers, o.by_shared_memory, o.by_threads, o.by_block_limit});
  const std::pair<int, const char*> limits[] = {{o.by_registers, "registers"},
                                                {o.by_shared_memory, "shared memory"},
                                                {o.by_threads, "threads"},
                                                {o.by_block_limit, "block limit"}};
  for (const auto& [blocks, name] : limits)
    if (blocks == o.blocks) o.limited_by += (o.limited_by.empty() ? "" : " and ") + std::string(name);
  o.active_warps = o.blocks * warps;
  o.max_warps = sm.max_warps();
  return o;
}

SmLimits current_sm_limits() {
  const cuda::DeviceInfo& dev = cuda::use_device();
  CUdevice d = 0;
  FB_CU(cuDeviceGet(&d, dev.ordinal));
  auto attr = [&](CUdevice_attribute a) {
    int v = 0;
    FB_CU(cuDeviceGetAttribute(&v, a, d));
    return v;
  };
  SmLimits sm;
  sm.max_threads = attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR);
  sm.max_blocks = attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR);
  sm.registers = attr(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR);
  sm.shared_bytes = static_cast<size_t>(attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR));
  sm.reserved_shared_per_block = static_cast<size_t>(attr(CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK));
  sm.warp_size = attr(CU_DEVICE_ATTRIBUTE_WARP_SIZE);
  return sm;
}

}  // namespace fuseblock::measure
