#!/usr/bin/env python3
"""Prints the folder that holds cudnn_frontend.h, from the installed PyPI package
nvidia-cudnn-frontend (its wheel puts the headers in <site-packages>/include). Used by CMake
(FUSEBLOCK_CUDNN_FRONTEND_DIR's default) and scripts/pack-gpu-deps.sh; exits 1, saying why,
when the package is not installed."""
import importlib.metadata
import sys

try:
    files = importlib.metadata.files("nvidia-cudnn-frontend") or []
except importlib.metadata.PackageNotFoundError:
    sys.exit("nvidia-cudnn-frontend is not installed: run scripts/install-deps.sh")
headers = [f for f in files if f.name == "cudnn_frontend.h"]
if not headers:
    sys.exit("nvidia-cudnn-frontend is installed but has no cudnn_frontend.h")
print(headers[0].locate().parent.resolve())
