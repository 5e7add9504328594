// Temporary files that must not outlive an interrupted process: write_file_atomically registers
// the file it is filling, and the CLI installs handlers that remove every registered file on
// SIGINT, SIGTERM or SIGHUP, then let the signal end the process as it would have. (An
// interrupted `run --output` used to leave a hidden temporary file of hundreds of MB.)
#pragma once
#include <signal.h>

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

// Holds SIGINT, SIGTERM and SIGHUP back while it lives (this thread), then lets a pending one
// through. Creating a temporary file and registering it happen under one: a signal between the
// two would otherwise leave the file behind.
class SignalsHeld {
 public:
  SignalsHeld();
  ~SignalsHeld();
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;

 private:
  sigset_t previous_;
};

// Installs the handlers (once per process; the CLI calls it, a library user may).
void remove_temp_files_on_signals();

}  // namespace fuseblock::detail
