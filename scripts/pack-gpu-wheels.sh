#!/usr/bin/env bash
# Packs monai and diffusers, and the dependencies of theirs that PyTorch does not bring, as wheels
# into .deps/wheels for the GPU machine (no network there; torch, numpy and triton installed).
# There (carry .deps):   python3 -m pip install --no-index --find-links .deps/wheels monai diffusers
# Run it after scripts/pack-gpu-deps.sh, which starts .deps afresh.
# PYVER: that machine's Python, major.minor (`python3 -V` there), for the few compiled wheels
# (regex, safetensors, pillow, pyyaml, ...); default this machine's.
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=${PYVER:-$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
out=.deps/wheels
rm -rf "$out"
mkdir -p "$out"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
target=(--only-binary=:all: --python-version "$pyver" --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
        --platform any)
# Resolve first (metadata only: nothing large is downloaded), then fetch all but torch's own
# dependency tree, which the GPU machine has.
python3 -m pip install --dry-run --ignore-installed --quiet --target "$(mktemp -d)" "${target[@]}" \
  --report "$report" monai diffusers
python3 - "$report" > "$out/requirements.txt" <<'PY'
import json, re, sys
with_torch = re.compile(r"^(torch|triton|numpy|nvidia-.*|cuda-.*|sympy|mpmath|networkx|jinja2|markupsafe|"
                        r"setuptools|filelock|fsspec|typing[-_]extensions)$", re.I)
for item in json.load(open(sys.argv[1]))["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    if not with_torch.match(name):
        print(f"{name}=={version}")
PY
python3 -m pip download --quiet --no-deps "${target[@]}" -d "$out" -r "$out/requirements.txt"
ls -la "$out"
total=$(du -sm "$out" | cut -f1)
echo "$(ls "$out"/*.whl | wc -l) wheels, ${total} MB in $out (Python $pyver)"
[ "$total" -lt 40 ] || { echo "more than 40 MB: check what the resolver pulled in" >&2; exit 1; }
