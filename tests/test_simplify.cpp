// Simplifier tests as a table of check(chain, expected chain, guarded?): each chain follows
// `input -> conv2d -> group_norm` and the expected text is the planned chain.
#include <cmath>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fuseblock/fuseblock.hpp"

using namespace fuseblock;

namespace {

std::string chain_str(const Pipeline& p) {
  std::string s;
  for (const Op& op : p.chain) {
    if (!s.empty()) s += " -> ";
    s += op_name(op.kind);
    if (op.pw.has_a && op.kind != OpKind::Clamp && op.kind != OpKind::Hardtanh) s += fmt::format("({:g})", op.pw.a);
  }
  return s.empty() ? "identity" : s;
}

enum Guarded { kNoGuard, kGuard };

void check(const std::string& chain, const std::string& expected, Guarded guarded,
           const std::string& norm = "group_norm 2\n") {
  SCOPED_TRACE("chain:\n" + chain);
  Plan p = lower(parse_spec("input f32[2, 3, 6, 6]\nconv2d 4 3\n" + norm + chain, "t.block"));
  EXPECT_EQ(chain_str(p.pipeline), expected);
  EXPECT_EQ(p.guard.has_value(), guarded == kGuard);
  EXPECT_EQ(p.pipeline.fill_path(), expected.rfind("fill", 0) == 0);
  if (p.guard) {
    // The fallback is the exact block: it still computes the conv.
    EXPECT_TRUE(p.fallback.computes_conv);
    EXPECT_TRUE(p.fallback.norm.has_value() == (norm.find("group_norm") != std::string::npos));
  }
}

}  // namespace

TEST(Simplify, Table) {
  // The flagship: min(y, 0) then clamp(0, 1) is 0 for every y that is not NaN.
  check("minimum 0.0\nclamp min=0.0 max=1.0\n", "fill(0)", kGuard);
  check("minimum 0.0\nclamp min=0.0 max=1.0\nadd 3\n", "fill(3)", kGuard);
  check("maximum 2\nminimum 1\n", "fill(1)", kGuard);
  check("clamp min=2 max=1\n", "fill(1)", kGuard);           // min > max gives max
  check("maximum 0.75\nhardtanh min_val=0.25 max_val=0.5\n", "fill(0.5)", kGuard);
  check("sigmoid\nmul 0\n", "fill(0)", kGuard);
  check("relu\nmul 0\n", "fill(0)", kGuard);                  // finite under the guard: 0 * y = 0
  // A NaN bound is NaN for every input: no guard needed.
  check("clamp min=nan\n", "fill(nan)", kNoGuard);
  check("minimum nan\nrelu\n", "fill(nan)", kNoGuard);
  // Chains that do not fold.
  check("minimum 0.5\nclamp min=0.0 max=0.5\n", "minimum(0.5) -> clamp", kNoGuard);
  check("silu\n", "silu", kNoGuard);
  check("gelu\n", "gelu", kNoGuard);
  check("mul 0\n", "fill(0)", kGuard);                        // finite under the guard, so 0 * y = 0
  // Exact identities go, near-identities stay.
  check("mul 1\nsilu\ndiv 1\nsub 0\nadd -0.0\n", "silu", kNoGuard);
  check("add 0\n", "add(0)", kNoGuard);                       // -0 + 0 is +0: not an identity
  check("sub -0.0\n", "sub(-0)", kNoGuard);
  check("clamp max=inf\n", "identity", kNoGuard);           // no value changes, NaN included
  // Identities the ranges prove.
  check("relu\nrelu\n", "relu", kNoGuard);
  check("sigmoid\nclamp min=0 max=1\n", "sigmoid", kNoGuard);
  check("tanh\nmaximum -1\n", "tanh", kNoGuard);
  check("minimum 1\nminimum 2\n", "minimum(1)", kNoGuard);
  check("maximum 1\nmaximum 2\n", "maximum(2)", kNoGuard);
  // eps = 0: a constant group gives 0/0 = NaN, so nothing folds.
  check("minimum 0.0\nclamp min=0.0 max=1.0\n", "minimum(0) -> clamp", kNoGuard, "group_norm 2 eps=0\n");
  // No GroupNorm: the conv output is bounded under the guard just the same.
  check("minimum 0.0\nclamp min=0.0 max=1.0\n", "fill(0)", kGuard, "");
}

TEST(Simplify, DropoutThatIsIdentityIsDropped) {
  Plan p = lower(parse_spec("input f32[2, 3, 6, 6]\nconv2d 4 3\nsilu\ndropout p=0.3 training=false\n"));
  EXPECT_TRUE(p.pipeline.dropout.is_identity());
  EXPECT_EQ(p.simplified.find(OpKind::Dropout), nullptr);
  p = lower(parse_spec("input f32[2, 3, 6, 6]\nconv2d 4 3\nsilu\ndropout p=0\n"));
  EXPECT_TRUE(p.pipeline.dropout.is_identity());
  p = lower(parse_spec("input f32[2, 3, 6, 6]\nconv2d 4 3\nsilu\ndropout p=0.3 seed=5\n"));
  EXPECT_FALSE(p.pipeline.dropout.is_identity());
  EXPECT_EQ(p.pipeline.dropout.seed, 5u);
}

TEST(Simplify, DropoutOfConstantZeroIsDroppedButNotOfOtherConstants) {
  Plan p = lower(parse_spec("input f32[2, 3, 6, 6]\nconv2d 4 3\nminimum 0\nclamp min=0 max=1\ndropout 0.3\n"));
  EXPECT_TRUE(p.pipeline.fill_path());
  EXPECT_TRUE(p.pipeline.dropout.is_identity());
  EXPECT_FALSE(p.fallback.dropout.is_identity());  // the exact path still applies it
  p = lower(parse_spec("input f32[2, 3, 6, 6]\nconv2d 4 3\nminimum 1\nclamp min=1 max=2\ndropout 0.3\n"));
  EXPECT_TRUE(p.pipeline.fill_path());
  EXPECT_FALSE(p.pipeline.dropout.is_identity());  // 1 * mask * scale is not constant
}

TEST(Simplify, FillPathPlanHasGuardAndFallbackKernels) {
  Plan p = lower(parse_spec(kDefaultSpec, "<default>"));
  ASSERT_TRUE(p.pipeline.fill_path());
  ASSERT_TRUE(p.guard.has_value());
  EXPECT_EQ(p.pipeline.output_shape, (Shape{128, 16, 14, 62, 62}));
  EXPECT_EQ(p.simplified.ops.size(), 2u);  // input, fill (dropout of 0 is 0)
  // No dropout mask is left, so the output is a constant: a memset, then the read-only guard.
  ASSERT_GE(p.kernels.size(), 2u);
  EXPECT_EQ(p.kernels[0].name, "fill_memset");
  EXPECT_EQ(p.kernels[1].name, "guard");
  EXPECT_EQ(p.fallback.chain.size(), 2u);  // the exact chain: minimum, clamp
  LowerOptions lo;
  lo.assume_finite = true;
  Plan q = lower(parse_spec(kDefaultSpec, "<default>"), lo);
  ASSERT_EQ(q.kernels.size(), 1u);
  EXPECT_EQ(q.kernels.front().name, "fill_memset");
  // With a mask (1 * mask * scale), one kernel writes the fill and checks the guard.
  Plan m = lower(parse_spec("input f32[2, 3, 6, 6]\nconv2d 4 3\nminimum 1\nclamp min=1 max=2\ndropout 0.3\n"));
  ASSERT_TRUE(m.pipeline.fill_path());
  EXPECT_EQ(m.kernels.front().name, "guard_fill_dropout");
}

TEST(Simplify, NoKernelWritesAnIntermediate) {
  // The seed's rule: the only global writes are the output and O(N*G) scratch.
  for (const char* chain : {"silu\n", "minimum 0\nclamp min=0 max=1\n", "gelu\ndropout 0.2\n"}) {
    Plan p = lower(parse_spec(std::string("input f32[2, 3, 6, 6]\nconv2d 4 3\ngroup_norm 2\n") + chain));
    for (const KernelDesc& k : p.kernels)
      for (const std::string& w : k.writes)
        EXPECT_TRUE(w == "output" || w == "stats" || w == "guard_flags") << k.name << " writes " << w;
  }
}

TEST(InferRanges, ExactAnalysisAllowsNaNEverywhere) {
  Plan p = lower(parse_spec(kDefaultSpec, "<default>"));
  for (const Op& op : p.exact.ops) EXPECT_TRUE(op.range.nan) << op_name(op.kind);
  // Even without the guard, every value that is not NaN is 0: min(y, 0) <= 0, then clamp(0, 1).
  EXPECT_EQ(p.exact.output().range.lo, 0.0);
  EXPECT_EQ(p.exact.output().range.hi, 0.0);
}
