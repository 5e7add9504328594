"""Block.run(x, channel_add=...) for a block with add_per_sample_channel (diffusers' time
embedding: conv1(x) + temb[:, :, None, None] -> GroupNorm -> SiLU), against numpy in float64,
and its errors."""
from __future__ import annotations

import numpy as np
import pytest

import fuseblock
import numpy_reference as ref

SPEC = "input f32[2, 3, 6, 6]\nconv2d 8 3 padding=1\nadd_per_sample_channel\ngroup_norm 4 eps=1e-6\nsilu\n"


def test_matches_numpy_with_the_add_before_the_norm():
    block = fuseblock.Block(SPEC)
    params = fuseblock.init_params(block, 3)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=block.input_shape).astype(np.float32)
    temb = rng.uniform(-3, 3, size=(2, 8)).astype(np.float32)
    y = block.run(x, params, "cpu", channel_add=temb)
    conv = ref.conv_nd(x, params["conv.weight"], params["conv.bias"], padding=1)
    want = ref.silu(ref.group_norm(conv + temb[:, :, None, None].astype(np.float64), 4, params["norm.weight"],
                                   params["norm.bias"], eps=1e-6))
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    # The add matters: without it (zeros) the output differs.
    y0 = block.run(x, params, "cpu", channel_add=np.zeros((2, 8), np.float32))
    assert np.abs(y0 - y).max() > 1e-2


def test_nan_in_the_added_input_reaches_its_group():
    block = fuseblock.Block(SPEC)
    x = np.zeros(block.input_shape, np.float32)
    temb = np.zeros((2, 8), np.float32)
    temb[1, 5] = np.nan  # channel 5 is in group 2 (channels 4 and 5) of sample 1
    y = block.run(x, device="cpu", channel_add=temb)
    assert np.isnan(y[1, 4:6]).all()
    assert not np.isnan(y[0]).any() and not np.isnan(y[1, :4]).any() and not np.isnan(y[1, 6:]).any()


def test_errors_name_the_expected_shape():
    block = fuseblock.Block(SPEC)
    x = np.zeros(block.input_shape, np.float32)
    with pytest.raises(fuseblock.UserError, match=r"\[2, 8\].*none was given"):
        block.run(x, device="cpu")
    with pytest.raises(fuseblock.UserError, match=r"has shape \[2, 3\], but the block expects \[2, 8\]"):
        block.run(x, device="cpu", channel_add=np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="channel_add must be float32"):
        block.run(x, device="cpu", channel_add=np.zeros((2, 8), np.float64))
    plain = fuseblock.Block("input f32[2, 3, 6, 6]\nconv2d 8 3\ngroup_norm 4\n")
    with pytest.raises(fuseblock.UserError, match="has no add_per_sample_channel"):
        plain.run(np.zeros(plain.input_shape, np.float32), device="cpu", channel_add=np.zeros((2, 8), np.float32))
