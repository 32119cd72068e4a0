"""storage: one atomic writer for files and folders, clear output checks, safe JSON and safetensors reads."""

from __future__ import annotations

import errno
import json
import os
import threading

import pytest
import torch

from prunekit.checkpoint import load_checkpoint, save_checkpoint
from prunekit.errors import CheckpointError, OutputError
from prunekit.models import get_model
from prunekit.storage import (atomic_folder, atomic_path, atomic_write_bytes, atomic_write_text, check_output,
                              load_tensors, read_json, require, save_tensors, write_json)


def test_files_respect_the_umask_not_mkstemp_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        with atomic_folder(tmp_path / "ck") as tmp:
            atomic_write_text(tmp / "x", "1")
        save_tensors(tmp_path / "w.safetensors", {"w": torch.ones(2)})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "ck").stat().st_mode & 0o777 == 0o755


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"good old file")
    with pytest.raises(RuntimeError, match="exporter died"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("exporter died")
    assert target.read_bytes() == b"good old file" and os.listdir(tmp_path) == ["model.onnx"]


def test_a_full_disk_is_an_output_error_naming_the_file_and_loses_nothing(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    write_json(target, {"old": True})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left"):
        write_json(target, {"new": True})
    monkeypatch.undo()
    assert read_json(target) == {"old": True} and os.listdir(tmp_path) == ["results.json"]
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left on device"):
        atomic_write_bytes(target, b"x")
    monkeypatch.undo()
    assert read_json(target) == {"old": True} and os.listdir(tmp_path) == ["results.json"]


def test_concurrent_writers_never_share_a_temporary_name(tmp_path):
    target, errors = tmp_path / "points.json", []

    def write(i):
        try:
            for _ in range(20):
                write_json(target, {"writer": i, "pad": "x" * 10000})
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and read_json(target)["writer"] in range(4)
    assert os.listdir(tmp_path) == ["points.json"]


def test_resaving_a_checkpoint_replaces_the_folder_as_one_unit(tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    model = get_model("lenet300", seed=0)
    save_checkpoint(folder, model, model_name="lenet300", metrics={"test_accuracy": 0.9})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    import prunekit.checkpoint.folder as folder_module

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed half-way: weights written, metrics not

    monkeypatch.setattr(folder_module, "write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(folder, get_model("lenet300", seed=1), model_name="lenet300", metrics={"test_accuracy": 0.1})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # old weights with old metrics
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # the temporary folder is gone
    save_checkpoint(folder, get_model("lenet300", seed=1), model_name="lenet300", metrics={"test_accuracy": 0.1})
    assert load_checkpoint(folder).metrics == {"test_accuracy": 0.1}
    assert not torch.equal(load_checkpoint(folder).model.fc1.weight, model.fc1.weight)


def test_outputs_are_checked_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="output folder .*file exists and is a file"):
        check_output(tmp_path / "file")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "sub")
    (tmp_path / "ck").mkdir()
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_output(tmp_path / "ck", inputs=[tmp_path / "ck"])
    (tmp_path / "ck" / "inner").mkdir()
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_output(tmp_path / "ck", inputs=[tmp_path / "ck" / "inner"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(OutputError, match="not a prunekit checkpoint"):
        check_output(tmp_path / "mine")
    assert check_output(tmp_path / "mine", allow_other_files=True) == tmp_path / "mine"
    with pytest.raises(OutputError, match="exists and is a folder"):
        check_output(tmp_path / "mine", kind="file")
    assert check_output(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"


def test_an_unwritable_output_folder_is_refused(tmp_path, monkeypatch):
    import tempfile

    real = tempfile.mkstemp

    def denied(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputError, match="ro is not writable"):
        check_output(tmp_path / "ro" / "out")


@pytest.mark.parametrize("text, words", [
    ("{not json", "is not valid JSON"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_bad_json_files_are_named(tmp_path, text, words):
    path = tmp_path / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CheckpointError, match=words) as info:
        read_json(path)
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointError, match="is a folder"):
        read_json(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_json(tmp_path / "missing.json")


def test_require_checks_json_types():
    assert require({"a": 1}, "a", int, where="x") == 1
    assert require({}, "a", int, where="x", default=None) is None
    with pytest.raises(CheckpointError, match="'a' must be int or float, got bool True"):
        require({"a": True}, "a", (int, float), where="x")
    with pytest.raises(CheckpointError, match="'a' is missing"):
        require({}, "a", int, where="x")
    with pytest.raises(CheckpointError, match="expected a JSON object"):
        require([1], "a", int, where="x")


def test_tensors_files_folders_and_garbage(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        load_tensors(tmp_path)
    (tmp_path / "junk.safetensors").write_bytes(json.dumps({"a": 1}).encode())
    with pytest.raises(CheckpointError, match="junk.safetensors is not a readable"):
        load_tensors(tmp_path / "junk.safetensors")
