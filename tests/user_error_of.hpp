// The UserError that a piece of code throws, for tests of bad input. Throwing nothing, or an
// error of another kind (InternalError, std::bad_alloc, ...), fails the test: bad input must
// come back as the caller's error to fix.
#pragma once
#include <exception>
#include <string>

#include <gtest/gtest.h>

#include "fuseblock/error.hpp"

template <class F>
fuseblock::UserError user_error_of(F&& f, const std::string& input) {
  try {
    f();
  } catch (const fuseblock::UserError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a UserError: " << e.what() << "\ninput:\n" << input;
    return fuseblock::UserError("wrong kind of error");
  }
  ADD_FAILURE() << "no error for input:\n" << input;
  return fuseblock::UserError("no error");
}
