// Parser and shape-rule tests: good specs give the IR we expect; bad ones give a UserError that
// names line:col, says what is wrong and hints at the fix.
#include <cmath>

#include <gtest/gtest.h>

#include "fuseblock/builder.hpp"
#include "fuseblock/fuseblock.hpp"

using namespace fuseblock;

namespace {

// Parses and runs infer_shapes (through lower); returns the error, or fails if there is none.
UserError error_of(const std::string& spec) {
  try {
    lower(parse_spec(spec, "t.block"));
  } catch (const UserError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for spec:\n" << spec;
  return UserError("none");
}

void expect_error(const std::string& spec, int line, int col, const std::string& what_part, const std::string& hint_part = "") {
  UserError e = error_of(spec);
  EXPECT_EQ(e.loc().line, line) << e.formatted();
  EXPECT_EQ(e.loc().col, col) << e.formatted();
  EXPECT_NE(std::string(e.what()).find(what_part), std::string::npos) << e.formatted();
  if (!hint_part.empty()) EXPECT_NE(e.hint().find(hint_part), std::string::npos) << e.formatted();
  EXPECT_NE(e.formatted().find("t.block:" + std::to_string(line) + ":" + std::to_string(col)), std::string::npos)
      << e.formatted();
}

const char* kHead = "input f32[2, 3, 8, 8]\nconv2d out_channels=4 kernel_size=3\n";

}  // namespace

TEST(SpecParse, DefaultSpecParsesToProblem83) {
  Block b = parse_spec(kDefaultSpec, "<default>");
  ASSERT_EQ(b.ops.size(), 6u);
  EXPECT_EQ(b.ops[0].shape, (Shape{128, 3, 16, 64, 64}));
  EXPECT_EQ(b.ops[1].kind, OpKind::Conv);
  EXPECT_EQ(b.ops[1].conv.dims, 3);
  EXPECT_EQ(b.ops[1].conv.out_channels, 16);
  EXPECT_EQ(b.ops[1].conv.kernel, (std::array<int64_t, 3>{3, 3, 3}));
  EXPECT_EQ(b.ops[2].norm.num_groups, 8);
  EXPECT_DOUBLE_EQ(b.ops[2].norm.eps, 1e-5);
  EXPECT_EQ(b.ops[3].kind, OpKind::Minimum);
  EXPECT_EQ(b.ops[4].kind, OpKind::Clamp);
  EXPECT_TRUE(b.ops[4].pw.has_a && b.ops[4].pw.has_b);
  EXPECT_EQ(b.ops[5].kind, OpKind::Dropout);
  EXPECT_DOUBLE_EQ(b.ops[5].dropout.p, 0.2);
  Plan p = lower(b);
  EXPECT_EQ(p.pipeline.output_shape, (Shape{128, 16, 14, 62, 62}));
}

TEST(SpecParse, TuplesPositionalAndComments) {
  Block b = parse_spec(
      "# a comment line\n"
      "input f32[1, 2, 5, 7, 9]   # trailing comment\n"
      "conv3d 6 (1, 3, 3) stride=[1, 2, 2] padding=(0, 1, 1) dilation=1 bias=false\n"
      "group_norm 3 eps=1e-3 affine=false\n"
      "leaky_relu 0.2\n"
      "gelu approximate=tanh\n"
      "clamp max=-inf\n"
      "softplus beta=2 threshold=10\n"
      "dropout 0.1 training=false seed=7 offset=3\n",
      "t.block");
  const ConvAttrs& c = b.ops[1].conv;
  EXPECT_EQ(c.out_channels, 6);
  EXPECT_EQ(c.kernel, (std::array<int64_t, 3>{1, 3, 3}));
  EXPECT_EQ(c.stride, (std::array<int64_t, 3>{1, 2, 2}));
  EXPECT_EQ(c.padding, (std::array<int64_t, 3>{0, 1, 1}));
  EXPECT_FALSE(c.bias);
  EXPECT_FALSE(b.ops[2].norm.affine);
  EXPECT_FLOAT_EQ(b.ops[3].pw.a, 0.2f);
  EXPECT_TRUE(b.ops[4].pw.tanh_approx);
  EXPECT_FALSE(b.ops[5].pw.has_a);
  EXPECT_TRUE(std::isinf(b.ops[5].pw.b) && b.ops[5].pw.b < 0);
  EXPECT_EQ(b.ops[7].dropout.seed, 7u);
  EXPECT_EQ(b.ops[7].dropout.offset, 3u);
  EXPECT_FALSE(b.ops[7].dropout.training);
  Plan p = lower(b);
  EXPECT_EQ(p.pipeline.output_shape, (Shape{1, 6, 5, 4, 5}));
}

TEST(SpecParse, ConvOutputSizesFollowPyTorchFormula) {
  // floor((L + 2p - d(k-1) - 1) / s) + 1, per spatial dim
  Plan p = lower(parse_spec("input f32[3, 2, 17]\nconv1d 5 kernel_size=4 stride=3 padding=2 dilation=2\n"));
  EXPECT_EQ(p.pipeline.output_shape, (Shape{3, 5, (17 + 4 - 2 * 3 - 1) / 3 + 1}));
}

TEST(SpecErrors, GroupsMustDivideChannels) {
  expect_error("input f32[2, 3, 8, 8]\nconv2d out_channels=16 kernel_size=3\ngroup_norm num_groups=5\n", 3, 12,
               "16 channels cannot be split into 5 groups", "num_groups must divide");
}

TEST(SpecErrors, Table) {
  struct Case { std::string spec; int line, col; std::string what; };
  const std::vector<Case> cases = {
      {"", 1, 1, "the spec is empty"},
      {"conv2d 4 3\n", 1, 1, "must start with its input"},
      {"input f32[2, 3, 8, 8]\n", 1, 1, "no convolution"},
      {"input f64[2, 3, 8, 8]\n", 1, 7, "unknown dtype"},
      {"input bf16[2, 3, 8, 8]\n", 1, 1, "no convolution"},  // a known dtype: the next problem is reported
      {"input f32[2, 3, x, 8]\n", 1, 17, "non-negative integer"},
      {"input f32[2, 3, 8, 8\n", 1, 10, "never closed"},
      {std::string(kHead) + "conv4d 3 3\n", 3, 1, "unknown op 'conv4d'"},
      {std::string(kHead) + "group_norm num_group=2\n", 3, 12, "no argument 'num_group'"},
      {std::string(kHead) + "group_norm\n", 3, 1, "needs the argument 'num_groups'"},
      {std::string(kHead) + "group_norm 0\n", 3, 12, "num_groups must be positive"},
      {std::string(kHead) + "group_norm 2 eps=abc\n", 3, 18, "expects a number"},
      {std::string(kHead) + "group_norm 2 eps=-1\n", 3, 14, "eps must be >= 0"},
      {std::string(kHead) + "group_norm 2 num_channels=5\n", 3, 14, "num_channels=5 but the conv gives 4"},
      // F.group_norm: one value per group over the whole batch (N=1, C=G, one spatial element).
      {"input f32[1, 3, 3, 3]\nconv2d 4 3\ngroup_norm 4\n", 3, 1, "more than 1 value per channel group"},
      {std::string(kHead) + "dropout p=1.5\n", 3, 9, "between 0 and 1"},
      {std::string(kHead) + "dropout p=-0.1\n", 3, 9, "between 0 and 1"},
      {std::string(kHead) + "dropout p=nan\n", 3, 9, "between 0 and 1"},
      {std::string(kHead) + "dropout 0.2\ngroup_norm 2\n", 4, 1, "group_norm must come right after the convolution"},
      {std::string(kHead) + "dropout 0.2\nrelu\ndropout 0.3\n", 5, 1, "same seed and offset as the dropout on line 3"},
      {std::string(kHead) + "dropout seed=4 offset=1\ndropout 0.1 offset=1 seed=4\n", 4, 1, "would draw the same mask"},
      {std::string(kHead) + "relu\ngroup_norm 2\n", 4, 1, "right after the convolution"},
      {std::string(kHead) + "clamp\n", 3, 1, "at least one of min and max"},
      {std::string(kHead) + "minimum 0 1\n", 3, 11, "takes 1 positional argument"},
      {std::string(kHead) + "minimum other=1 other=2\n", 3, 17, "given twice"},
      {std::string(kHead) + "gelu approximate=fast\n", 3, 6, "not one of none, tanh"},
      {std::string(kHead) + "relu $\n", 3, 6, "unexpected character"},
      {"input f32[2, 3, 8, 8]\nconv3d 4 3\n", 1, 10, "conv3d expects a 5-dimensional input"},
      {"input f32[2, 3, 8, 8]\nconv2d 4 kernel_size=(3, 3, 3)\n", 2, 10, "has 3 entries"},
      {"input f32[2, 3, 8, 8]\nconv2d 4 kernel_size=9\n", 2, 10, "the kernel spans 9"},
      {"input f32[2, 3, 8, 8]\nconv2d 4 3 stride=0\n", 2, 12, "stride must be >= 1"},
      {"input f32[2, 3, 8, 8]\nconv2d 4 3 in_channels=5\n", 2, 12, "in_channels=5"},
      {"input f32[2, 3, 8, 8]\nconv2d 4 3 groups=2\n", 2, 12, "grouped convolution"},
      {"input f32[2, 3, 8, 8]\nconv2d 0 3\n", 2, 8, "out_channels must be positive"},
      {"input f32[2, 3, 8, 8]\ninput f32[2, 3, 8, 8]\n", 2, 1, "declared twice"},
      {"input f32[2, 3, 8, 8]\nconv2d 4 3\nconv2d 4 3\n", 3, 1, "exactly one convolution"},
      {"input f32[2, 3, 8, 8]\nparams seed=1 file=a.safetensors\nconv2d 4 3\n", 2, 15, "not both"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("spec:\n" + c.spec);
    expect_error(c.spec, c.line, c.col, c.what);
  }
}

TEST(SpecErrors, SuggestsTheNearestName) {
  UserError e = error_of(std::string(kHead) + "group_nrom 2\n");
  EXPECT_NE(e.hint().find("group_norm"), std::string::npos) << e.formatted();
  e = error_of(std::string(kHead) + "dropout prob=0.1\n");
  EXPECT_NE(e.formatted().find("usage: dropout"), std::string::npos) << e.formatted();
}

TEST(SpecParse, DumpListsEveryOp) {
  Plan p = lower(parse_spec(kDefaultSpec, "<default>"));
  std::string d = dump(p.exact);
  for (const char* word : {"conv3d", "group_norm", "minimum", "clamp", "dropout", "[128, 16, 14, 62, 62]"})
    EXPECT_NE(d.find(word), std::string::npos) << word << " missing from\n" << d;
}

TEST(SpecParse, InputDtypes) {
  for (const auto& [word, dtype] : std::vector<std::pair<std::string, DType>>{
           {"f32", DType::F32}, {"float32", DType::F32}, {"bf16", DType::BF16}, {"bfloat16", DType::BF16},
           {"f16", DType::F16}, {"float16", DType::F16}}) {
    SCOPED_TRACE(word);
    const Plan p = lower(parse_spec("input " + word + "[2, 3, 8, 8]\nconv2d 4 3\ngroup_norm 2\nsilu\ndropout 0.1\n"));
    for (const Op& op : p.exact.ops) EXPECT_EQ(op.dtype, dtype) << op_name(op.kind);
    EXPECT_EQ(p.pipeline.types.storage, dtype);
    EXPECT_EQ(p.pipeline.types.compute, DType::F32);
    EXPECT_EQ(p.pipeline.types.accumulation, DType::F32);
    // The IR dump and the plan name the type.
    const std::string name = dtype_name(dtype);
    EXPECT_NE(dump(p.exact).find("input " + name), std::string::npos) << dump(p.exact);
    EXPECT_NE(dump(p.exact).find(": " + name + "[2, 4, 6, 6]"), std::string::npos) << dump(p.exact);
    EXPECT_NE(dump(p).find("types: storage " + name + ", compute f32, accumulation f32"), std::string::npos) << dump(p);
  }
}

TEST(SpecParse, BadDtypesSuggestAGoodOne) {
  expect_error("input f64[2, 3, 8, 8]\nconv2d 4 3\n", 1, 7, "unknown dtype 'f64'", "did you mean 'f32'?");
  expect_error("input bfloat[2, 3, 8, 8]\nconv2d 4 3\n", 1, 7, "unknown dtype 'bfloat'", "did you mean 'bfloat16'?");
  expect_error("input int8[2, 3, 8, 8]\nconv2d 4 3\n", 1, 7, "the dtypes are f32, bf16, f16");
  expect_error("input [2, 3, 8, 8]\nconv2d 4 3\n", 1, 1, "input needs a dtype and shape");
}

// Dropout's seed and offset and the params seed are unsigned 64-bit, as in the C++ IR, the
// Python API and `run --seed`: the spec refused 2^63 and above ("does not fit in a 64-bit
// integer (at most 9223372036854775807)"), so BlockBuilder::dropout(p, true, UINT64_MAX) threw.
TEST(SpecParse, SeedsAndOffsetsAreUnsigned64Bit) {
  const Block b = parse_spec(std::string(kHead) +
                             "dropout p=0.2 seed=18446744073709551615 offset=9223372036854775808\n"
                             "params seed=18446744073709551615\n");
  EXPECT_EQ(b.ops[2].dropout.seed, UINT64_MAX);
  EXPECT_EQ(b.ops[2].dropout.offset, uint64_t{1} << 63);
  EXPECT_EQ(b.params.init_seed, UINT64_MAX);
  const Block built = BlockBuilder({2, 3, 8, 8}).conv(2, 4, 3).dropout(0.2, true, UINT64_MAX, UINT64_MAX).build();
  EXPECT_EQ(built.ops[2].dropout.seed, UINT64_MAX);
  EXPECT_EQ(built.ops[2].dropout.offset, UINT64_MAX);
  for (const char* bad : {"dropout seed=18446744073709551616\n", "params seed=18446744073709551616\n"}) {
    try {
      parse_spec(std::string(kHead) + bad);
      ADD_FAILURE() << bad;
    } catch (const UserError& e) {
      EXPECT_NE(e.formatted().find("at most 18446744073709551615"), std::string::npos) << e.formatted();
    }
  }
  for (const char* bad : {"dropout seed=-1\n", "dropout offset=-3\n", "params seed=-1\n"})
    EXPECT_THROW(parse_spec(std::string(kHead) + bad), UserError) << bad;
  EXPECT_THROW(parse_spec(std::string(kHead) + "dropout seed=1.5\n"), UserError);
}
