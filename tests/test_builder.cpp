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
