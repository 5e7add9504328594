#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan into build-fuzz/ and runs
# each for SECONDS (default 300) from its committed seed corpus (tests/fuzz/corpus/TARGET); CI
# runs `scripts/fuzz.sh 15`. New inputs the fuzzer finds go to build-fuzz/corpus/TARGET (not
# committed), crashes to build-fuzz/crashes/TARGET/. A crash fails the script: turn its input
# into a GoogleTest case (tests/test_fuzz_regressions.cpp) before fixing it.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: spec_parser planner npy_reader safetensors_reader
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec_parser planner npy_reader safetensors_reader)
bash scripts/install-deps.sh >/dev/null 2>&1 || { echo "fuzz: scripts/install-deps.sh failed" >&2; exit 1; }
cxx=$(command -v clang++ || true)
[ -n "$cxx" ] || { echo "fuzz: clang++ not found (scripts/install-deps.sh installs Debian's clang)" >&2; exit 1; }
cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
echo "fuzz: building ${targets[*]} with $("$cxx" --version | head -1) ..."
ninja -C build-fuzz -j"${FUSEBLOCK_JOBS:-$(nproc)}" "${targets[@]/#/fuzz_}" >/dev/null
echo "fuzz: built in $SECONDS s"
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/crashes/$t"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  t0=$SECONDS
  # -timeout: one input taking seconds is a finding (planning must stay linear); -rss_limit_mb:
  # so is an input that makes the readers allocate gigabytes.
  if "build-fuzz/fuzz_$t" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" "${dict[@]}" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="build-fuzz/crashes/$t/" -print_final_stats=1 >"build-fuzz/$t.log" 2>&1; then
    echo "fuzz: $t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "build-fuzz/$t.log" | grep -o '[0-9]*$') inputs in $((SECONDS - t0)) s, no crash"
  else
    status=1
    echo "fuzz: $t: FOUND A CRASH (inputs in build-fuzz/crashes/$t/); the end of build-fuzz/$t.log:" >&2
    tail -40 "build-fuzz/$t.log" >&2
  fi
done
echo "fuzz: done in $SECONDS s (build and runs)"
exit $status
