#!/usr/bin/env bash
# Packs what the build needs on the GPU machine, which has no network and no Debian packages:
# the header-only libraries (CLI11, fmt, nlohmann-json) into .deps/include and GoogleTest's
# sources into .deps/googletest. .deps is git-ignored; the device tool carries it (carry: [".deps"])
# and scripts/gpu-suite.sh configures with -DFUSEBLOCK_DEPS_DIR=$PWD/.deps.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .deps
mkdir -p .deps/include
for d in CLI fmt nlohmann; do
  [ -d "/usr/include/$d" ] || { echo "missing /usr/include/$d: run scripts/install-deps.sh" >&2; exit 1; }
  cp -r "/usr/include/$d" .deps/include/
done
[ -d /usr/src/googletest ] || { echo "missing /usr/src/googletest (libgtest-dev)" >&2; exit 1; }
cp -r /usr/src/googletest .deps/googletest
du -sh .deps
