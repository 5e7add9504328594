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
  # torch (PyPI's Linux wheel, used on the CPU here), monai and diffusers for the torch and fuse()
  # tests; only the test command needs them, so building (scripts/build.sh) stays light.
  echo "installing torch, monai and diffusers for the Python tests (requirements-torch.txt; quick once cached) ..."
  python3 -m pip install -q --disable-pip-version-check -r requirements-torch.txt
  echo "installing the Python package (pip install .) ..."
  python3 -m pip install -q --disable-pip-version-check .
  # A torch, monai or diffusers test that would skip for a missing package fails the run instead
  # (tests/python/conftest.py): a green CI must have run the package's main use.
  FUSEBLOCK_REQUIRE_TORCH=1 python3 -m pytest -q tests/python
fi
