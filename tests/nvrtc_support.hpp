// Skipping a CPU-suite test where NVRTC cannot be loaded (its kernels compile without a GPU, but
// not without the library).
#pragma once
#include <gtest/gtest.h>

#include <exception>
#include <string>

#include "cuda/runtime/nvrtc_compile.hpp"

namespace fbtest {

inline bool have_nvrtc(std::string* why) {
  try {
    fuseblock::cuda::nvrtc_version_string();
    return true;
  } catch (const std::exception& e) {
    *why = e.what();
    return false;
  }
}

}  // namespace fbtest

#define REQUIRE_NVRTC()                                                         \
  do {                                                                          \
    std::string why_;                                                           \
    if (!::fbtest::have_nvrtc(&why_)) GTEST_SKIP() << "no NVRTC: " << why_;     \
  } while (0)
