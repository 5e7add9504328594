// $FUSEBLOCK_CUDA_DEVICE is read strictly: a value that is not a device ordinal is an error naming
// the variable, never device 0 (std::atoi read "cuda:1" and "abc" as 0, "1x" as 1).
#include <gtest/gtest.h>

#include "cuda/runtime/device_context.hpp"
#include "fuseblock/error.hpp"

using namespace fuseblock;

TEST(DeviceOrdinal, UnsetOrEmptyIsDeviceZero) {
  EXPECT_EQ(cuda::device_ordinal_from_env(nullptr), 0);
  EXPECT_EQ(cuda::device_ordinal_from_env(""), 0);
}

TEST(DeviceOrdinal, DigitsAreTheOrdinal) {
  EXPECT_EQ(cuda::device_ordinal_from_env("0"), 0);
  EXPECT_EQ(cuda::device_ordinal_from_env("1"), 1);
  EXPECT_EQ(cuda::device_ordinal_from_env("7"), 7);
}

TEST(DeviceOrdinal, AnythingElseIsAUserErrorNamingTheVariable) {
  for (const char* v : {"cuda:1", "abc", "1x", "-1", " 1", "1.5", "99999999999"}) {
    try {
      cuda::device_ordinal_from_env(v);
      ADD_FAILURE() << v << " was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(e.formatted().find("FUSEBLOCK_CUDA_DEVICE"), std::string::npos) << e.formatted();
      EXPECT_NE(e.formatted().find(v), std::string::npos) << e.formatted();
    }
  }
}
