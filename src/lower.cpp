// lower(): the pipeline from a parsed Block to a Plan, as a list of steps. With
// FUSEBLOCK_DUMP=1 in the environment the IR is printed to stderr after every step.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include "fuseblock/fuseblock.hpp"
#include "passes/passes.hpp"

namespace fuseblock {

// The conv output bound the guarded analysis assumes. Far below float32 overflow even when
// squared and summed over a group of 10^14 elements, so statistics stay finite.
static constexpr double kConvOutputBound = 1e12;

// The bound for a storage type: the conv output is rounded to it, so it must stay finite there
// too. f16 overflows at 65520: half its largest value leaves room for the float32 sum's rounding
// error (up to K * 2^-24 relative for K terms) before the rounding to f16.
static double conv_output_bound(DType storage) {
  return std::min(kConvOutputBound, 0.5 * dtype_info(storage).max_finite);
}

static bool has_fill(const Block& b) { return b.find(OpKind::Fill) != nullptr; }

Plan lower(const Block& block, const LowerOptions& opts, const StepObserver& on_step) {
  // FUSEBLOCK_DUMP=1 (any value but empty or 0) prints the IR after each step.
  const char* dump_var = std::getenv("FUSEBLOCK_DUMP");
  const bool dump_env = dump_var != nullptr && *dump_var != '\0' && std::string_view(dump_var) != "0";
  auto step = [&](const char* name, const Block& ir) {
    if (on_step) on_step(name, ir);
    if (dump_env) std::fprintf(stderr, "-- after %s:\n%s", name, dump(ir).c_str());
  };

  Plan plan;
  plan.assume_finite = opts.assume_finite;
  const double bound = conv_output_bound(block.storage_dtype());
  const Block shaped = infer_shapes(block);
  step("infer_shapes", shaped);
  plan.exact = infer_ranges(shaped, /*assume_bounded_input=*/false, bound);
  step("infer_ranges", plan.exact);

  Block exact_simplified = plan.exact;
  Block simplified = plan.exact;
  if (opts.simplify) {
    exact_simplified = simplify(plan.exact, bound);
    step("simplify", exact_simplified);
    simplified = exact_simplified;
    // A per-(sample, channel) input is not guarded: its block never takes the guarded fill path.
    if (!has_fill(exact_simplified) && !plan.exact.find(OpKind::Conv)->conv.channel_add) {
      // Try again under the guard's assumption; keep it only if it removes the conv.
      Block bounded = infer_ranges(shaped, /*assume_bounded_input=*/true, bound);
      step("infer_ranges (under guard)", bounded);
      Block guarded = simplify(bounded, bound);
      step("simplify (under guard)", guarded);
      if (has_fill(guarded)) {
        simplified = guarded;
        const Op* fill = guarded.find(OpKind::Fill);
        plan.guard = Guard{bound,
                           fmt::format("for input and parameters finite with |conv output| <= {:g} and "
                                       "|norm weight|, |norm bias| <= {:g}, no value can be NaN and the "
                                       "chain is the constant {:g}",
                                       bound, bound, fill->pw.a)};
      }
    }
    simplified = infer_ranges(eliminate_unused(simplified), simplified.assumes_bounded_input, bound);
    step("eliminate_unused", simplified);
  }
  plan.simplified = simplified;
  plan.pipeline = to_pipeline(plan.exact, simplified);
  if (plan.guard) plan.fallback = to_pipeline(plan.exact, exact_simplified);
  plan.kernels = plan_kernels(plan.pipeline, plan.guard.has_value() && !plan.assume_finite);
  return plan;
}

}  // namespace fuseblock
