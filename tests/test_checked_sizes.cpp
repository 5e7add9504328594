// Sizes from user input in checked arithmetic (src/ir/checked.hpp): the helper itself, then the
// class of specs whose shape arithmetic overflows int64 (every conv attribute, the input, the
// weight and output tensors), shapes that fit but cannot be allocated, and the spec's limits.
#include <chrono>
#include <climits>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fuseblock/fuseblock.hpp"
#include "ir/checked.hpp"
#include "spec/limits.hpp"
#include "user_error_of.hpp"

using namespace fuseblock;

namespace {

UserError error_of(const std::string& spec) {
  return user_error_of([&] { lower(parse_spec(spec, "t.block")); }, spec);
}

// The error names line:col, the attribute or tensor, and never prints a negative size.
void expect_error(const std::string& spec, int line, int col, const std::string& what_part) {
  SCOPED_TRACE(spec);
  UserError e = error_of(spec);
  EXPECT_EQ(e.loc().line, line) << e.formatted();
  EXPECT_EQ(e.loc().col, col) << e.formatted();
  EXPECT_NE(std::string(e.what()).find(what_part), std::string::npos) << e.formatted();
  EXPECT_EQ(std::string(e.what()).find(" -"), std::string::npos) << "a negative number in: " << e.formatted();
}

const std::string kMax = std::to_string(INT64_MAX);        // 9223372036854775807
const std::string kHalf = std::to_string(INT64_MAX / 2 + 1);  // 2^62
const std::string kQuarter = std::to_string(INT64_C(1) << 61);

}  // namespace

TEST(CheckedInt, DetectsOverflowInEveryOperationAndRemembersIt) {
  EXPECT_EQ((CheckedInt(3) * 4 + 5).get(), 17);
  EXPECT_FALSE((CheckedInt(INT64_MAX) + 1).ok());
  EXPECT_FALSE((CheckedInt(INT64_MIN) - 1).ok());
  EXPECT_FALSE((CheckedInt(INT64_C(1) << 32) * (INT64_C(1) << 31)).ok());
  EXPECT_TRUE((CheckedInt(INT64_C(1) << 31) * (INT64_C(1) << 31)).ok());
  EXPECT_FALSE((CheckedInt(1) / 0).ok());
  EXPECT_FALSE((CheckedInt(INT64_MIN) / -1).ok());
  // Sticky: a later step that would bring the value back in range does not hide the overflow.
  CheckedInt x = (CheckedInt(INT64_MAX) + 1) - 1;
  EXPECT_FALSE(x.ok());
  EXPECT_FALSE((CheckedInt(INT64_MAX) * 2 / 4).ok());
  EXPECT_EQ(x.get(), std::nullopt);
}

TEST(CheckedInt, NumelAndBytes) {
  EXPECT_EQ(checked_numel({}), 1);
  EXPECT_EQ(checked_numel({2, 3, 4}), 24);
  EXPECT_EQ(checked_numel({0, INT64_MAX}), 0);
  EXPECT_EQ(checked_numel({2, -3}), std::nullopt);
  EXPECT_EQ(checked_numel({INT64_C(4294967296), 1, INT64_C(4294967296)}), std::nullopt);
  EXPECT_EQ(checked_nbytes({INT64_C(1) << 61}, 4), std::nullopt);  // fits as a count, not in bytes
  EXPECT_EQ(checked_nbytes({INT64_C(1) << 60}, 4), INT64_C(1) << 62);
  // numel() is for shapes already checked: an overflow there is a bug, not a wrong number.
  EXPECT_THROW(numel({INT64_C(4294967296), 1, INT64_C(4294967296)}), InternalError);
}

TEST(CheckedSizes, OverflowingSpecsAreUserErrorsNamingTheAttribute) {
  // The cases.
  expect_error("input f32[4294967296, 1, 4294967296]\nconv1d 16 3\n", 1, 10, "the input");
  expect_error("input f32[1, 1, 10]\nconv1d 16 3 padding=" + kMax + "\n", 2, 13, "padding=" + kMax);
  expect_error("input f32[1, 1, 10]\nconv1d " + kHalf + " 3\n", 2, 8, "conv.weight");
  // The same class, every attribute.
  expect_error("input f32[1, 1, 10]\nconv1d 16 " + kMax + " dilation=2\n", 2, 31, "dilation=2");
  expect_error("input f32[1, 1, 10]\nconv1d 16 3 dilation=" + kMax + "\n", 2, 13, "dilation=" + kMax);
  expect_error("input f32[1, 1, 10]\nconv1d 16 kernel_size=" + kMax + " padding=" + kHalf + "\n", 2, 43, "padding");
  expect_error("input f32[1, 2, 8, 8, 8]\nconv3d 4 (3, 3, " + kMax + ") padding=(0, 0, 4)\n", 2, 10, "third spatial dim");
  expect_error("input f32[1, 2, 8, 8]\nconv2d 4 3 padding=(1, " + kMax + ")\n", 2, 12, "second spatial dim");
  // Each factor fits; the product does not: the weight (out_channels x in_channels x kernel) ...
  expect_error("input f32[1, 4294967296, 10]\nconv1d 4294967296 1\n", 2, 8, "conv.weight");
  // ... or the output (N x out_channels x spatial).
  expect_error("input f32[1099511627776, 1, 10]\nconv1d 1073741824 1\n", 2, 1, "the conv's output");
  expect_error("input f32[1, 1, 10]\nconv1d 16 1 padding=" + kQuarter + "\n", 2, 1, "the conv's output");
  // The input itself: elements that fit int64, bytes that do not.
  expect_error("input f32[2305843009213693952, 1, 1]\nconv1d 1 1\n", 1, 10, "the input");
  // Huge num_groups and channel counts are plain shape errors, not crashes.
  expect_error("input f32[1, 1, 10]\nconv1d 16 3\ngroup_norm " + kMax + "\n", 3, 12, "cannot be split");
}

TEST(CheckedSizes, HugeButValidAttributesGiveTheRightShape) {
  // stride near INT64_MAX: one output position, as PyTorch computes it.
  Plan p = lower(parse_spec("input f32[1, 1, 10]\nconv1d 2 3 stride=" + kMax + " padding=1\n"));
  EXPECT_EQ(p.pipeline.output_shape, (Shape{1, 2, 1}));
  // Padding far past the input but with an output that fits: (10 + 2p - 3) / s + 1.
  p = lower(parse_spec("input f32[1, 1, 10]\nconv1d 2 3 stride=" + kHalf + " padding=" + kQuarter + "\n"));
  EXPECT_EQ(p.pipeline.output_shape, (Shape{1, 2, 2}));
}

TEST(CheckedSizes, ShapesThatFitButCannotBeAllocatedAreUserErrors) {
  try {
    Tensor t(Shape{INT64_C(1) << 20, INT64_C(1) << 20, INT64_C(1) << 20});  // 4 EB
    FAIL() << "allocated " << t.numel() << " floats";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("[1048576, 1048576, 1048576]"), std::string::npos) << e.what();
  }
  // Through the library: planning a huge block is fine (explain works), running it is a UserError.
  Plan p = lower(parse_spec("input f32[100000, 10000, 100000]\nconv1d 4 1\n"));  // 400 TB
  EXPECT_EQ(p.pipeline.output_shape, (Shape{100000, 4, 100000}));
  EXPECT_THROW(init_params(p.pipeline, 0); Tensor x(p.pipeline.input_shape), UserError);
}

TEST(SpecLimits, SpecLengthIsLimited) {
  std::string spec = "input f32[1, 1, 8]\nconv1d 1 1\n";
  spec += std::string(spec::kMaxSpecBytes - spec.size(), '#');  // exactly at the limit: fine
  EXPECT_NO_THROW(parse_spec(spec));
  spec += "\n";
  try {
    parse_spec(spec);
    FAIL() << "a spec over the limit parsed";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(spec::kMaxSpecBytes)), std::string::npos) << e.what();
  }
}

TEST(SpecLimits, OpCountIsLimitedAndNamesTheLine) {
  std::string spec = "input f32[1, 1, 8]\nconv1d 1 1\n";
  for (size_t i = 2; i < spec::kMaxOps; ++i) spec += "silu\n";
  EXPECT_EQ(parse_spec(spec).ops.size(), spec::kMaxOps);
  spec += "params seed=3\n";  // not an op
  EXPECT_EQ(parse_spec(spec).ops.size(), spec::kMaxOps);
  expect_error(spec + "relu\n", static_cast<int>(spec::kMaxOps) + 2, 1, std::to_string(spec::kMaxOps));
}

// Planning is linear in the chain: a chain that simplifies op by op (each relu after the first is
// an identity the ranges prove) used to re-run range inference after every rewrite, and stopped
// after 1000 rewrites. Built without the parser, to go past the spec's op limit.
TEST(SpecLimits, PlanningALongChainIsLinear) {
  Block b = parse_spec("input f32[1, 1, 8]\nconv1d 1 1\nrelu\n");
  const Op relu = b.ops.back();
  b.ops.insert(b.ops.end(), 49999, relu);
  const auto t0 = std::chrono::steady_clock::now();
  Plan p = lower(b);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(p.pipeline.chain.size(), 1u);
  EXPECT_EQ(p.pipeline.chain[0].kind, OpKind::Relu);
  EXPECT_LT(s, 10.0) << "50000 ops took " << s << " s to plan";  // quadratic: minutes
}

// An input shape that bypasses the parser (the Python API's input_shape, a Block built in C++)
// is checked by infer_shapes all the same: a UserError, not numel()'s internal assertion.
TEST(CheckedSizes, InputShapeOverridesAreChecked) {
  Block b = parse_spec("input f32[2, 3, 8]\nconv1d 4 3\n");
  for (const Shape& bad : {Shape{2, -3, 8}, Shape{-1, 3, 8}, Shape{INT64_C(4294967296), 3, INT64_C(4294967296)}}) {
    b.ops.front().shape = bad;
    UserError e = user_error_of([&] { lower(b); }, shape_str(bad));
    EXPECT_NE(std::string(e.what()).find(shape_str(bad)), std::string::npos) << e.what();
  }
}
