"""fuseblock under torch.distributed: one process per GPU (DDP, NCCL), forward in eval and in
training mode; each rank's output equals a single-GPU run of its shard on the same device (same
seed: the same dropout mask). Runs where torch sees at least two GPUs (the GPU suite on a
two-GPU machine); skipped elsewhere."""
from __future__ import annotations

import os
import tempfile

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
    pytest.skip("needs two CUDA GPUs", allow_module_level=True)

import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

WORLD = 2
SHAPE = (4, 3, 6, 9, 10)  # the global batch; each rank takes N / WORLD samples


def make_block(device):
    import fuseblock.torch as fbt

    torch.manual_seed(3)
    conv = torch.nn.Conv3d(3, 8, 3, padding=1)
    norm = torch.nn.GroupNorm(4, 8)
    return fbt.Block.from_modules(conv, norm, torch.nn.SiLU(), torch.nn.Dropout(0.3)).to(device)


def shard(rank):
    g = torch.Generator().manual_seed(11)
    x = torch.rand(SHAPE, generator=g) * 2 - 1
    per = SHAPE[0] // WORLD
    return x[rank * per:(rank + 1) * per].contiguous()


def run_rank(rank, init_file, out_dir):
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    device = torch.device("cuda", rank)
    model = torch.nn.parallel.DistributedDataParallel(make_block(device), device_ids=[rank])
    x = shard(rank).to(device)
    results = {}
    with torch.no_grad():
        model.eval()
        results["eval"] = model(x).cpu()
        model.train()
        torch.manual_seed(100 + rank)
        results["train"] = model(x).cpu()
    dist.barrier()
    dist.destroy_process_group()
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


def test_ddp_ranks_match_single_gpu_runs_of_their_shards():
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(run_rank, args=(init_file, tmp), nprocs=WORLD, join=True)
        for rank in range(WORLD):
            got = torch.load(os.path.join(tmp, f"rank{rank}.pt"))
            device = torch.device("cuda", rank)
            block = make_block(device)
            x = shard(rank).to(device)
            with torch.no_grad():
                block.eval()
                want_eval = block(x).cpu()
                block.train()
                torch.manual_seed(100 + rank)
                want_train = block(x).cpu()
            torch.testing.assert_close(got["eval"], want_eval, rtol=0, atol=0)
            assert torch.equal(got["train"] == 0, want_train == 0), f"rank {rank}: another dropout mask"
            torch.testing.assert_close(got["train"], want_train, rtol=0, atol=0)
            kept = (want_train != 0).float().mean().item()
            assert 0.6 < kept < 0.8, kept
