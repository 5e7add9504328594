// Two kinds of error, as in Halide: a UserError is the caller's to fix (a bad spec, a bad tensor
// file, an unsupported option) and carries where it happened and a hint; an InternalError is a
// broken invariant inside fuseblock and is a bug to report.
#pragma once
#include <stdexcept>
#include <string>

namespace fuseblock {

// 1-based line and column in a block spec; line 0 means "not from a spec" (C++ builder, files).
struct SourceLoc {
  int line = 0;
  int col = 0;
  bool known() const { return line > 0; }
};

class UserError : public std::runtime_error {
 public:
  UserError(std::string what, std::string hint = {}, SourceLoc loc = {}, std::string source_name = {});
  const std::string& hint() const { return hint_; }
  SourceLoc loc() const { return loc_; }
  // "spec.block:3:14: error: ...\n  hint: ..." — the one line a user sees.
  std::string formatted() const;

 private:
  std::string hint_;
  SourceLoc loc_;
  std::string source_name_;
};

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Checks an invariant that no user input can break.
#define FB_ASSERT(cond, msg)                                                              \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw ::fuseblock::InternalError(std::string(__FILE__) + ":" + std::to_string(__LINE__) + \
                                       ": internal invariant failed: " #cond ": " + (msg)); \
  } while (0)

}  // namespace fuseblock
