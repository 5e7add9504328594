// The type names the CUDA emitters take from the dtype table (codegen/element_types.hpp).
#include <gtest/gtest.h>

#include "cuda/codegen/element_types.hpp"

using namespace fuseblock;

TEST(EmittedTypes, FromTheDtypeTable) {
  ElementTypes t;
  cuda::EmittedTypes e = cuda::emitted_types(t);
  EXPECT_EQ(e.storage, "float");
  EXPECT_EQ(e.pack, "float4");
  EXPECT_EQ(e.pack_elems, 4);
  EXPECT_EQ(e.compute, "float");
  for (DType d : {DType::BF16, DType::F16}) {
    t.storage = d;
    e = cuda::emitted_types(t);
    EXPECT_EQ(e.storage, dtype_info(d).c_type);
    EXPECT_EQ(e.pack, "uint4") << "16 raw bytes: CUDA has no 8-wide vector of " << e.storage;
    EXPECT_EQ(e.pack_elems, 8);
    EXPECT_EQ(e.compute, "float") << "half storage computes in float, as PyTorch's opmath";
  }
}
