#!/usr/bin/env bash
# `fuseblock profile` and `fuseblock tune` on the GPU machine, as docs/benchmarks.md's "Tuning and
# profile" section records them: builds (dependencies from .deps, scripts/pack-gpu-deps.sh), then
# profile (general path and default block), tune twice (the second must answer from the cache),
# profile --ncu, the tune/profile GPU tests, and the benchmark for comparison. Logs go to $OUT
# (the device tool's folder) or ./gpu-out.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
B=build-gpu
export FUSEBLOCK_CACHE_DIR=$PWD/$B/cubin-cache  # cubins and tuning.json
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$out/device.log"
{ cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DFUSEBLOCK_DEPS_DIR="$PWD/.deps" &&
  ninja -C $B -j"$(nproc)" fuseblock fuseblock_gpu_tests; } >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
ninja -C $B -j"$(nproc)" fuseblock_bench >>"$out/build.log" 2>&1 || echo "bench did not build (see build.log)"
rm -f "$FUSEBLOCK_CACHE_DIR/tuning.json"  # the first tune must measure
spec=tests/specs/problem83_silu.block
run() {  # run LOG TIMEOUT_S command...
  local log=$1 limit=$2
  shift 2
  echo "== $* ($(date -u '+%H:%M:%S'))" | tee -a "$out/$log"
  timeout "$limit" "$@" 2>&1 | tee -a "$out/$log"
  echo "== rc=${PIPESTATUS[0]}" | tee -a "$out/$log"
}
run tune-profile.log 120 $B/fuseblock profile $spec
run tune-profile.log 120 $B/fuseblock profile
run tune-profile.log 120 $B/fuseblock tune $spec
run tune-profile.log 60 $B/fuseblock tune $spec
run ncu.log 240 $B/fuseblock profile --ncu --ncu-log "$out/ncu.csv" $spec
run gpu-tests.log 240 $B/tests/fuseblock_gpu_tests --gtest_filter='GpuTune.*:GpuProfile.*' --gtest_color=no
[ -x $B/bench/fuseblock_bench ] && run bench.log 240 $B/bench/fuseblock_bench --reps 30
