// User errors (include/fuseblock/error.hpp).
#include "fuseblock/error.hpp"

#include <utility>

namespace fuseblock {

UserError::UserError(std::string what, std::string hint, SourceLoc loc, std::string source_name)
    : std::runtime_error(std::move(what)),
      hint_(std::move(hint)),
      loc_(loc),
      source_name_(std::move(source_name)) {}

std::string UserError::formatted() const {
  std::string out;
  // Appended piece by piece: GCC 12 gives a false -Wrestrict warning on long `a + b + ...` chains.
  if (loc_.known()) {
    out.append(source_name_.empty() ? "<spec>" : source_name_);
    out.append(":").append(std::to_string(loc_.line));
    out.append(":").append(std::to_string(loc_.col));
    out.append(": ");
  }
  out.append("error: ").append(what());
  if (!hint_.empty()) out.append("\n  hint: ").append(hint_);
  return out;
}

}  // namespace fuseblock
