// Spec text -> lower() -> Plan, with and without the guard's assumption and simplification: any
// text that parses plans or gives a UserError. The plan is printed (explain's text) but nothing
// is allocated for it, so huge shapes are fair game.
#include <string_view>

#include "fuseblock/fuseblock.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];  // the first byte picks the options, the rest is the spec
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  fuzz::expect_only_user_errors([&] {
    fuseblock::LowerOptions o;
    o.assume_finite = mode & 1;
    o.simplify = !(mode & 2);
    fuseblock::Plan plan = fuseblock::lower(fuseblock::parse_spec(text, "fuzz.block"), o,
                                            [](const std::string&, const fuseblock::Block& ir) { (void)fuseblock::dump(ir); });
    (void)fuseblock::dump(plan);
  });
  return 0;
}
