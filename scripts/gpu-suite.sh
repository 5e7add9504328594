#!/usr/bin/env bash
# The one script for the GPU machine: configure and build (nothing downloads: the dependencies
# travel in .deps, see scripts/pack-gpu-deps.sh), the CPU and GPU test suites, compute-sanitizer
# memcheck and racecheck over a smaller set of the GPU tests, then the benchmark, whose table is
# printed last. Logs go to $OUT (the device tool's folder) or ./gpu-out.
#   scripts/gpu-suite.sh [all|tests|bench|profile]       (default all)
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
build=build-gpu
jobs=$(nproc)
export FUSEBLOCK_CACHE_DIR=$PWD/$build/cubin-cache  # compiled kernels shared by tests, sanitizers, bench
summary=()
step() {  # step NAME LOG TIMEOUT_S command...
  local name=$1 log=$2 limit=$3
  shift 3
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$log" 2>&1
  local rc=$?
  local line
  line=$(printf '%-12s rc=%-3s %4ss  %s' "$name" "$rc" "$((SECONDS - t0))" "$log")
  summary+=("$line")
  echo "$line"
  return $rc
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | tee "$out/device.log"
step configure build.log 120 cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFUSEBLOCK_DEPS_DIR="$PWD/.deps" || {
  tail -30 "$out/build.log"; exit 1; }
step build build.log 400 bash -c "ninja -C $build -j$jobs fuseblock_tests fuseblock_gpu_tests fuseblock_bench fuseblock_dev_fill fuseblock_dev_general fuseblock 2>&1" || {
  tail -40 "$out/build.log"; exit 1; }

if [ "$mode" = all ] || [ "$mode" = tests ]; then
  step gpu-tests gpu-tests.log 420 $build/tests/fuseblock_gpu_tests --gtest_color=no
  grep -E '^\[  (FAILED|SKIPPED) |^\[  PASSED|tests ran|Failure|worst|grid' "$out/gpu-tests.log" | head -40
  step cpu-tests cpu-tests.log 300 ctest --test-dir $build -L cpu -j"$jobs" --timeout 240 --output-on-failure
  tail -4 "$out/cpu-tests.log"
  # The sanitizers slow kernels 10-100x: the small-shape tests cover every kernel (fill, gated
  # fallback, stats, finalize, output; both engines).
  filter='GpuFillPath.*:GpuDifferential.NonFiniteInOneSample:GpuDifferential.Deterministic:GpuDifferential.LargeOffsetStatistics:GpuExecutor.MisalignedBuffersAreRefused'
  step memcheck sanitizers.log 300 compute-sanitizer --tool memcheck --error-exitcode 9 \
    $build/tests/fuseblock_gpu_tests --gtest_filter="$filter" --gtest_color=no
  grep -E 'ERROR SUMMARY|PASSED|FAILED' "$out/sanitizers.log" | tail -3
  step racecheck racecheck.tmp 300 compute-sanitizer --tool racecheck --error-exitcode 9 \
    $build/tests/fuseblock_gpu_tests --gtest_filter="$filter" --gtest_color=no
  cat "$out/racecheck.tmp" >>"$out/sanitizers.log" && rm "$out/racecheck.tmp"  # one file back for both
  grep -E 'RACECHECK SUMMARY|PASSED|FAILED' "$out/sanitizers.log" | tail -3
fi
if [ "$mode" = all ] || [ "$mode" = bench ]; then
  step bench bench.log 300 $build/bench/fuseblock_bench
  step dev-fill dev.log 120 $build/bench/fuseblock_dev_fill
  step dev-general dev-general.tmp 180 $build/bench/fuseblock_dev_general
  cat "$out/dev-general.tmp" >>"$out/dev.log" && rm "$out/dev-general.tmp"
  cat "$out/dev.log"
fi
if [ "$mode" = all ] || [ "$mode" = profile ]; then
  # Where the general path's time goes: Nsight Compute on one launch of each conv kernel.
  step ncu ncu.log 240 ncu --clock-control none --kernel-name regex:fb_conv_ --launch-count 2 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
    --section MemoryWorkloadAnalysis --section LaunchStats \
    $build/bench/fuseblock_bench --only "SiLU-dropout, tf32" --reps 1 --warmup 0
  grep -E 'fb_conv_|Duration|Throughput|Issue Slots|Issued Ipc|Achieved Occupancy|Theoretical Occupancy|Stall|Registers|Warp Cycles' "$out/ncu.log" | head -40
fi
echo
echo "== gpu-suite steps ($(date -u '+%Y-%m-%d %H:%M UTC')) =="
printf '%s\n' "${summary[@]}"
if [ -f "$out/bench.log" ]; then
  echo
  sed -n '/^== fuseblock CUDA benchmark/,$p' "$out/bench.log"
  grep -E 'FAIL' "$out/bench.log" | head -5
fi
