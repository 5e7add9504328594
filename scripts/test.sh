#!/usr/bin/env bash
# Builds and runs every test that this machine can run: the C++ suites under ctest (the GPU
# suite's tests skip, and say so, where there is no GPU) and the Python package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
# The fuzz targets (spec parser, planner, .npy and safetensors readers), 15 s each.
bash scripts/fuzz.sh 15
if [ -f pyproject.toml ] && [ -d tests/python ]; then
  echo "installing the Python package (pip install .) ..."
  python3 -m pip install -q --disable-pip-version-check . 
  python3 -m pytest -q tests/python
fi
