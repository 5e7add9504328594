// Text of the device-common headers (philox.h, pointwise_math.h), embedded at build time by
// cmake/embed.cmake, for pasting into NVRTC programs. nullptr for an unknown name.
#pragma once
#include <string_view>

namespace fuseblock {
const char* embedded_source(std::string_view name);
}
