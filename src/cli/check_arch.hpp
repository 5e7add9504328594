// `verify --arch`: checked before the block is compiled for it, so that a name NVRTC cannot
// compile for is the user's error naming valid ones, not NVRTC's option error as an internal
// error with pages of emitted source.
#pragma once
#include <string>

namespace fuseblock::cli {

// A UserError unless `arch` reads sm_<number>[a|f] and this NVRTC compiles an empty kernel for it.
void check_arch(const std::string& arch);

}  // namespace fuseblock::cli
