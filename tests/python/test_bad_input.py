"""Bad arguments to the numpy API are fuseblock.UserError (a ValueError) naming the argument,
never InternalError, a silently ignored argument, or the binding library's own message."""
from __future__ import annotations

import numpy as np
import pytest

import fuseblock

SMALL = "input f32[2, 3, 8]\nconv1d 4 3\ndropout p=0.5 seed=1\n"


def x_for(block):
    return np.random.default_rng(0).uniform(size=block.input_shape).astype(np.float32)


@pytest.mark.parametrize("shape, what", [
    ([2, -3, 8], "input_shape[1] is -3"),
    ([-1, 3, 8], "input_shape[0] is -1"),
    ([2, 3, 2**63], "input_shape[2]"),
    ([4294967296, 1, 4294967296], "more bytes than"),      # each size fits int64, the element count does not
    ([2**61, 1, 1], "bytes"),                         # the element count fits, the bytes do not
])
def test_input_shape_out_of_range_is_a_user_error(shape, what):
    with pytest.raises(fuseblock.UserError) as e:
        fuseblock.Block(SMALL, input_shape=shape)
    assert what in str(e.value) or what in e.value.message
    assert not isinstance(e.value, fuseblock.InternalError)


def test_input_shape_needs_integers():
    with pytest.raises(TypeError, match="input_shape\\[1\\] must be an integer"):
        fuseblock.Block(SMALL, input_shape=[2, 3.5, 8])
    assert fuseblock.Block(SMALL, input_shape=[np.int64(5), 3, 8]).input_shape == (5, 3, 8)


def test_dropout_offset_without_seed_is_an_error():
    block = fuseblock.Block(SMALL)
    x = x_for(block)
    with pytest.raises(fuseblock.UserError, match="dropout_offset is given without dropout_seed"):
        block.run(x, device="cpu", dropout_offset=5)
    # With a seed the offset picks another mask; without both the spec's mask is used.
    spec_mask = block.run(x, device="cpu") == 0
    assert np.array_equal(block.run(x, device="cpu", dropout_seed=1) == 0, spec_mask)  # the spec's seed, offset 0
    assert not np.array_equal(block.run(x, device="cpu", dropout_seed=1, dropout_offset=5) == 0, spec_mask)


@pytest.mark.parametrize("kwargs", [{"dropout_seed": -1}, {"dropout_seed": 2**64}, {"dropout_seed": 1, "dropout_offset": -2}])
def test_run_seeds_out_of_range_are_user_errors(kwargs):
    block = fuseblock.Block(SMALL)
    with pytest.raises(fuseblock.UserError) as e:
        block.run(x_for(block), device="cpu", **kwargs)
    name = "dropout_offset" if "dropout_offset" in kwargs else "dropout_seed"
    assert name in str(e.value) and "incompatible function arguments" not in str(e.value)


def test_init_params_seed_out_of_range_is_a_user_error():
    block = fuseblock.Block(SMALL)
    for seed in (-1, 2**64):
        with pytest.raises(fuseblock.UserError, match="seed is"):
            fuseblock.init_params(block, seed)
    assert fuseblock.init_params(block, 2**64 - 1)["conv.weight"].shape == (4, 3, 3)


def test_spec_errors_of_the_new_kinds():
    with pytest.raises(fuseblock.UserError, match="max_val > min_val"):
        fuseblock.Block("input f32[1, 1, 8]\nconv1d 1 1\nhardtanh min_val=2 max_val=-2\n")
    with pytest.raises(fuseblock.UserError, match="params is given twice"):
        fuseblock.Block("params seed=1\ninput f32[1, 1, 8]\nconv1d 1 1\nparams seed=2\n")
    with pytest.raises(fuseblock.UserError, match="padding=9223372036854775807"):
        fuseblock.Block("input f32[1, 1, 10]\nconv1d 16 3 padding=9223372036854775807\n")


def test_argument_types_are_named_not_the_binding_signature():
    block = fuseblock.Block(SMALL)
    cases = [(lambda: block.run(x_for(block), device=None), "device must be"),
             (lambda: block.run(x_for(block), device="cpu", allow_tf32="yes"), "allow_tf32 must be True or False"),
             (lambda: fuseblock.Block(SMALL, training=1), "training must be True or False"),
             (lambda: fuseblock.Block(SMALL, assume_finite=None), "assume_finite must be True or False"),
             (lambda: fuseblock.init_params(block, True), "seed must be an integer, got bool"),
             (lambda: fuseblock.Block(SMALL, input_shape=[2, True, 8]), "must be an integer, got bool")]
    for call, what in cases:
        with pytest.raises(TypeError, match=what) as e:
            call()
        assert "incompatible function arguments" not in str(e.value)
    with pytest.raises(fuseblock.UserError, match="unknown device 'gpu'"):
        block.run(x_for(block), device="gpu")


def test_params_and_init_params_of_the_wrong_type_are_type_errors_naming_them():
    block = fuseblock.Block(SMALL)
    x = x_for(block)
    weight = fuseblock.init_params(block, 3)["conv.weight"]
    cases = [(lambda: block.run(x, params=[weight]), "params must be a dict"),
             (lambda: block.run(x, params={0: weight}), "params' keys must be str"),
             (lambda: fuseblock.init_params(SMALL, 3), "init_params takes a fuseblock.Block")]
    for call, what in cases:
        with pytest.raises(TypeError, match=what) as e:
            call()
        assert "incompatible function arguments" not in str(e.value)


def test_float32_of_the_other_byte_order_is_float32():
    block = fuseblock.Block(SMALL)
    x = x_for(block)
    params = fuseblock.init_params(block, 4)
    want = block.run(x, params, device="cpu")
    swapped = {k: v.astype(v.dtype.newbyteorder()) for k, v in params.items()}
    y = block.run(x.astype(x.dtype.newbyteorder()), swapped, device="cpu")
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("shape, hint", [
    ([2, 3, 8, 8], "use conv2d for a 4-dimensional input"),
    ([2, 3], "1 to 3 spatial dims"), ([8], "1 to 3 spatial dims"), ([], "1 to 3 spatial dims"),
    ([1, 2, 3, 4, 5, 6], "1 to 3 spatial dims"),
])
def test_an_input_of_another_rank_hints_only_convolutions_that_exist(shape, hint):
    """input_shape overrides the spec's input line: a rank no conv takes got 'use conv0d' (or
    conv18446744073709551615d for a 1-D shape) as its hint."""
    with pytest.raises(fuseblock.UserError, match="conv1d expects a 3-dimensional input") as e:
        fuseblock.Block(SMALL, input_shape=shape)
    assert hint in e.value.hint


def test_spec_file_size_is_limited_and_read_no_further(tmp_path):
    big = tmp_path / "big.block"
    big.write_text("input f32[1, 1, 8]\nconv1d 1 1\n" + "#" * (2 << 20))
    with pytest.raises(fuseblock.UserError, match="more than 1048576 bytes"):
        fuseblock.Block(str(big))
    with pytest.raises(fuseblock.UserError, match="more than 1048576 bytes"):
        fuseblock.Block("/dev/zero")


def test_non_ascii_and_invalid_utf8_in_a_spec_are_user_errors(tmp_path):
    with pytest.raises(fuseblock.UserError, match=r"3:6: error: unexpected character '\\xc3'"):
        fuseblock.Block("input f32[1, 1, 8]\nconv1d 1 1\nrelu \u00fc\n")
    bad = tmp_path / "bad.block"
    bad.write_bytes(b"input f32[1, 1, 8]\nconv1d 1 1\nrelu \xff\n")
    with pytest.raises(fuseblock.UserError, match="3:6: error: unexpected character"):
        fuseblock.Block(str(bad))
    with pytest.raises(fuseblock.UserError, match="\u00fc"):   # a quoted word keeps its characters
        fuseblock.Block("input f32[1, 1, 8]\nconv1d 1 1\nparams file='\u00fc.safetensors'\n").params()
