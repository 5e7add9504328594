"""What test_distributed.py runs: the settings it can run in (the CPU with gloo, one GPU shared by
two processes, two GPUs with NCCL), small fused MONAI models, and the forward passes each rank and
its single-process reference make. A module of its own so that the processes torch.multiprocessing
spawns import it by name."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

import fuseblock.torch as fbt

WORLD = 2
GLOBAL_BATCH = 4  # each rank takes GLOBAL_BATCH / WORLD samples
VOLUME = (1, 16, 16, 16)  # channels and spatial size of one sample
MODEL_SEED = 5
DROPOUT_P = 0.25

# NVLink multicast (NVLS) stays off in every process: the device machines' README asks for it.
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def multicast_off(env=os.environ) -> dict:
    env.update(MULTICAST_OFF)
    return env


@dataclass(frozen=True)
class Setting:
    """Where the two ranks run: `gpus` CUDA devices shared round-robin by the ranks (0: the CPU)."""
    name: str
    backend: str
    gpus: int

    def device(self, rank: int) -> torch.device:
        return torch.device("cpu") if self.gpus == 0 else torch.device("cuda", rank % self.gpus)

    def unavailable(self) -> Optional[str]:
        """Why this machine cannot run the setting, or None."""
        if self.gpus == 0:
            return None if torch.distributed.is_available() and torch.distributed.is_gloo_available() else \
                "this torch build has no gloo backend"
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < self.gpus:
            return f"needs {self.gpus} CUDA GPU(s), this machine has {have}"
        if self.backend == "nccl" and not torch.distributed.is_nccl_available():
            return "this torch build has no NCCL backend"
        return None


SETTINGS = {
    "cpu-gloo": Setting("cpu-gloo", "gloo", 0),
    # NCCL refuses two ranks on one GPU ("Duplicate GPU detected"): gloo, which takes CUDA tensors.
    "one-gpu-gloo": Setting("one-gpu-gloo", "gloo", 1),
    "two-gpu-nccl": Setting("two-gpu-nccl", "nccl", 2),
}


def deterministic(device: torch.device) -> None:
    """Unfused parts of the models (cuDNN's convs, CPU convs) give the same bits in every process."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def unet(seed: int = MODEL_SEED) -> nn.Module:
    """MONAI's UNet in the order the CUDA kernels fuse with dropout: conv -> GroupNorm -> LeakyReLU
    -> Dropout (NAD), so a fused block's zeros are exactly its dropped elements."""
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    return UNet(spatial_dims=3, in_channels=VOLUME[0], out_channels=2, channels=(8, 16), strides=(2,),
                num_res_units=1, act=("leakyrelu", {"negative_slope": 0.1}), norm=("group", {"num_groups": 2}),
                dropout=DROPOUT_P, adn_ordering="NAD")


def segresnet(seed: int = MODEL_SEED) -> nn.Module:
    from monai.networks.nets import SegResNet

    torch.manual_seed(seed)
    return SegResNet(spatial_dims=3, init_filters=8, in_channels=VOLUME[0], out_channels=2, blocks_down=(1, 2),
                     blocks_up=(1,))


def fused(model: nn.Module) -> tuple[nn.Module, list]:
    """A fused copy of model and its fused blocks that hold a dropout."""
    model = copy.deepcopy(model)
    report = fbt.fuse(model)
    assert report.fused, str(report)
    return model, [e.block for e in report.fused if e.block._dropout() is not None]


def sample_batch(seed: int, n: int = GLOBAL_BATCH) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *VOLUME), generator=g) * 4 - 2


def shard(rank: int) -> torch.Tensor:
    per = GLOBAL_BATCH // WORLD
    return sample_batch(11)[rank * per:(rank + 1) * per].contiguous()


def common_input() -> torch.Tensor:
    """One batch every rank runs in train mode: its masks must differ between ranks."""
    return sample_batch(12, GLOBAL_BATCH // WORLD)


def train_seed(rank: int) -> int:
    return 100 + rank


def forward_passes(module: nn.Module, dropout_blocks: list, rank: int, device: torch.device) -> dict:
    """The rank's outputs (on the CPU): eval and train mode on its shard, train mode on the common
    input, and the masks (where each dropout block's output is zero) of the train-mode passes.
    Train mode draws its masks from the generator seeded with train_seed(rank)."""
    masks: list = []
    hooks = [b.register_forward_hook(lambda b, args, y: masks.append((y == 0).cpu())) for b in dropout_blocks]
    x, common = shard(rank).to(device), common_input().to(device)
    out = {}
    try:
        with torch.no_grad():
            module.eval()
            out["eval"] = module(x).cpu()
            masks[:] = []  # eval mode drops nothing: only the train-mode passes' masks count
            module.train()
            torch.manual_seed(train_seed(rank))
            out["train"] = module(x).cpu()
            out["train_masks"], masks[:] = list(masks), []
            out["common"] = module(common).cpu()
            out["common_masks"] = list(masks)
    finally:
        for h in hooks:
            h.remove()
    return out


def ddp_rank(rank: int, setting_name: str, init_file: str, out_dir: str) -> None:
    """One rank: a fused UNet in DistributedDataParallel. Rank 1 builds its model from another seed,
    so its outputs equal the reference's only if DDP's broadcast of rank 0's parameters reaches
    what the fused blocks read."""
    multicast_off()
    setting = SETTINGS[setting_name]
    torch.set_num_threads(1)
    device = setting.device(rank)
    deterministic(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(setting.backend, init_method=f"file://{init_file}", rank=rank,
                                         world_size=WORLD)
    try:
        model, dropout_blocks = fused(unet(MODEL_SEED + rank))
        model.to(device)
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=None if device.type == "cpu" else [device.index])
        out = forward_passes(ddp, dropout_blocks, rank, device)
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
