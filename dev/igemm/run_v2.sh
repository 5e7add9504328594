#!/usr/bin/env bash
# dev/igemm v2 (Hopper: wgmma + TMA + mbarriers, warp-specialized, persistent): build for sm_90a (if nvcc
# is here) and run the self-test, the GPU unit checks and the check + timing harness.
#   bash dev/igemm/run_v2.sh               build (when nvcc is found) and run
#   bash dev/igemm/run_v2.sh --build-only  build only (e.g. here, then carry dev/igemm/build to a GPU machine)
#   bash dev/igemm/run_v2.sh --selftest    CPU-only checks (no GPU needed)
#   bash dev/igemm/run_v2.sh --unit        CPU self-test + GPU unit checks (one wgmma tile per N, one TMA box)
#   bash dev/igemm/run_v2.sh 20 SD gather  arguments go to the binary (one process): reps, shape-name filter, A kind
# Without arguments: the unit checks, then each (shape, A kind) in its own process, then a summary.
# With $OUT set, the output and the ptxas report are also written there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$here/build/igemm_v2_sm90a"
nvcc_bin="${NVCC:-$(command -v nvcc || true)}"
[ -z "$nvcc_bin" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc_bin=/usr/local/cuda/bin/nvcc
mkdir -p "$here/build"
if [ -n "$nvcc_bin" ] && { [ ! -x "$bin" ] || [ "$here/igemm_v2.cu" -nt "$bin" ] || [ -n "${IGEMM_REBUILD:-}" ]; }; then
  echo "building $bin with $nvcc_bin"
  if ! "$nvcc_bin" -gencode arch=compute_90a,code=sm_90a -O3 -Xptxas -v -std=c++17 -o "$bin" "$here/igemm_v2.cu" \
      2> "$here/build/ptxas_v2_sm90a.txt"; then
    cat "$here/build/ptxas_v2_sm90a.txt" >&2
    exit 1
  fi
elif [ -x "$bin" ]; then
  echo "using the prebuilt $bin"
else
  echo "no nvcc and no prebuilt $bin (build it elsewhere with --build-only and carry dev/igemm/build)" >&2
  exit 1
fi
if [ -f "$here/build/ptxas_v2_sm90a.txt" ]; then
  # one line per kernel: template arguments, registers, stack, spills; then ptxas's performance notes
  # (C7507: setmaxnreg ignored, C7510: wgmma serialized) -- there should be none
  awk '/Compiling entry function/ { n = $0; sub(/.*function .?_Z[0-9]+/, "", n); sub(/EvP.*|EEv.*/, "", n); want = 1 }
       /spill stores/ { sp = $0 } /Used [0-9]+ registers/ { if (want) { u = $0; sub(/.*Used/, "Used", u); print n " |" sp " | " u; want = 0 } }' \
    "$here/build/ptxas_v2_sm90a.txt" | sed -E 's/I13__nv_bfloat16/<bf16/; s/I6__half/<f16/; s/ILi/<Li/; s/Lb0/ A:gather/; s/Lb1/ A:TMA/; s/Li(-?[0-9]+)E?/ \1/g; s/ +/ /g'
  grep -E "C75[0-9][0-9]" "$here/build/ptxas_v2_sm90a.txt" | sort | uniq -c || echo "(no ptxas performance notes)"
fi
[ "${1:-}" = "--build-only" ] && exit 0
log=/dev/null
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  [ -f "$here/build/ptxas_v2_sm90a.txt" ] && cp "$here/build/ptxas_v2_sm90a.txt" "$OUT/"
  log="$OUT/igemm_v2_sm90a.txt"
  : > "$log"
fi
if [ $# -gt 0 ]; then  # explicit arguments: one process, as given
  set +e
  "$bin" "$@" 2>&1 | tee -a "$log"
  exit "${PIPESTATUS[0]}"
fi
# default: the unit checks, then each (shape, A kind) in its own process (a trap or a hang -- the kernel
# traps after 20 s in an mbarrier wait; `timeout` is the backstop -- costs only that process's lines)
set +e
summary=()
run_one() {
  echo "=== igemm_v2 $*" | tee -a "$log"
  timeout 400 "$bin" "$@" 2>&1 | grep -v "^selftest " | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  summary+=("rc=$rc: igemm_v2 $*")
}
"$bin" --unit 2>&1 | tee -a "$log"
summary+=("rc=${PIPESTATUS[0]}: igemm_v2 --unit (CPU self-test + GPU unit checks)")
for shape in audio SD VAE MONAI p83; do run_one 20 "$shape" gather; done
for shape in audio SD VAE; do run_one 20 "$shape" tma; done
echo "=== summary (rc 0 = all checks passed, 1 = a check failed, 2 = CUDA error / trap, 124 = timeout)" | tee -a "$log"
fails=0
for l in "${summary[@]}"; do echo "$l" | tee -a "$log"; case "$l" in rc=0:*) ;; *) fails=$((fails + 1)) ;; esac; done
if [ "$fails" -eq 0 ]; then echo "ALL PASS" | tee -a "$log"; else echo "FAILURES: $fails process(es)" | tee -a "$log"; fi
[ "$fails" -eq 0 ]
