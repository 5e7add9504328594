#!/usr/bin/env bash
# dev/igemm v1: build for sm_90 (if nvcc is here) and run the check + timing harness.
#   bash dev/igemm/run.sh               build (when nvcc is found) and run
#   bash dev/igemm/run.sh --build-only  build only (e.g. here, then carry dev/igemm/build to a GPU machine)
#   bash dev/igemm/run.sh --selftest    CPU-only check of the index math (no GPU needed)
#   IGEMM_ARCH=80|89|90 picks the architecture (default 90). With $OUT set, the output and the ptxas
#   report are also written there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
arch="${IGEMM_ARCH:-90}"
bin="$here/build/igemm_v1_sm$arch"
nvcc_bin="${NVCC:-$(command -v nvcc || true)}"
[ -z "$nvcc_bin" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc_bin=/usr/local/cuda/bin/nvcc
mkdir -p "$here/build"
if [ -n "$nvcc_bin" ]; then
  echo "building $bin with $nvcc_bin"
  if ! "$nvcc_bin" -arch="sm_$arch" -O3 -Xptxas -v -std=c++17 -o "$bin" "$here/igemm_v1.cu" \
      2> "$here/build/ptxas_sm$arch.txt"; then
    cat "$here/build/ptxas_sm$arch.txt" >&2
    exit 1
  fi
  # one line per conv kernel: template arguments, registers, spills
  grep -E "Compiling entry|Used|spill" "$here/build/ptxas_sm$arch.txt" | paste - - - |
    sed -E 's/.*igemm_conv_statsI/conv /; s/.*reference_convI/reference /; s/13__nv_bfloat16/bf16/; s/6__half/f16/;
            s/Li([0-9]+)E/ \1/g; s/EvPKT.*frame,//; s/ptxas info *: //'
elif [ -x "$bin" ]; then
  echo "no nvcc here: running the prebuilt $bin"
else
  echo "no nvcc and no prebuilt $bin (build it elsewhere with --build-only and carry dev/igemm/build)" >&2
  exit 1
fi
[ "${1:-}" = "--build-only" ] && exit 0
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  [ -f "$here/build/ptxas_sm$arch.txt" ] && cp "$here/build/ptxas_sm$arch.txt" "$OUT/"
  "$bin" "$@" 2>&1 | tee "$OUT/igemm_v1_sm$arch.txt"
else
  "$bin" "$@"
fi
