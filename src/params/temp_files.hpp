// Temporary files that must not outlive an interrupted process: write_file_atomically registers
// the file it is filling, and the CLI installs handlers that remove every registered file on
// SIGINT, SIGTERM or SIGHUP, then let the signal end the process as it would have. (An
// interrupted `run --output` used to leave a hidden temporary file of hundreds of MB.)
#pragma once
#include <string>

namespace fuseblock::detail {

// Registers `path` for removal on those signals while this object lives. Best effort: a
// process has room for a few at a time (one per file being written), and a path too long to
// hold is not registered.
class TempFileRegistration {
 public:
  explicit TempFileRegistration(const std::string& path);
  ~TempFileRegistration();
  TempFileRegistration(const TempFileRegistration&) = delete;
  TempFileRegistration& operator=(const TempFileRegistration&) = delete;

 private:
  int slot_ = -1;
};

// A fresh, unique name in `dir` for a temporary file: `.fuseblock-tmp-` then the process id, a
// counter and random bits. write_file_atomically registers it BEFORE creating the file (O_EXCL):
// a signal may arrive on any thread (OpenMP's workers too), so no mask can cover a gap between
// creating a file and registering it; registered first, there is no gap.
std::string unique_temp_name(const std::string& dir);

// Installs the handlers (once per process; the CLI calls it, a library user may).
void remove_temp_files_on_signals();

}  // namespace fuseblock::detail
