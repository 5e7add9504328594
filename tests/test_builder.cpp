// The C++ builder gives the same IR as the spec text, and the same errors.
#include <cmath>

#include <gtest/gtest.h>

#include "fuseblock/builder.hpp"
#include "fuseblock/fuseblock.hpp"

using namespace fuseblock;

TEST(Builder, DefaultBlockEqualsTheEmbeddedSpec) {
  Block built = BlockBuilder({128, 3, 16, 64, 64}).conv(3, 16, 3).group_norm(8, 1e-5).minimum(0.0).clamp(0.0, 1.0).dropout(0.2).build();
  Block parsed = parse_spec(kDefaultSpec, "<default>");
  Plan a = lower(built), b = lower(parsed);
  EXPECT_EQ(dump(a.exact), dump(b.exact));
  EXPECT_EQ(dump(a), dump(b));
}

TEST(Builder, EveryOpRoundTripsItsScalars) {
  Block b = BlockBuilder({2, 3, 9})
                .conv(1, 4, 3, {.stride = 2, .padding = 1, .dilation = 1, .bias = false})
                .group_norm(2, 1e-3, false)
                .minimum(0.1).maximum(-0.3).clamp(std::nullopt, 2.5).relu().leaky_relu(0.2).gelu(true).silu()
                .sigmoid().tanh().mish().hardswish().hardtanh(-2, 2).softplus(2, 10).add(1e-7).sub(-0.0).mul(3)
                .div(7).dropout(0.25, false, 3, 4)
                .build();
  ASSERT_EQ(b.ops.size(), 21u);
  EXPECT_DOUBLE_EQ(b.ops[3].pw.a, 0.1);
  EXPECT_DOUBLE_EQ(b.ops[16].pw.a, 1e-7);
  EXPECT_TRUE(std::signbit(b.ops[17].pw.a));
  EXPECT_FALSE(b.ops[5].pw.has_a);
  EXPECT_EQ(b.ops[1].conv.stride[0], 2);
  EXPECT_FALSE(b.ops[1].conv.bias);
  EXPECT_EQ(b.ops[20].dropout.offset, 4u);
  EXPECT_EQ(spec_number(std::nan("")), "nan");
  EXPECT_EQ(spec_number(-INFINITY), "-inf");
}

TEST(Builder, ErrorsPointAtTheCall) {
  try {
    lower(BlockBuilder({2, 3, 8, 8}).conv(2, 16, 3).group_norm(5).build());
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_EQ(e.loc().line, 3) << e.formatted();  // the third call
    EXPECT_NE(e.formatted().find("<builder>:3:"), std::string::npos) << e.formatted();
  }
  EXPECT_THROW(BlockBuilder({2, 3, 8, 8}).conv(2, 4, 3).dropout(1.5).build(), UserError);
  EXPECT_THROW(BlockBuilder({2, 3, 8, 8}).relu().build(), UserError);
}

TEST(Builder, AddPerSampleChannelMarksTheConv) {
  const Block b = BlockBuilder({2, 3, 9}).conv(1, 4, 3).add_per_sample_channel().group_norm(2).build();
  const Op* conv = b.find(OpKind::Conv);
  ASSERT_NE(conv, nullptr);
  EXPECT_TRUE(conv->conv.channel_add);
  EXPECT_EQ(b.ops.size(), 3u);  // input, conv, group_norm: the add is not an op of its own
}

// The builder makes every block the spec text does: prelu (MONAI's activation) and bf16/f16
// blocks had no call, so C++ users had to write spec text for them.
TEST(Builder, PreluAndHalfPrecisionBlocks) {
  const Block b = BlockBuilder({2, 3, 9}, DType::BF16).conv(1, 4, 3).instance_norm().prelu(4, 0.1).prelu().build();
  const Block p = parse_spec("input bf16[2, 3, 9]\nconv1d 4 3\ninstance_norm\nprelu num_parameters=4 init=0.1\nprelu\n");
  EXPECT_EQ(b.ops.front().dtype, DType::BF16);
  Plan a = lower(b), c = lower(p);
  EXPECT_EQ(dump(a), dump(c));
  const Params pa = init_params(a.pipeline, 0);
  ASSERT_EQ(pa.prelu_weight.size(), 2u);
  EXPECT_EQ(pa.prelu_weight[0].numel(), 4);
  EXPECT_FLOAT_EQ(pa.prelu_weight[0].data()[0], rounded_to(Tensor({1}, 0.1f), DType::BF16).data()[0]);
  EXPECT_FLOAT_EQ(pa.prelu_weight[1].data()[0], 0.25f);
  EXPECT_EQ(BlockBuilder({1, 1, 4}, DType::F16).conv(1, 1, 3).build().ops.front().dtype, DType::F16);
  EXPECT_THROW(lower(BlockBuilder({2, 3, 9}).conv(1, 4, 3).prelu(3).build()), UserError);
}
