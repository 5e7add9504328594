"""fuseblock under torch.distributed and from several threads, on a fused MONAI UNet and SegResNet:
- DDP over two processes in each setting this machine has (distributed_models.SETTINGS: the CPU with
  gloo, one GPU shared by both ranks with gloo, two GPUs with NCCL): eval and train mode, each rank's
  outputs and dropout masks equal to a single-process run of its shard, the ranks' masks distinct;
- two threads of one process running two fused models at once (on cuda:0 and cuda:1 where there are
  two GPUs), float32 and bfloat16, equal to sequential runs;
- the cubin cache filled by two processes at once (GPU only)."""
from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import threading
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai", reason="monai is not installed")

import torch.multiprocessing as mp  # noqa: E402

import distributed_models as dm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def rel_err(y, want):
    y, want = y.double(), want.double()
    return ((y - want).norm() / want.norm()).item()


def fused_tolerance(device, dtype):
    """Fused against eager: fp32 on CUDA runs TF32 convs in both (PyTorch's default)."""
    if dtype != torch.float32:
        return 2e-2
    return 1e-5 if device.type == "cpu" else 3e-3


@contextlib.contextmanager
def like_a_rank(device):
    """The settings a rank runs under (distributed_models.ddp_rank): one CPU thread, deterministic cuDNN."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
            yield
    finally:
        torch.set_num_threads(threads)


def assert_masks_equal(got, want, what):
    assert len(got) == len(want) > 0, f"{what}: {len(got)} masks, the reference has {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert torch.equal(g, w), f"{what}: dropout block {i} drew another mask ({(g != w).float().mean():.3f} differ)"


def assert_keep_rate(masks, p, what):
    dropped = sum(int(m.sum()) for m in masks)
    total = sum(m.numel() for m in masks)
    sigma = (p * (1 - p) / total) ** 0.5
    assert abs(dropped / total - p) <= 5 * sigma, f"{what}: dropped {dropped} of {total}, p = {p}"


@pytest.mark.parametrize("setting", list(dm.SETTINGS))
def test_ddp_ranks_match_single_process_runs_of_their_shards(setting, tmp_path, monkeypatch):
    s = dm.SETTINGS[setting]
    why = s.unavailable()
    if why:
        pytest.skip(f"{setting}: {why}")
    for k, v in dm.MULTICAST_OFF.items():  # the spawned ranks inherit them
        monkeypatch.setenv(k, v)
    mp.spawn(dm.ddp_rank, args=(setting, str(tmp_path / "init"), str(tmp_path)), nprocs=dm.WORLD, join=True)
    got = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(dm.WORLD)]
    eager = dm.unet()
    for rank in range(dm.WORLD):
        device = s.device(rank)
        model, dropout_blocks = dm.fused(eager)
        model.to(device)
        with like_a_rank(device):
            want = dm.forward_passes(model, dropout_blocks, rank, device)
            with torch.no_grad():
                eager_y = eager.to(device).eval()(dm.shard(rank).to(device)).cpu()
        what = f"{setting} rank {rank}"
        assert rel_err(want["eval"], eager_y) <= fused_tolerance(device, torch.float32), what
        for key in ("eval", "train", "common"):
            torch.testing.assert_close(got[rank][key], want[key], rtol=0, atol=0, msg=lambda m: f"{what} {key}: {m}")
        assert not torch.equal(want["train"], want["eval"]), f"{what}: train mode dropped nothing"
        assert_masks_equal(got[rank]["train_masks"], want["train_masks"], f"{what} (own shard)")
        assert_masks_equal(got[rank]["common_masks"], want["common_masks"], f"{what} (common input)")
        assert_keep_rate(got[rank]["train_masks"] + got[rank]["common_masks"], dm.DROPOUT_P, what)
    # Each rank draws from its own generator: on one input, two independent masks of rate p
    # disagree on 2p(1-p) of the elements.
    differ = sum(int((a != b).sum()) for a, b in zip(got[0]["common_masks"], got[1]["common_masks"]))
    total = sum(m.numel() for m in got[0]["common_masks"])
    p = dm.DROPOUT_P
    assert differ / total > p * (1 - p), f"{setting}: the ranks' masks agree on {1 - differ / total:.3f} of the elements"


def thread_devices():
    """cuda:0 and cuda:1 where there are two GPUs; else both threads on one GPU, or on the CPU."""
    if not torch.cuda.is_available():
        return [torch.device("cpu")] * 2
    return [torch.device("cuda", 0), torch.device("cuda", min(1, torch.cuda.device_count() - 1))]


def on_own_stream(device):
    return torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else contextlib.nullcontext()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_two_threads_running_two_fused_models_match_sequential_runs(dtype):
    devices = thread_devices()
    if dtype == torch.bfloat16 and devices[0].type == "cuda" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    jobs = []
    for make, device, seed in ((dm.unet, devices[0], 21), (dm.segresnet, devices[1], 22)):
        eager = make().to(device, dtype).eval()
        model, _ = dm.fused(eager)
        x = dm.sample_batch(seed, 2).to(device, dtype)
        x[1, 0, 3, 4, 5] = float("nan")  # one sample poisoned: the other stays clean, as in eager
        jobs.append((model.eval(), eager, x))
    reps = 3
    start = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def work(i):
        model, _, x = jobs[i]
        try:
            with torch.no_grad(), on_own_stream(x.device):
                start.wait()  # the first calls (the kernels' compiles included) run at once
                ys = [model(x) for _ in range(reps)]
                results[i] = [y.cpu() for y in ys]
        except BaseException as e:  # noqa: BLE001 (re-raised below, in the test's thread)
            errors.append(e)
            start.abort()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for (model, eager, x), ys in zip(jobs, results):
        with torch.no_grad():
            want, eager_y = model(x).cpu(), eager(x).cpu()
        assert rel_err(want[0], eager_y[0]) <= fused_tolerance(x.device, dtype), type(eager).__name__
        assert torch.isnan(eager_y[1]).any() and torch.equal(torch.isnan(want), torch.isnan(eager_y))
        for y in ys:
            torch.testing.assert_close(y, want, rtol=0, atol=0, equal_nan=True)


def read_cache_entry(path):
    """One entry of the cubin cache, checked as CubinCache::load does (src/cuda/runtime/cubin_cache.cpp):
    magic | key | u64 payload length | u64 FNV-1a checksum | payload of length-prefixed fields
    arch, cubin, ptx, log. Returns the fields."""
    data = path.read_bytes()
    assert data[:8] == b"FBCUBIN1", f"{path.name}: no magic"
    assert data[8:40].decode() == path.stem, f"{path.name}: written for key {data[8:40]!r}"
    length, checksum = struct.unpack_from("<QQ", data, 40)
    payload = data[56:]
    assert len(payload) == length, f"{path.name}: truncated ({len(payload)} of {length} payload bytes)"
    h = 0xcbf29ce484222325
    for byte in payload:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    assert h == checksum, f"{path.name}: checksum mismatch"
    fields, pos = [], 0
    while pos < len(payload):
        (n,) = struct.unpack_from("<Q", payload, pos)
        fields.append(payload[pos + 8:pos + 8 + n])
        pos += 8 + n
    assert pos == len(payload) and len(fields) == 4, f"{path.name}: {len(fields)} fields"
    return fields


def cache_snapshot(cache):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in cache.glob("*.fbcubin")}


def test_cubin_cache_filled_by_two_processes_at_once_stays_valid(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("the cubin cache holds CUDA kernels: needs a CUDA GPU")
    cache = tmp_path / "cache"  # does not exist yet: both processes create it
    env = dm.multicast_off(dict(os.environ, FUSEBLOCK_CACHE_DIR=str(cache)))
    worker = os.path.join(HERE, "cache_fill_worker.py")
    go = tmp_path / "go"

    def start(i):
        return subprocess.Popen([sys.executable, worker, str(tmp_path / f"out{i}.pt"), str(go)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def finish(proc):
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, out

    fillers = [start(0), start(1)]
    # Each worker says it is ready once its models are built, then waits for `go`: their first
    # forwards, which compile the kernels, start together.
    deadline = time.monotonic() + 300
    while not all((tmp_path / f"out{i}.pt.ready").exists() for i in range(2)):
        if any(proc.poll() is not None for proc in fillers) or time.monotonic() > deadline:
            break  # finish() below shows the worker's output
        time.sleep(0.05)
    go.touch()
    for proc in fillers:
        finish(proc)
    leftovers = [p.name for p in cache.iterdir() if not p.name.endswith(".fbcubin") and ".tmp." in p.name]
    assert not leftovers, f"temporary files left in the cache: {leftovers}"
    entries = sorted(cache.glob("*.fbcubin"))
    assert entries, "the workers stored no kernels"
    for path in entries:
        arch, cubin, _, _ = read_cache_entry(path)
        assert arch and cubin, f"{path.name}: empty arch or cubin"
    before = cache_snapshot(cache)
    finish(start(2))
    # A miss, or an entry that failed to load, is compiled again and renamed into place (a new
    # inode): unchanged entries and no new ones mean the third process loaded every kernel it ran.
    assert cache_snapshot(cache) == before, "the third process rewrote or added cache entries"
    outs = [torch.load(tmp_path / f"out{i}.pt") for i in range(3)]
    assert outs[0].keys() == outs[1].keys() == outs[2].keys() and outs[0]
    for key in outs[0]:
        for i in (1, 2):
            torch.testing.assert_close(outs[i][key], outs[0][key], rtol=0, atol=0, msg=lambda m: f"{key}: {m}")
