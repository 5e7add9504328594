#!/usr/bin/env bash
# Installs everything fuseblock needs to build and test, from Debian's packages and PyPI.
# Safe to run again: packages already present are left as they are.
set -euo pipefail
# clang and libclang-rt-dev (libFuzzer and the sanitizer runtimes) build the fuzz targets
# (scripts/fuzz.sh); --no-install-recommends would leave the runtimes out, so they are named.
debs=(cmake ninja-build g++ ccache libgtest-dev libcli11-dev nlohmann-json3-dev libfmt-dev clang libclang-rt-dev)
missing=()
for d in "${debs[@]}"; do dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
python3 -m pip install -q --disable-pip-version-check -r "$(dirname "$0")/../requirements-dev.txt"
python3 -m pip install -q --disable-pip-version-check --no-deps -r "$(dirname "$0")/../requirements-headers.txt"
