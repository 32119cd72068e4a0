"""Compressed files: encodings, exact round trips, size targets, corrupt files, ONNX, CLI."""

import json

import numpy as np
import pytest
import safetensors.numpy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from prunekit.checkpoint import load_checkpoint, save_checkpoint
from prunekit.cli import main
from prunekit.errors import CheckpointError
from prunekit.deploy.sparse_file import export_sparse, load_sparse, load_sparse_model, sparse_file_bytes
from prunekit.models import get_model
from prunekit.deploy import export_onnx
from prunekit.prune import prune_model
from prunekit.compact import compact
from prunekit.deploy.sparse_format import candidates, decode, encode, index_dtype, nbytes


def sparse_array(shape, density, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
                  elements=st.sampled_from([0.0, 0.0, 0.0, 1.5, -2.25, 3e-8])))
def test_every_encoding_round_trips_exactly(array):
    for kind, parts in candidates(array).items():
        assert np.array_equal(decode(kind, parts, array.shape, "float32"), array), kind


@pytest.mark.parametrize("shape,density,expected", [
    ((300, 784), 0.05, "csr_rel"), ((10, 200), 0.02, "csr"), ((100, 100), 0.5, "bitmask"),
    ((16, 6, 5, 5), 0.2, "bitmask"), ((50, 50), 1.0, "dense"),
])
def test_chosen_encoding_is_the_smallest(shape, density, expected):
    array = sparse_array(shape, density)
    kind, parts = encode(array)
    sizes = {k: nbytes(v) for k, v in candidates(array).items()}
    assert kind == expected
    assert nbytes(parts) == min(sizes.values()) == sizes[kind]


def test_index_dtypes_are_the_smallest_that_fit():
    assert [index_dtype(v).name for v in (0, 255, 256, 65535, 65536, 2**31)] == \
        ["uint8", "uint8", "uint16", "uint16", "int32", "int64"]
    narrow = candidates(sparse_array((50, 256), 0.05))["csr"]
    wide = candidates(sparse_array((50, 257), 0.05))["csr"]
    assert narrow["indices"].dtype == np.uint8 and wide["indices"].dtype == np.uint16


def test_relative_indices_bridge_long_gaps_with_zero_fillers():
    array = np.zeros((2, 2000), np.float32)
    array[0, [0, 1999]] = [1.0, 2.0]
    array[1, 700] = 3.0
    parts = candidates(array)["csr_rel"]
    assert parts["gaps"].dtype == np.uint8 and len(parts["values"]) == 3 + 7 + 2  # 1998/256 -> 7, 700/256 -> 2
    assert np.array_equal(decode("csr_rel", parts, array.shape, "float32"), array)


def test_sparse_file_round_trips_to_identical_outputs(tmp_path):
    model = get_model("lenet5", seed=0).eval()
    prune_model(model, "weight", 90.0)
    info = export_sparse(model, tmp_path / "m.safetensors")
    state = load_sparse(tmp_path / "m.safetensors")
    assert all(torch.equal(state[k], v) and state[k].dtype == v.dtype for k, v in model.state_dict().items())
    x = torch.randn(8, 1, 28, 28)
    assert torch.equal(load_sparse_model(tmp_path / "m.safetensors")(x), model(x))
    assert info.file_bytes == (tmp_path / "m.safetensors").stat().st_size < info.dense_file_bytes


def test_fp16_values_give_close_outputs(tmp_path):
    model = get_model("lenet300", seed=0).eval()
    prune_model(model, "weight", 80.0)
    export_sparse(model, tmp_path / "h.safetensors", fp16=True)
    x = torch.randn(8, 1, 28, 28)
    got = load_sparse_model(tmp_path / "h.safetensors")(x)
    assert torch.allclose(got, model(x), atol=1e-2) and not torch.equal(got, model(x))


def test_reference_mlp_at_95_percent_meets_the_size_targets():
    model = get_model("mlp", seed=0)
    prune_model(model, "weight", 95.0)
    assert sparse_file_bytes(model).ratio >= 12
    assert sparse_file_bytes(model, fp16=True).ratio >= 20


def test_file_size_shrinks_as_sparsity_grows():
    sizes = []
    for k in (0.0, 50.0, 80.0, 95.0, 99.0):
        model = get_model("lenet300", seed=0)
        prune_model(model, "weight", k)
        sizes.append(sparse_file_bytes(model).file_bytes)
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)


def test_corrupt_or_foreign_files_are_clear_errors(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_sparse(tmp_path / "junk")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_sparse(tmp_path / "missing")
    safetensors.numpy.save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "plain"))
    with pytest.raises(CheckpointError, match="not a prunekit sparse file"):
        load_sparse(tmp_path / "plain")
    model = nn.Linear(300, 20, bias=False)
    prune_model(model, "weight", 95.0, include_output=True)
    info = export_sparse(model, tmp_path / "ok")
    assert info.tensors[0].encoding == "csr_rel"
    with safetensors.safe_open(str(tmp_path / "ok"), "np") as f:
        meta, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    arrays["weight/gaps"][:] = 255  # every entry 256 columns further: past the 300 columns
    safetensors.numpy.save_file(arrays, str(tmp_path / "bad"), metadata=meta)
    with pytest.raises(CheckpointError, match="'weight' is corrupt.*column indices out of range"):
        load_sparse(tmp_path / "bad")
    meta["tensors"] = json.dumps({"weight": {"encoding": "zip", "shape": [20, 300], "dtype": "float32"}})
    safetensors.numpy.save_file(arrays, str(tmp_path / "bad2"), metadata=meta)
    with pytest.raises(CheckpointError, match="unknown encoding 'zip'"):
        load_sparse(tmp_path / "bad2")


def test_onnx_of_a_compact_model_matches_onnxruntime(tmp_path):
    model = get_model("convnet", seed=0, channels=(8, 8, 16, 16), hidden=32).eval()
    small = compact(model, prune_model(model, "unit", 50.0)).model
    info = export_onnx(small, tmp_path / "m.onnx", input_shape=(1, 28, 28))
    assert info.max_abs_diff <= 1e-4 and info.file_bytes == (tmp_path / "m.onnx").stat().st_size


@pytest.fixture
def pruned_checkpoint(tmp_path):
    model = get_model("lenet300", seed=0)
    mask = prune_model(model, "unit", 50.0)
    return save_checkpoint(tmp_path / "ck", model, model_name="lenet300", mask=mask, dataset="mnist"), model.eval()


def test_cli_compact_and_export(pruned_checkpoint, tmp_path, capsys):
    ckpt, model = pruned_checkpoint
    assert main(["compact", "--checkpoint", str(ckpt), "--out", str(tmp_path / "c")]) == 0
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(load_checkpoint(tmp_path / "c").model(x), model(x), atol=1e-5)
    assert main(["export", "--checkpoint", str(ckpt), "--format", "sparse", "--fp16",
                 "--out", str(tmp_path / "s.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "compacted" in out and "(fp16 values)" in out and "x smaller" in out
    assert (tmp_path / "s.safetensors").stat().st_size < (ckpt / "model.safetensors").stat().st_size / 2


def test_cli_rejects_bad_format_and_options(pruned_checkpoint, tmp_path, capsys):
    ckpt, _ = pruned_checkpoint
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", str(ckpt), "--format", "zip", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "invalid choice: 'zip'" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--fp16", "--out", "x"]) == 2
    assert "--format sparse only" in capsys.readouterr().err
