// The registry of temporary files and the signal handler that removes them (temp_files.hpp).
// The handler may only call async-signal-safe functions: the paths live in fixed buffers that
// it reads without locks or allocation, and it removes them with unlink().
#include "params/temp_files.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>

#include <fmt/format.h>

namespace fuseblock::detail {
namespace {

constexpr int kSlots = 16;
constexpr size_t kMaxPath = 4096;

enum SlotState : int { kFree, kFilling, kActive };

struct Slot {
  std::atomic<int> state{kFree};
  char path[kMaxPath];
};
Slot slots[kSlots];

void remove_registered_and_reraise(int sig) {
  for (Slot& s : slots)
    if (s.state.load() == kActive) ::unlink(s.path);
  // SA_RESETHAND restored the default action; the signal is blocked while this handler runs, so
  // it is delivered, and ends the process, when the handler returns.
  ::raise(sig);
}

}  // namespace

TempFileRegistration::TempFileRegistration(const std::string& path) {
  if (path.size() >= kMaxPath) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!slots[i].state.compare_exchange_strong(expected, kFilling)) continue;
    std::memcpy(slots[i].path, path.c_str(), path.size() + 1);
    slots[i].state.store(kActive);
    slot_ = i;
    return;
  }
}

TempFileRegistration::~TempFileRegistration() {
  if (slot_ >= 0) slots[slot_].state.store(kFree);
}

std::string unique_temp_name(const std::string& dir) {
  static std::atomic<uint64_t> counter{0};
  static thread_local std::mt19937_64 bits{std::random_device{}()};
  return fmt::format("{}/.fuseblock-tmp-{}-{}-{:016x}", dir, ::getpid(), counter.fetch_add(1), bits());
}

void remove_temp_files_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = remove_registered_and_reraise;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

}  // namespace fuseblock::detail
