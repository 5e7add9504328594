// What every fuzz target shares: the rule that bad input may only ever raise a UserError (any
// other exception escaping is a finding, like a crash), and an in-memory file for the readers,
// which take paths.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "fuseblock/error.hpp"

namespace fuzz {

// Runs f; a UserError is the expected answer to bad input, anything else aborts with its text.
template <class F>
void expect_only_user_errors(F&& f) {
  try {
    f();
  } catch (const fuseblock::UserError&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: bad input raised something other than a UserError: %s\n", e.what());
    std::abort();
  }
}

// The bytes as a file in memory (memfd), named by a /proc/self/fd path; closed on destruction.
class MemoryFile {
 public:
  MemoryFile(const uint8_t* data, size_t size) : fd_(::memfd_create("fuzz-input", MFD_CLOEXEC)) {
    if (fd_ < 0 || ::write(fd_, data, size) != static_cast<ssize_t>(size)) std::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemoryFile() { ::close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace fuzz
