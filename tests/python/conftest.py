"""With FUSEBLOCK_REQUIRE_TORCH=1 (scripts/test.sh, hence CI), a test skipped because torch, monai
or diffusers cannot be imported is a failure: those tests are the package's main use, and a run
that skipped them must not pass."""
from __future__ import annotations

import os

import pytest

REQUIRED = ("torch", "monai", "diffusers")


def _required() -> bool:
    return os.environ.get("FUSEBLOCK_REQUIRE_TORCH", "0") not in ("", "0")


def _missing_package(reason: str) -> str | None:
    """The required package a skip's reason says could not be imported, if any (the reasons of
    pytest.importorskip and of this suite's own importorskip(..., reason=...) calls)."""
    text = reason.lower()
    for name in REQUIRED:
        if f"could not import '{name}" in text or f"{name} is not installed" in text:
            return name
    return None


def pytest_sessionstart(session):
    if not _required():
        return
    import importlib

    absent = []
    for name in REQUIRED:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any import failure means the tests cannot run
            absent.append(f"{name} ({type(e).__name__}: {e})")
    if absent:
        raise pytest.UsageError("FUSEBLOCK_REQUIRE_TORCH=1 but these cannot be imported: " + ", ".join(absent)
                                + "; install them with: python3 -m pip install -r requirements-torch.txt")


@pytest.fixture
def strict_float32():
    """Compare in strict float32: no TF32 in PyTorch's conv nor (it follows the flag) fuseblock's.
    A test module takes it with pytestmark = pytest.mark.usefixtures("strict_float32")."""
    import torch
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = old


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    _fail_missing_package_skip(report)


def pytest_collectreport(report):
    _fail_missing_package_skip(report)


def _fail_missing_package_skip(report) -> None:
    if not (_required() and report.skipped):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    name = _missing_package(reason)
    if name:
        report.outcome = "failed"
        report.longrepr = (f"skipped for a missing package ({name}) under FUSEBLOCK_REQUIRE_TORCH=1: {reason}; "
                           "install it with: python3 -m pip install -r requirements-torch.txt")
