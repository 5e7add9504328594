// `fuseblock profile`: where a plan's time goes on this GPU. Runs the plan's executor (the one
// every run uses, tuned where the tuning cache has a decision) with CUDA events around the run
// and, in a second series, between its steps; warm-up, then the median of N runs, the L2 flushed and the output poisoned before each;
// measures the device's memory ceilings in the same process (measure/ceilings.hpp); and reports
// per step and in total: time, bytes counted (from the LaunchProgram), GB/s, GFLOP/s,
// the floor (those bytes at the ceiling) and the share of it reached, registers, spills, blocks
// per SM, occupancy and its limiting resource. Needs a GPU.
#pragma once
#include <string>
#include <vector>

#include "fuseblock/fuseblock.hpp"
#include "measure/ceilings.hpp"
#include "measure/occupancy.hpp"
#include "cuda/program/launch_program.hpp"

namespace fuseblock::profile {

struct TensorBytes {
  std::string tensor;  // a buffer role's name: "input", "output", "conv.weight", "stats partials", ...
  double bytes = 0;
};

// What one step moves and computes, read from the LaunchProgram (launch_program.hpp says what is
// counted: each buffer a step reads or writes, once; a gated step, the guard flags alone).
struct KernelIo {
  std::string kernel;
  std::vector<TensorBytes> reads, writes;
  double flops = 0;
  std::string note;
  double read_bytes() const;
  double write_bytes() const;
  double bytes() const { return read_bytes() + write_bytes(); }
};
KernelIo step_io(const cuda::LaunchProgram& p, const cuda::Step& s);

struct ProfileOptions {
  bool allow_tf32 = true;
  int warmup = 5, runs = 30;
};

struct StepProfile {
  std::string kernel;
  double ms = 0;
  KernelIo io;
  bool driver_memset = false;
  // Kernels only (not the driver memset):
  int registers = 0, spill_bytes = 0, stack_bytes = 0;
  unsigned threads = 0;
  size_t shared_bytes = 0;  // static + dynamic per block
  int blocks_per_sm = 0;    // the driver's
  int active_warps = 0, max_warps = 0;  // per SM: the driver's blocks x warps per block; the device's limit
  measure::Occupancy occupancy;  // the calculator's, for the limiting resource
  double floor_ms = 0;      // io.bytes() at the ceiling that applies (write-only: memset; else copy)
};

struct ProfileReport {
  std::string device, driver, nvrtc, date, conv_knobs;
  int warmup = 0, runs = 0;
  size_t flush_bytes = 0;
  measure::Ceilings ceilings;
  std::vector<StepProfile> steps;
  double total_ms = 0;           // events around the whole run only
  double stepwise_total_ms = 0;  // first to last event of the step-by-step series
  double floor_bytes = 0, floor_ms = 0;  // the block's fewest bytes at the copy (or write) ceiling
  bool floor_write_only = false;         // an unguarded fill: output only, at the write ceiling
  int64_t unwritten = 0;                 // output elements the last run left poisoned
  std::string text() const;
};

ProfileReport profile_plan(const Plan& plan, const Params& params, const Tensor& x, const ProfileOptions& opts);

}  // namespace fuseblock::profile
