"""The benchmark scripts' CPU smoke modes run end to end and write their JSON (bench/); the harness's
check that a compiled peer ran compiled code catches dynamo's silent fallback to eager. Dynamo's
eager backend stands in for Inductor here (compiling on the CPU takes minutes); no timing is asserted."""
import json
import os
import sys

import pytest

pytest.importorskip("fuseblock.torch")
torch = pytest.importorskip("torch")
nn = torch.nn

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")
sys.path.insert(0, BENCH)


def test_realworld_smoke_writes_correct_rows(tmp_path):
    import realworld
    rc = realworld.main(["--cpu-smoke", "--out", str(tmp_path), "--compile-backend", "eager"])
    results = json.loads((tmp_path / "realworld.json").read_text())
    peers = {(c["block"], c["peer"]) for c in results["cases"]}
    assert peers == {(b[0], p) for b in realworld.SMOKE_BLOCKS for p in ("eager", "fuseblock", "compile:default")}
    assert all(c.get("correct") and c["train_ms"] > 0 for c in results["cases"]), results["cases"]
    assert all(c["compile"]["graphs"] >= 1 for c in results["cases"] if c["peer"].startswith("compile"))
    assert results["peer_settings"]["dynamic"] is False and rc == 0


def test_models_smoke_writes_a_row_per_variant(tmp_path):
    import models
    models.main(["--cpu-smoke", "--out", str(tmp_path), "--only", "monai-UNet", "--compile-backend", "eager"])
    (case,) = json.loads((tmp_path / "models.json").read_text())["cases"]
    assert case["fused_blocks"] > 0 and sum(case["left_by_reason"].values()) == case["left"]
    for v in models.VARIANTS:
        assert case[v].get("correct"), (v, case[v])
    assert 0 < case["fuse"]["in_fused_blocks_ms"] <= case["fuse"]["forward_ms"]


def _block(c, dtype=torch.float32):
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(2, c), nn.SiLU()).to(dtype).eval()


def test_many_blocks_each_run_compiled_code():
    """The old harness's pattern: more blocks than dynamo's recompile limit, each its own case."""
    import compiled_peer
    with torch.no_grad():
        for i in range(torch._dynamo.config.recompile_limit + 2):
            c = 2 * (i + 1)
            x = torch.randn(1, c, 6, 6)
            block = _block(c)
            fn, stats = compiled_peer.compile_checked(block, "default", [lambda f, x=x: f(x)], backend="eager")
            assert stats["graphs"] == 1 and torch.allclose(fn(x), block(x))


def test_fallback_to_eager_is_caught():
    """One compiled code object over many shapes without a reset runs eager past the recompile
    limit: compiled_region_ran sees it (the check the harness makes before and after timing)."""
    import compiled_peer
    torch._dynamo.reset()
    ran = []
    with torch.no_grad():
        for i in range(torch._dynamo.config.recompile_limit + 2):
            c = 2 * (i + 1)
            fn = torch.compile(_block(c), backend="eager")
            x = torch.randn(1, c, 6, 6)
            fn(x)
            ran.append(compiled_peer.compiled_region_ran(lambda: fn(x)))
    assert ran[0] and not ran[-1], ran
    with torch._dynamo.config.patch(disable=True), pytest.raises(compiled_peer.CompileFellBack):
        compiled_peer.compile_checked(_block(4), "default", [lambda f: f(torch.randn(1, 4, 6, 6))], backend="eager")


def test_minimal_block_prints_three_times():
    import subprocess
    out = subprocess.run([sys.executable, os.path.join(BENCH, "minimal_block.py"), "--conv", "2", "--channels", "4", "4",
                          "--shape", "1", "4", "8", "8", "--groups", "2", "--act", "silu", "--cpu-smoke"],
                         capture_output=True, text=True, check=True).stdout
    ms = json.loads(out.splitlines()[-1])["ms"]
    assert set(ms) == {"eager", "torch.compile", "fuseblock"} and all(v > 0 for v in ms.values())


def test_first_call_smoke_times_cold_and_warm_processes(tmp_path):
    """bench/first_call.py on one tiny model: a cold and a warm child process per variant, each
    reporting construction to first output; the CPU backend writes no cubins."""
    import first_call
    variants = ["fuse", "torch.compile(fuse)"]
    rc = first_call.main(["--cpu-smoke", "--out", str(tmp_path), "--only", "monai-UNet", "--variants", *variants,
                          "--compile-backend", "eager"])
    cases = json.loads((tmp_path / "first_call.json").read_text())["cases"]
    assert [c["variant"] for c in cases] == variants and rc == 0, cases
    for c in cases:
        for run in ("cold", "warm"):
            r = c[run]
            assert "error" not in r, (c["variant"], run, r)
            assert r["fused_blocks"] > 0 and r["output_finite"] and r["fbcubins_written"] == 0, r
            assert 0 < r["first_s"] <= r["total_s"] and r["next_ms"] > 0, r
    assert cases[1]["cold"]["graphs"] >= 1 and cases[1]["cold"]["graph_breaks"] == 0, cases[1]
