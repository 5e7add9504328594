// Inputs the fuzz targets (tests/fuzz, scripts/fuzz.sh) crashed on, replayed as plain tests. Each
// names the target, what it did and the code that fixed it; the same inputs are in the targets'
// seed corpora, so the fuzzers start from them too.
//
// npy_reader (before the iterative header parser): ASan stack-overflow on a header of 60000 '('
// (corpus/npy_reader/nested60000.npy); replayed by Npy.Errors' nesting rows in test_tensor_io.cpp.
#include <string>

#include <gtest/gtest.h>

#include "fuseblock/fuseblock.hpp"
#include "user_error_of.hpp"

using namespace fuseblock;

// planner (on the code before checked sizes): UBSan "signed integer overflow: 141907584 *
// 644294967294" in numel(), from an input shape whose element count overflows int64. Fixed by
// infer_shapes' checked sizes (src/ir/checked.hpp). The fuzzer's input, mode byte dropped; its
// comment line kept the bytes the fuzzer put there.
TEST(FuzzRegressions, PlannerInputShapeElementCountOverflow) {
  const std::string spec =
      "# KernelBench level 2,\xf2\xff\xff\xff problem 83\n"
      "input f32[10218, 3, 16, 64, 644294967296]\n"
      "conv3d out_channels=16 kernel_size=3\n"
      "group_norm num_groups=8 eps=1e-5\n"
      "minimum 0.0\n"
      "clamp min=0.0 max=1.0\n"
      "dropout p=0.2 training=true\n";
  UserError e = user_error_of([&] { lower(parse_spec(spec, "fuzz.block")); }, spec);
  EXPECT_EQ(e.loc().line, 2);
  EXPECT_NE(std::string(e.what()).find("the input would have shape [10218, 3, 16, 64, 644294967296]"), std::string::npos)
      << e.formatted();
}
