"""Fuzzing the loaders of files a user hands in: checkpoints, masks, compact folders, sparse files.

Every mutation either loads or fails with prunekit's own error type (a clear message naming the
file), never a raw TypeError/KeyError/AttributeError; and nothing is ever unpickled. A mutated file
of a save differs from its manifest: it is read as it is, with a warning, so the parsers are fuzzed.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from prunekit.checkpoint import load_checkpoint, save_checkpoint
from prunekit.deploy import export_sparse, load_sparse, load_sparse_model
from prunekit.errors import PrunekitError
from prunekit.models import get_model
from prunekit.prune import Mask, prune_model

pytestmark = pytest.mark.filterwarnings("ignore::prunekit.storage.ChangedFileWarning")  # every mutation warns

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    model = get_model("lenet5", seed=0)
    mask = prune_model(model, "unit", 50.0)
    save_checkpoint(root / "ck", model, model_name="lenet5", mask=mask, dataset="mnist", input_shape=[1, 28, 28])
    small = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    save_checkpoint(root / "compact", small, model_name=None, architecture=True)
    prune_model(small, "weight", 90.0)
    export_sparse(small, root / "sparse.safetensors")
    return root


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _mutate_json(data, choice: int, value, delete: bool):
    paths = list(_paths(data))[1:]
    if not paths:
        return value
    path = paths[choice % len(paths)]
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


def _copy(originals, name, tmp_path):
    target = tmp_path / name
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    src = originals / name
    (shutil.copytree if src.is_dir() else shutil.copy)(src, target)
    return target


def _load_or_clear_error(fn):
    try:
        fn()
    except PrunekitError as exc:
        assert str(exc), "an error with no message"


@FUZZ
@given(file=st.sampled_from(["config.json", "metrics.json"]), choice=st.integers(0, 10**6), value=json_values,
       delete=st.booleans())
def test_checkpoint_json_mutations(originals, tmp_path, file, choice, value, delete):
    folder = _copy(originals, "ck", tmp_path)
    data = json.loads((folder / file).read_text())
    (folder / file).write_text(json.dumps(_mutate_json(data, choice, value, delete)))
    _load_or_clear_error(lambda: load_checkpoint(folder))


@FUZZ
@given(choice=st.integers(0, 10**6), value=json_values, delete=st.booleans())
def test_compact_architecture_mutations(originals, tmp_path, choice, value, delete):
    folder = _copy(originals, "compact", tmp_path)
    data = json.loads((folder / "architecture.json").read_text())
    (folder / "architecture.json").write_text(json.dumps(_mutate_json(data, choice, value, delete)))
    _load_or_clear_error(lambda: load_checkpoint(folder))


@FUZZ
@given(file=st.sampled_from(["model.safetensors", "masks.safetensors"]), position=st.integers(0, 10**7),
       byte=st.integers(0, 255), truncate=st.booleans())
def test_checkpoint_binary_mutations(originals, tmp_path, file, position, byte, truncate):
    folder = _copy(originals, "ck", tmp_path)
    data = bytearray((folder / file).read_bytes())
    position %= len(data)
    if truncate:
        data = data[:position]
    else:
        data[position] = byte
    (folder / file).write_bytes(bytes(data))
    _load_or_clear_error(lambda: load_checkpoint(folder))
    _load_or_clear_error(lambda: Mask.load(folder / "masks.safetensors"))


@FUZZ
@given(position=st.integers(0, 10**6), byte=st.integers(0, 255), truncate=st.booleans(),
       choice=st.integers(0, 10**6), value=json_values, meta_key=st.sampled_from(["tensors", "architecture", None]))
def test_sparse_file_mutations(originals, tmp_path, position, byte, truncate, choice, value, meta_key):
    path = _copy(originals, "sparse.safetensors", tmp_path)
    data = bytearray(path.read_bytes())
    if meta_key is not None:  # rewrite one metadata entry with a mutated JSON document
        import safetensors
        import safetensors.numpy

        with safetensors.safe_open(str(path), "np") as f:
            meta, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        meta[meta_key] = json.dumps(_mutate_json(json.loads(meta[meta_key]), choice, value, False))
        safetensors.numpy.save_file(arrays, str(path), metadata=meta)
    else:
        position %= len(data)
        if truncate:
            data = data[:position]
        else:
            data[position] = byte
        path.write_bytes(bytes(data))
    _load_or_clear_error(lambda: load_sparse(path))
    _load_or_clear_error(lambda: load_sparse_model(path))


def test_a_pickle_is_never_loaded(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    folder = save_checkpoint(tmp_path / "ck", get_model("lenet5"), model_name="lenet5")
    (folder / "model.safetensors").write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(PrunekitError, match="not a readable"):
        load_checkpoint(folder)
    torch.save({"w": torch.zeros(1)}, folder / "masks.safetensors")
    with pytest.raises(PrunekitError):
        Mask.load(folder / "masks.safetensors")
