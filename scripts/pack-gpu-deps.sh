#!/usr/bin/env bash
# Packs what the build needs on the GPU machine, which has no network and no Debian packages:
# the header-only libraries (CLI11, fmt, nlohmann-json, the cuDNN frontend) and cuDNN's headers
# (the machine has libcudnn.so.9 but no cudnn.h) into .deps/include, and GoogleTest's sources
# into .deps/googletest. .deps is git-ignored; the device tool carries it (carry: [".deps"])
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
# The cuDNN frontend from its PyPI package (the files of its include/ folder), cudnn*.h from
# the CUDA toolkit's include folder, where this machine's cuDNN puts them.
fe=$(python3 scripts/cudnn-frontend-include.py)
cp -r "$fe"/cudnn_frontend "$fe"/cudnn_frontend*.h "$fe"/cudnn_backend_base.h .deps/include/
cuda_include=${CUDA_HOME:-/usr/local/cuda}/include
ls "$cuda_include"/cudnn*.h >/dev/null 2>&1 || { echo "no cudnn*.h in $cuda_include: install cuDNN 9's headers" >&2; exit 1; }
cp "$cuda_include"/cudnn*.h .deps/include/
du -sh .deps
