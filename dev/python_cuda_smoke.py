"""Smallest use of fuseblock.torch on a CUDA tensor: a repro for crashes in the CUDA path from
Python (run under cuda-gdb for a native backtrace)."""
import torch
import torch.nn as nn

import fuseblock.torch as fbt

torch.manual_seed(1)
torch.backends.cudnn.allow_tf32 = False
block = fbt.Block.from_modules(nn.Conv3d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.GELU(), nn.Dropout(0.3)).cuda().eval()
x = torch.rand(2, 3, 5, 6, 7, device="cuda")
y = block(x)
torch.cuda.synchronize()
ref = nn.functional.gelu(block.norm(block.conv(x)))
print("max |diff|", (y - ref).abs().max().item())
