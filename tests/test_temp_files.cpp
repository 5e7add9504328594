// Temporary files removed when the process is interrupted (src/params/temp_files.hpp): the
// registry in a forked child, then the CLI killed while it writes its --output.
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "params/temp_files.hpp"

namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& tag) {
  fs::path d = fs::path(::testing::TempDir()) / ("fb_tmpfiles_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

bool has_temp_file(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(".fuseblock-tmp-", 0) == 0) return true;
  return false;
}

}  // namespace

TEST(TempFiles, SignalRemovesRegisteredFilesAndStillEndsTheProcess) {
  const fs::path dir = fresh_dir("registry");
  const std::string registered = (dir / "registered").string(), released = (dir / "released").string(),
                    unrelated = (dir / "unrelated").string();
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    for (const std::string& p : {registered, released, unrelated}) std::ofstream(p) << "x";
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      fuseblock::detail::remove_temp_files_on_signals();
      { fuseblock::detail::TempFileRegistration done(released); }  // released before the signal
      fuseblock::detail::TempFileRegistration live(registered);
      ::raise(sig);
      ::_exit(0);  // not reached: the signal ends the process
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "signal " << sig << ", status " << status;
    EXPECT_FALSE(fs::exists(registered)) << "signal " << sig;
    EXPECT_TRUE(fs::exists(released)) << "signal " << sig;
    EXPECT_TRUE(fs::exists(unrelated)) << "signal " << sig;
  }
  fs::remove_all(dir);
}

// The CLI interrupted while it writes a ~110 MB output: inotify says when the temporary file
// appears; SIGINT then must leave neither it nor a partial output behind. On a loaded machine the
// run may finish writing before the signal lands (a complete output, exit 0): that attempt proves
// nothing, so it is made again (up to 5 times).
namespace {

// One attempt: the child's wait status once SIGINT was sent after the temporary file appeared.
int interrupt_run_once(const fs::path& dir, const std::string& out) {
  const int in = ::inotify_init1(IN_CLOEXEC);
  EXPECT_GE(in, 0);
  EXPECT_GE(::inotify_add_watch(in, dir.c_str(), IN_CREATE), 0);
  const pid_t child = ::fork();
  EXPECT_GE(child, 0);
  if (child == 0) {
    ::execl(FB_CLI_PATH, FB_CLI_PATH, "run", "--device", "cpu", "-q", "--spec-text",
            "input f32[32, 3, 16, 64, 64]; conv3d 16 3; group_norm 8; minimum 0.0; clamp min=0.0 max=1.0",
            "--output", out.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool seen = false;
  alignas(inotify_event) char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int status = 0;
  while (!seen) {
    if (::waitpid(child, &status, WNOHANG) != 0) {
      ADD_FAILURE() << "the run ended before writing its output, status " << status;
      ::close(in);
      return status;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "no temporary file appeared";
      break;
    }
    pollfd pfd{in, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const ssize_t n = ::read(in, buf, sizeof buf);
    if (n <= 0) continue;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      if (ev->len && std::string(ev->name).rfind(".fuseblock-tmp-", 0) == 0) seen = true;
      p += sizeof(inotify_event) + ev->len;
    }
  }
  ::close(in);
  ::kill(child, SIGINT);
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  return status;
}

}  // namespace

TEST(TempFiles, InterruptedRunOutputLeavesNothingBehind) {
  const fs::path dir = fresh_dir("cli");
  const std::string out = (dir / "y.npy").string();
  int status = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    status = interrupt_run_once(dir, out);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) break;
    fs::remove(out);  // finished before the signal: try again
  }
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << "status " << status;
  EXPECT_FALSE(has_temp_file(dir));
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}
