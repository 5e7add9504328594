#!/usr/bin/env bash
# Configures and builds fuseblock (CLI, library, tests) into build/ with Ninja. Used by the
# README's commands and by CI; installs missing dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=${FUSEBLOCK_JOBS:-$(nproc)}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
echo "building fuseblock with ninja -j$jobs (first build takes a few minutes on 2 cores) ..."
ninja -C build -j"$jobs" "$@"
