"""The numpy API of the fuseblock package on the CPU: the default block, errors with line:col,
the guarded fill path, and non-collapsing chains against a float64 numpy reference."""
from __future__ import annotations

import json
import struct
import threading

import numpy as np
import pytest

import fuseblock
import numpy_reference as ref

SMALL_83 = """\
input f32[3, 3, 6, 7, 8]
conv3d out_channels=16 kernel_size=3
group_norm num_groups=8 eps=1e-5
minimum 0.0
clamp min=0.0 max=1.0
dropout p=0.2 training=true
"""


def rand(shape, seed, lo=0.0, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(np.float32)


# ---- the default block ---------------------------------------------------------------------


def test_default_spec_is_problem_83():
    block = fuseblock.Block()
    assert block.input_shape == (128, 3, 16, 64, 64)
    assert block.output_shape == (128, 16, 14, 62, 62)
    assert block.fill_path and block.guarded
    assert fuseblock.Block(fuseblock.default_spec()).output_shape == block.output_shape
    text = block.explain()
    assert "after infer_shapes" in text and "guard" in text and "fallback" in text


def test_default_block_on_a_small_input_shape():
    block = fuseblock.Block(input_shape=(2, 3, 5, 6, 7))
    assert block.output_shape == (2, 16, 3, 4, 5)
    y = block.run(rand(block.input_shape, 0), device="cpu")
    assert y.shape == block.output_shape and y.dtype == np.float32
    assert np.all(y == 0.0)


# ---- errors --------------------------------------------------------------------------------


def test_spec_error_carries_line_and_column():
    with pytest.raises(fuseblock.UserError) as e:
        fuseblock.Block("input f32[2, 3, 8, 8]\nconv2d 16 3\ngroup_norm num_groups=5\n")
    assert isinstance(e.value, ValueError)
    assert (e.value.line, e.value.col) == (3, 12)
    assert str(e.value).startswith("<spec>:3:12: error: 16 channels cannot be split into 5 groups")
    assert "hint:" in str(e.value) and e.value.hint


def test_unknown_op_is_a_user_error_at_its_line():
    with pytest.raises(fuseblock.UserError) as e:
        fuseblock.Block("input f32[2, 3, 8, 8]\nconv2d 16 3\nsilly 1\n")
    assert e.value.line == 3 and "<spec>:3:" in str(e.value)


def test_spec_file_error_names_the_file(tmp_path):
    path = tmp_path / "bad.block"
    path.write_text("input f32[2, 3, 8, 8]\nconv2d 16 3\ndropout p=1.5\n")
    with pytest.raises(fuseblock.UserError) as e:
        fuseblock.Block(path)
    assert str(e.value).startswith(f"{path}:3:")


def test_run_errors():
    block = fuseblock.Block(SMALL_83)
    with pytest.raises(fuseblock.UserError, match="shape"):
        block.run(np.zeros((1, 3, 6, 7, 8), np.float32), device="cpu")
    with pytest.raises(TypeError, match="float32"):
        block.run(np.zeros(block.input_shape, np.float64), device="cpu")
    with pytest.raises(fuseblock.UserError, match="unknown parameter"):
        block.run(rand(block.input_shape, 1), params={"conv.wieght": np.zeros(1, np.float32)}, device="cpu")
    with pytest.raises(fuseblock.UserError, match="conv.weight"):
        block.run(rand(block.input_shape, 1), params={"conv.weight": np.zeros((2, 2), np.float32)}, device="cpu")
    with pytest.raises(fuseblock.UserError, match="unknown device"):
        block.run(rand(block.input_shape, 1), device="tpu")


# ---- the guarded fill path -----------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True])
def test_fill_path_exact_zeros_and_nan_for_a_nan_sample(training):
    block = fuseblock.Block(SMALL_83, training=training)
    assert block.fill_path and block.guarded
    x = rand(block.input_shape, 2)
    x_before = x.copy()
    y = block.run(x, device="cpu")
    assert np.array_equal(x, x_before)  # the input is left unchanged
    assert np.all(y == 0.0)
    x[1, 2, 3, 4, 5] = np.nan
    y = block.run(x, device="cpu")
    # PyTorch: the NaN spreads through the conv window and GroupNorm's statistics to every
    # element of sample 1; min/clamp keep NaN; dropout's x * 0 keeps it too.
    assert np.all(np.isnan(y[1]))
    assert np.all(y[0] == 0.0) and np.all(y[2] == 0.0)


def test_assume_finite_drops_the_guard():
    block = fuseblock.Block(SMALL_83, assume_finite=True)
    assert block.fill_path and not block.guarded
    assert np.all(block.run(rand(block.input_shape, 3), device="cpu") == 0.0)


# ---- non-collapsing chains against the float64 reference -----------------------------------

CHAINS = {
    "silu": ("silu", ref.silu),
    "gelu": ("gelu", ref.gelu),
    "min_clamp": ("minimum 0.5\nclamp min=0.0 max=0.5", lambda y: ref.clamp(ref.minimum(y, 0.5), 0.0, 0.5)),
}


def chain_spec(chain: str, dims: int, dropout: str) -> str:
    shape = {2: "[2, 3, 9, 10]", 3: "[2, 3, 5, 6, 7]"}[dims]
    return (f"input f32{shape}\nconv{dims}d out_channels=8 kernel_size=3 padding=1\n"
            f"group_norm num_groups=4 eps=1e-5\n{chain}\ndropout {dropout}\n")


def affine_params(block, seed):
    """The default init, with GroupNorm weight and bias made non-trivial so they are exercised."""
    params = fuseblock.init_params(block, seed)
    c = params["norm.weight"].shape[0]
    params["norm.weight"] = rand((c,), seed + 1, 0.5, 2.0)
    params["norm.bias"] = rand((c,), seed + 2, -0.5, 0.5)
    return params


def reference_forward(x, params, chain_fn, groups=4):
    y = ref.conv_nd(x, params["conv.weight"], params["conv.bias"], padding=1)
    y = ref.group_norm(y, groups, params["norm.weight"], params["norm.bias"])
    return chain_fn(y)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_chain_eval_matches_float64_reference(chain, dims):
    text, fn = CHAINS[chain]
    block = fuseblock.Block(chain_spec(text, dims, "p=0.3 training=false"))
    assert not block.fill_path
    params = affine_params(block, 10)
    x = rand(block.input_shape, 11, -2.0, 2.0)
    y = block.run(x, params=params, device="cpu")
    expected = reference_forward(x, params, fn)
    assert np.std(expected) > 0.05  # a reference that cannot tell a wrong answer is no test
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_chain_training_dropout_mask_and_scale():
    p, seed, offset = 0.3, 1234, 56
    text, fn = CHAINS["silu"]
    block = fuseblock.Block(chain_spec(text, 3, f"p={p} training=true"))
    params = affine_params(block, 20)
    x = rand(block.input_shape, 21, -2.0, 2.0)
    y = block.run(x, params=params, device="cpu", dropout_seed=seed, dropout_offset=offset)
    expected = reference_forward(x, params, fn).astype(np.float32)
    keep = ref.dropout_keep_mask(y.size, p, seed, offset).reshape(y.shape)
    # Keep rate within 5 binomial standard deviations.
    n = keep.size
    assert abs(keep.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    assert np.all(y[~keep] == 0.0)
    np.testing.assert_allclose(y[keep], expected[keep] * ref.dropout_scale(p), rtol=1e-4, atol=1e-5)
    # The same stream gives the same mask; another seed or offset another one.
    assert np.array_equal(y, block.run(x, params=params, device="cpu", dropout_seed=seed, dropout_offset=offset))
    other = block.run(x, params=params, device="cpu", dropout_seed=seed + 1, dropout_offset=offset)
    assert not np.array_equal(y == 0, other == 0)


def test_nan_in_input_gives_nan_sample_on_the_exact_path():
    text, fn = CHAINS["gelu"]
    block = fuseblock.Block(chain_spec(text, 2, "p=0.3 training=false"))
    x = rand(block.input_shape, 30, -1.0, 1.0)
    x[0, 1, 2, 3] = np.inf
    y = block.run(x, device="cpu")
    assert np.all(np.isnan(y[0]))
    assert np.all(np.isfinite(y[1]))


def test_non_contiguous_input_gives_the_same_output():
    block = fuseblock.Block(chain_spec("silu", 2, "p=0.3 training=false"))
    x = rand(block.input_shape, 40)
    x_fortran = np.asfortranarray(x)
    assert not x_fortran.flags.c_contiguous
    assert np.array_equal(block.run(x, device="cpu"), block.run(x_fortran, device="cpu"))


def test_runs_from_several_threads():
    block = fuseblock.Block(chain_spec("gelu", 3, "p=0.3 training=false"))
    x = rand(block.input_shape, 50)
    expected = block.run(x, device="cpu")
    results = [None] * 4

    def work(i):
        results[i] = block.run(x, device="cpu")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert np.array_equal(r, expected)


# ---- parameters ----------------------------------------------------------------------------


def test_init_params_follow_pytorch_defaults():
    block = fuseblock.Block(SMALL_83)
    params = fuseblock.init_params(block, 7)
    assert sorted(params) == ["conv.bias", "conv.weight", "norm.bias", "norm.weight"]
    w = params["conv.weight"]
    assert w.shape == (16, 3, 3, 3, 3) and w.dtype == np.float32
    bound = 1.0 / np.sqrt(3 * 27)  # kaiming_uniform(a=sqrt(5)) and the bias both: 1/sqrt(fan_in)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(params["conv.bias"]).max() <= bound
    assert np.all(params["norm.weight"] == 1.0) and np.all(params["norm.bias"] == 0.0)
    assert np.array_equal(w, fuseblock.init_params(block, 7)["conv.weight"])
    assert not np.array_equal(w, fuseblock.init_params(block, 8)["conv.weight"])


def write_safetensors(path, tensors):
    """A safetensors file by its format: u64 header length, JSON header, raw little-endian data."""
    header, data = {}, b""
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + data)


def test_spec_file_with_relative_params_file(tmp_path):
    spec = chain_spec("silu", 2, "p=0.3 training=false") + "params file=weights.safetensors\n"
    probe = fuseblock.Block(spec.replace("params file=weights.safetensors\n", ""))
    params = affine_params(probe, 60)
    write_safetensors(tmp_path / "weights.safetensors", params)
    (tmp_path / "silu.block").write_text(spec)
    block = fuseblock.Block(str(tmp_path / "silu.block"))
    for name, a in params.items():
        assert np.array_equal(block.params()[name], a)
    x = rand(block.input_shape, 61)
    assert np.array_equal(block.run(x, device="cpu"), probe.run(x, params=params, device="cpu"))


# ---- bf16 and f16 blocks -------------------------------------------------------------------


def test_f16_block_takes_and_returns_float16():
    block = fuseblock.Block(chain_spec("silu", 2, "p=0.3 training=false").replace("input f32", "input f16"))
    assert block.dtype == "f16"
    params = fuseblock.init_params(block, 3)
    assert all(v.dtype == np.float16 for v in params.values())
    x = rand(block.input_shape, 31, -2.0, 2.0).astype(np.float16)
    y = block.run(x, params=params, device="cpu")
    assert y.dtype == np.float16 and y.shape == block.output_shape
    # Against the float64 reference on the same (half) values: within the half tolerance.
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    expected = reference_forward(x.astype(np.float64), p64, ref.silu)
    assert np.std(expected) > 0.05
    err = np.linalg.norm(y.astype(np.float64) - expected) / np.linalg.norm(expected)
    assert err < 2e-2
    with pytest.raises(TypeError, match="float16"):
        block.run(x.astype(np.float32), device="cpu")


def test_bf16_block_uses_float32_arrays_of_bf16_values():
    block = fuseblock.Block(chain_spec("gelu", 3, "p=0.3 training=false").replace("input f32", "input bf16"))
    assert block.dtype == "bf16"
    x = rand(block.input_shape, 41, -2.0, 2.0)
    y = block.run(x, device="cpu")
    assert y.dtype == np.float32
    # Every output value is a bf16 value: its low 16 bits are zero.
    assert np.all((y.view(np.uint32) & 0xFFFF) == 0)
    # The input is rounded to bf16 (as torch's .to(torch.bfloat16)): already-rounded input gives the same.
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
    assert np.array_equal(block.run(rounded, device="cpu"), y)


def test_one_line_spec_text_with_semicolons_is_text_as_on_the_cli():
    """'input ...; conv1d ...' (the CLI's --spec-text form) is a spec, not a file name."""
    x = np.random.default_rng().random((1, 2, 6), dtype=np.float32)
    one_line = fuseblock.Block("input f32[1, 2, 6]; conv1d 3 3; group_norm 1; silu")
    lines = fuseblock.Block("input f32[1, 2, 6]\nconv1d 3 3\ngroup_norm 1\nsilu\n")
    assert np.array_equal(one_line.run(x, device="cpu"), lines.run(x, device="cpu"))
    # One line with no ';' that starts like a spec is a spec too: its error is the parser's.
    with pytest.raises(fuseblock.UserError, match="no convolution"):
        fuseblock.Block("input f32[1, 1, 4]")
    with pytest.raises(FileNotFoundError):
        fuseblock.Block("no_such_file.block")
