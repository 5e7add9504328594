// Spec text -> Block: any bytes give a Block or a UserError.
#include <string_view>

#include "fuseblock/fuseblock.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_user_errors([&] {
    fuseblock::Block b = fuseblock::parse_spec(text, "fuzz.block");
    (void)fuseblock::dump(b);
  });
  return 0;
}
