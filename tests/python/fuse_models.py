"""Small hand-written models shaped like the ones fuse() is for (written for these tests, after
the structure of diffusers' ResnetBlock2D, MONAI's Convolution/ADN and SegResNet's ResBlock)."""
from __future__ import annotations

import torch
from torch import nn


class ResnetLike(nn.Module):
    """diffusers' ResnetBlock2D: norm1 -> act -> conv1 -> + temb[:, :, None, None] -> norm2 -> act
    -> dropout -> conv2, plus the input. `temb` may be None (a VAE's blocks)."""

    def __init__(self, c=8, temb_channels=6, groups=4, p=0.1):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c, eps=1e-6)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, c) if temb_channels else None
        self.norm2 = nn.GroupNorm(groups, c, eps=1e-6)
        self.dropout = nn.Dropout(p)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.nonlinearity = nn.SiLU()

    def forward(self, input_tensor, temb, *args, **kwargs):
        if len(args) > 0 or kwargs.get("scale", None) is not None:
            raise ValueError("scale is not taken")
        h = self.nonlinearity(self.norm1(input_tensor))
        h = self.conv1(h)
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.dropout(self.nonlinearity(self.norm2(h)))
        return input_tensor + self.conv2(h)


class TinyUNet(nn.Module):
    """conv_in, a time embedding, and resnets called in a loop over a ModuleList."""

    def __init__(self, c=8, temb_channels=6):
        super().__init__()
        self.conv_in = nn.Conv2d(3, c, 3, padding=1)
        self.time = nn.Linear(1, temb_channels)
        self.resnets = nn.ModuleList([ResnetLike(c, temb_channels), ResnetLike(c, temb_channels)])
        self.conv_out = nn.Conv2d(c, 3, 1)

    def forward(self, x, t):
        temb = self.time(t[:, None])
        h = self.conv_in(x)
        for r in self.resnets:
            h = r(h, temb)
        return self.conv_out(h)


class ADN(nn.Sequential):
    """MONAI's ADN in "NDA" order: norm -> dropout -> activation."""

    def __init__(self, norm, p, act):
        super().__init__()
        self.add_module("N", norm)
        self.add_module("D", nn.Dropout(p))
        self.add_module("A", act)


class Convolution(nn.Sequential):
    """MONAI's Convolution: conv, then ADN unless conv_only."""

    def __init__(self, cin, cout, stride=1, norm="instance", act="prelu", p=0.1, conv_only=False):
        super().__init__()
        self.add_module("conv", nn.Conv3d(cin, cout, 3, stride=stride, padding=1))
        if not conv_only:
            n = nn.InstanceNorm3d(cout) if norm == "instance" else nn.GroupNorm(2, cout)
            a = nn.PReLU(cout) if act == "prelu" else nn.ReLU(inplace=True)
            self.add_module("adn", ADN(n, p, a))


def monai_like_unet():
    return nn.Sequential(Convolution(1, 4, stride=2), Convolution(4, 8, norm="group", act="relu"),
                         Convolution(8, 2, conv_only=True))


class SegResBlock(nn.Module):
    """SegResNet's ResBlock: norm1 -> act -> conv1 -> norm2 -> act -> conv2, plus the input; the
    ReLU module is used twice, the convs sit in conv-only Convolutions."""

    def __init__(self, c=8):
        super().__init__()
        self.norm1 = nn.GroupNorm(4, c)
        self.norm2 = nn.GroupNorm(4, c)
        self.act = nn.ReLU(inplace=True)
        self.conv1 = Convolution(c, c, conv_only=True)
        self.conv2 = Convolution(c, c, conv_only=True)

    def forward(self, x):
        identity = x
        x = self.conv1(self.act(self.norm1(x)))
        x = self.conv2(self.act(self.norm2(x)))
        x += identity
        return x


def segresnet_like():
    return nn.Sequential(Convolution(1, 8, conv_only=True), SegResBlock(8), SegResBlock(8))


def nested_sequentials():
    """A run split over nested Sequentials: (conv, GroupNorm), (SiLU, Dropout)."""
    return nn.Sequential(nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.GroupNorm(2, 8)),
                         nn.Sequential(nn.SiLU(), nn.Dropout(0.2)), nn.Conv1d(8, 4, 1))


class DataDependent(nn.Module):
    """A forward fx cannot trace (a branch on a tensor's value) around a fusable Sequential."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8), nn.GELU())

    def forward(self, x):
        if x.mean() > 100:
            return x
        return self.body(x)


class Refused(nn.Module):
    """Blocks fuse() must leave: a grouped conv, and a norm whose output is used twice."""

    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(4, 8, 3, groups=2)
        self.gn1 = nn.GroupNorm(4, 8)
        self.conv = nn.Conv2d(8, 8, 1)
        self.gn2 = nn.GroupNorm(4, 8)
        self.act = nn.SiLU()

    def forward(self, x):
        y = self.gn1(self.grouped(x))
        z = self.gn2(self.conv(y))
        return self.act(z) + z


def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
