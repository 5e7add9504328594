#!/usr/bin/env bash
# The one script for the GPU machine: configure and build (nothing downloads: the dependencies
# travel in .deps, see scripts/pack-gpu-deps.sh), the CPU and GPU test suites, compute-sanitizer
# memcheck and racecheck over a smaller set of the GPU tests, then the benchmark, whose table is
# printed last. Logs go to $OUT (the device tool's folder) or ./gpu-out.
#   scripts/gpu-suite.sh [all|tests|bench]       (default all)
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

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader >"$out/device.txt" 2>&1
cat "$out/device.txt"
step configure build.log 120 cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFUSEBLOCK_DEPS_DIR="$PWD/.deps" || {
  tail -30 "$out/build.log"; exit 1; }
step build build.log 400 bash -c "ninja -C $build -j$jobs fuseblock_tests fuseblock_gpu_tests fuseblock_bench fuseblock 2>&1" || {
  tail -40 "$out/build.log"; exit 1; }

if [ "$mode" = all ] || [ "$mode" = tests ]; then
  step gpu-tests gpu-tests.log 420 $build/tests/fuseblock_gpu_tests --gtest_color=no
  grep -E '^\[  (FAILED|SKIPPED) |^\[  PASSED|tests ran|Failure|worst|grid' "$out/gpu-tests.log" | head -40
  step cpu-tests cpu-tests.log 300 ctest --test-dir $build -L cpu -j"$jobs" --timeout 240 --output-on-failure
  tail -4 "$out/cpu-tests.log"
  # The sanitizers slow kernels 10-100x: the small-shape tests cover every kernel (fill, gated
  # fallback, stats, finalize, output; both engines).
  filter='GpuFillPath.*:GpuDifferential.NonFiniteInOneSample:GpuDifferential.Deterministic:GpuDifferential.LargeOffsetStatistics:GpuExecutor.MisalignedBuffersAreRefused'
  step memcheck memcheck.log 300 compute-sanitizer --tool memcheck --error-exitcode 9 \
    $build/tests/fuseblock_gpu_tests --gtest_filter="$filter" --gtest_color=no
  grep -E 'ERROR SUMMARY|PASSED|FAILED' "$out/memcheck.log" | tail -3
  step racecheck racecheck.log 300 compute-sanitizer --tool racecheck --error-exitcode 9 \
    $build/tests/fuseblock_gpu_tests --gtest_filter="$filter" --gtest_color=no
  grep -E 'RACECHECK SUMMARY|ERROR SUMMARY|PASSED|FAILED' "$out/racecheck.log" | tail -3
fi
if [ "$mode" = all ] || [ "$mode" = bench ]; then
  step bench bench.log 300 $build/bench/fuseblock_bench
fi
echo
echo "== gpu-suite steps ($(date -u '+%Y-%m-%d %H:%M UTC')) =="
printf '%s\n' "${summary[@]}"
if [ -f "$out/bench.log" ]; then
  echo
  sed -n '/^== fuseblock CUDA benchmark/,$p' "$out/bench.log"
  grep -E 'FAIL' "$out/bench.log" | head -5
fi
