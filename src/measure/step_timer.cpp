#include "measure/step_timer.hpp"

#include <algorithm>

#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::measure {
namespace {

// Events created once per time() call and destroyed with it.
struct Events {
  std::vector<CUevent> ev;
  explicit Events(size_t n) : ev(n, nullptr) {
    for (auto& e : ev) FB_CU(cuEventCreate(&e, CU_EVENT_DEFAULT));
  }
  ~Events() {
    for (CUevent e : ev)
      if (e) cuda::driver().cuEventDestroy(e);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  double between(size_t a, size_t b) const {
    float ms = 0;
    FB_CU(cuEventElapsedTime(&ms, ev[a], ev[b]));
    return ms;
  }
};

size_t flush_size() {
  const cuda::DeviceInfo& dev = cuda::use_device();
  // Twice the L2 (50 MB on an H100), at least 64 MB where the attribute is small or missing.
  const size_t l2 = dev.l2_bytes > 0 ? static_cast<size_t>(dev.l2_bytes) : 0;
  return std::max<size_t>(2 * l2, 64u << 20) / 4 * 4;
}

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

StepTimer::StepTimer() : flush_(flush_size()) {}

Timing StepTimer::time(size_t steps, int warmup, int runs, const std::function<void()>& prepare,
                       const std::function<void(const std::function<void(size_t)>&)>& body) {
  FB_ASSERT(runs >= 1 && warmup >= 0, "timing needs at least one run");
  Events e(steps + 1);
  std::vector<std::vector<double>> per_step(steps);
  std::vector<double> totals;
  for (int r = 0; r < warmup + runs; ++r) {
    if (prepare) prepare();
    FB_CU(cuMemsetD32Async(flush_.ptr(), 0x9e3779b9u + static_cast<unsigned>(r), flush_.bytes() / 4, nullptr));
    size_t recorded = 0;
    body([&](size_t i) {
      FB_ASSERT(i <= steps, "a step index past the run's steps");
      FB_CU(cuEventRecord(e.ev[i], nullptr));
      ++recorded;
    });
    FB_ASSERT(recorded == steps + 1, "the run recorded an event before every step and after the last");
    FB_CU(cuEventSynchronize(e.ev[steps]));
    if (r < warmup) continue;
    for (size_t i = 0; i < steps; ++i) per_step[i].push_back(e.between(i, i + 1));
    totals.push_back(e.between(0, steps));
  }
  Timing t;
  for (auto& v : per_step) t.step_ms.push_back(median(v));
  t.total_ms = median(totals);
  t.warmup = warmup;
  t.runs = runs;
  return t;
}

}  // namespace fuseblock::measure
