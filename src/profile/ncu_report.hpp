// `fuseblock profile --ncu`: the same profile command run again under Nsight Compute (one run,
// our kernels only, clocks left as they are), and the few numbers from its report that say where
// a kernel's time goes: DRAM throughput, achieved against theoretical occupancy, and the top warp
// stall reasons. The CSV parser is pure, so tests pin it without a GPU or ncu.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace fuseblock::profile {

struct NcuKernel {
  std::string kernel;
  double duration_ms = -1;             // gpu__time_duration.sum; -1 where absent
  double dram_pct = -1;                // dram__throughput.avg.pct_of_peak_sustained_elapsed
  double achieved_occupancy_pct = -1;  // sm__warps_active.avg.pct_of_peak_sustained_active
  double theoretical_occupancy_pct = -1;  // sm__maximum_warps_per_active_cycle_pct
  std::vector<std::pair<std::string, double>> stalls;  // reason -> warps stalled per issue, largest first
};

// Rows of `ncu --csv --page raw` output (one per profiled kernel); other lines are ignored.
std::vector<NcuKernel> parse_ncu_raw_csv(const std::string& text);
// The table `profile --ncu` prints (top `stalls` reasons per kernel).
std::string ncu_summary(const std::vector<NcuKernel>& kernels, size_t stalls = 3);

// The full path of `name` on $PATH, or "" when it is not there.
std::string find_on_path(const std::string& name);

// Runs `ncu ... <this executable> <args>` with ncu's report in `log_path`; returns the exit code
// (-1 when it could not be started or was killed).
int run_under_ncu(const std::string& ncu, const std::vector<std::string>& args, const std::string& log_path);

}  // namespace fuseblock::profile
