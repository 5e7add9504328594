// Occupancy from first principles: how many blocks of a kernel fit on one SM given its registers,
// shared memory and threads, and which of the SM's limits binds. Pure arithmetic (no GPU), so the
// tests pin it; on a GPU the limits come from cuDeviceGetAttribute and the result is checked
// against the driver's cuOccupancyMaxActiveBlocksPerMultiprocessor.
#pragma once
#include <cstddef>
#include <string>

namespace fuseblock::measure {

// One SM's limits (defaults: an H100, sm_90).
struct SmLimits {
  int max_threads = 2048;             // CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR
  int max_blocks = 32;                // CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR
  int registers = 65536;              // CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR
  size_t shared_bytes = 233472;       // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
  size_t reserved_shared_per_block = 1024;  // CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK
  int register_unit = 256;            // registers are allocated per warp in units of this many
  int warp_size = 32;
  int max_warps() const { return max_threads / warp_size; }
};

struct Occupancy {
  // Blocks per SM each resource allows (by_shared_memory is INT_MAX for a block without any).
  int by_registers = 0, by_shared_memory = 0, by_threads = 0, by_block_limit = 0;
  int blocks = 0;            // resident blocks per SM: the least of the four
  std::string limited_by;    // "registers", "shared memory", "threads", "block limit" (ties joined by " and ")
  int active_warps = 0;      // blocks * warps per block
  int max_warps = 0;
  double fraction() const { return max_warps ? static_cast<double>(active_warps) / max_warps : 0.0; }
};

// regs: registers per thread (ptxas); shared: static + dynamic bytes per block.
Occupancy occupancy(int regs, int threads_per_block, size_t shared, const SmLimits& sm);

// The current device's limits (needs a GPU: throws the "CUDA is not available" UserError).
SmLimits current_sm_limits();

}  // namespace fuseblock::measure
