// The conv strategy interface, in the style of CUTLASS's library Operation
// (can_implement, run) and Inductor's algorithm choices: each way of running a
// plan on the GPU says what it cannot do, which configurations it has (the
// first is its heuristic default) and builds a LaunchProgram for one of them.
// Strategies live one a folder under src/cuda/strategies/ and are listed once,
// in registry.cpp; selection (src/cuda/select) ranks those that apply.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "cuda/engines/conv_geometry.hpp"
#include "cuda/program/launch_program.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// What a strategy is asked to run: a plan in one precision mode.
struct ConvProblem {
  const Plan* plan = nullptr;
  bool allow_tf32 = true;  // TF32 allowed by the caller and by the device (sm_80+)
  const Pipeline& pipeline() const { return plan->pipeline; }
};

// The device facts a strategy's limits depend on. Without a GPU (explain,
// verify, CI) an sm_90 device with an H100/H200's shared memory stands in.
struct DeviceLimits {
  int cc_major = 9, cc_minor = 0;
  size_t smem_per_block_optin = 232448;
  // A real device: strategies that run a library (store_once's cuDNN conv) ask whether it loads.
  // The stand-in leaves it false, so explain and CI plan as if cuDNN were there.
  bool probe_libraries = false;
  std::string arch() const { return "sm_" + std::to_string(cc_major * 10 + cc_minor); }
};

class ConvStrategy {
 public:
  virtual ~ConvStrategy() = default;
  virtual const char* name() const = 0;
  virtual const char* summary() const = 0;  // what it does, in one line
  // Why it cannot run this problem on this device, or nothing when it can.
  virtual std::optional<std::string> unsupported(const ConvProblem& problem, const DeviceLimits& device) const = 0;
  // Its configurations for this problem that build distinct programs; the first
  // is the default.
  virtual std::vector<ConvTuning> configs(const ConvProblem& problem) const = 0;
  // configs().front() without listing the others (selection needs only the default).
  virtual ConvTuning default_config(const ConvProblem& problem) const { return configs(problem).front(); }
  // The default on this device (selection's choice): the default unless it cannot launch there
  // (store_once: an igemm tile whose shared memory the device lacks, e.g. sm_89's 99 KB).
  virtual ConvTuning default_config_on(const ConvProblem& problem, const DeviceLimits&) const {
    return default_config(problem);
  }
  virtual LaunchProgram build(const ConvProblem& problem, const ConvTuning& config) const = 0;
  // The share of the cost model's floor (launch_cost.hpp) the strategy reached
  // when measured; the cost model divides by it, so strategies of equal bytes
  // and FLOPs still rank by speed.
  virtual double measured_efficiency() const = 0;
  // False while measured_efficiency() is a placeholder no measurement fitted (explain says so).
  virtual bool efficiency_fitted() const { return true; }
};

// Every strategy, in the order the cost model breaks ties by.
const std::vector<const ConvStrategy*>& conv_strategies();
// nullptr for a name no strategy has.
const ConvStrategy* find_strategy(const std::string& name);

// "mpw 4, 2 blocks/SM, epilogue unroll 1"
std::string describe(const ConvTuning& c);

}  // namespace fuseblock::cuda
