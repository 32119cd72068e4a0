"""Trust: points do not depend on the machine's load, no code named in a checkpoint runs, no user file is
deleted, a command never overwrites its own input, and a reader never sees half of two saves."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sys
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prunekit.deploy.fast_eval as fast_eval
import prunekit.deploy.sparse_linear as sparse_linear
from prunekit.checkpoint import load_checkpoint, save_checkpoint
from prunekit.cli import main
from prunekit.deploy import fast_evaluate, fast_model
from prunekit.errors import CheckpointError, OutputError
from prunekit.models import get_model
from prunekit.prune import prune_model
from prunekit.storage import check_output


# --- 0. evaluation does not depend on timing -----------------------------------------------------------

def test_fast_evaluation_chooses_its_kernels_without_timing_anything(monkeypatch):
    """A sweep's points were evaluated with kernels picked by a timing, so a loaded machine picked others,
    which round differently: equal configs gave different points (the iterative weight 90% point)."""
    def no_timing(*args, **kwargs):
        raise AssertionError("fast evaluation timed something")

    monkeypatch.setattr(fast_eval, "measure", no_timing)
    monkeypatch.setattr(sparse_linear, "measure", no_timing)
    monkeypatch.setattr(fast_eval, "_CROSSOVER", {})
    model = get_model("lenet300", seed=0)
    prune_model(model, "weight", 95.0)
    x, y = torch.randn(300, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(300) % 10
    first = fast_evaluate(model, None, x, y)
    kinds = {type(m).__name__ for m in fast_model(model).modules()}
    assert "SparseLinear" in kinds  # 95% sparse layers do run sparse, by the fixed rule
    assert fast_evaluate(model, None, x, y) == first


# --- 1. no code named in a checkpoint runs ---------------------------------------------------------------

CODE = """
import pathlib
pathlib.Path({marker!r}).write_text("this code ran")

def build(**kwargs):
    from prunekit.models import get_model
    return get_model("lenet300")

def loaders(**kwargs):
    raise SystemExit(0)
"""


@pytest.fixture
def crafted(tmp_path):
    """``(make, marker)``: ``make(what)`` writes a checkpoint whose config.json names code that writes ``marker``
    when imported, as its model (``what="model"``) or its dataset (``what="dataset"``)."""
    marker = tmp_path / "MARKER"
    code = tmp_path / "stranger.py"
    code.write_text(CODE.format(marker=str(marker)))

    def make(what: str):
        folder = tmp_path / f"ck-{what}"
        save_checkpoint(folder, get_model("lenet300", seed=0), model_name="lenet300", dataset="mnist",
                        input_shape=[1, 28, 28])
        config = json.loads((folder / "config.json").read_text())
        if what == "model":
            config["model"] = {"name": None, "args": {}, "source": f"{code}:build"}
        elif what == "name":  # a hand-made config: the reference where a registry name goes
            config["model"] = {"name": f"{code}:build", "args": {}}
        else:
            config["dataset"] = f"{code}:loaders"
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "manifest.json").unlink(missing_ok=True)  # as a stranger's hand-made checkpoint
        return folder

    return make, marker


COMMANDS = {
    "info": ["info", "{ck}"],
    "prune": ["prune", "--checkpoint", "{ck}", "--method", "weight", "--sparsity", "50", "--quiet", "--out", "{out}"],
    "sweep-local": ["sweep", "--checkpoint", "{ck}", "--methods", "weight", "--sparsities", "50", "--no-measure",
                    "--quiet", "--executor", "local", "--out", "{out}"],
    "sweep-processes": ["sweep", "--checkpoint", "{ck}", "--methods", "weight", "--sparsities", "50", "--no-measure",
                        "--quiet", "--executor", "processes", "--workers", "1", "--out", "{out}"],
    "sweep-ray": ["sweep", "--checkpoint", "{ck}", "--methods", "weight", "--sparsities", "50", "--no-measure",
                  "--quiet", "--executor", "ray", "--out", "{out}"],
    "sensitivity": ["sensitivity", "--checkpoint", "{ck}", "--sparsities", "50", "--quiet", "--out", "{out}"],
    "compact": ["compact", "--checkpoint", "{ck}", "--out", "{out}"],
    "export": ["export", "--checkpoint", "{ck}", "--format", "sparse", "--out", "{out}.safetensors"],
    "bench": ["bench", "latency", "--checkpoint", "{ck}", "--batch-sizes", "1", "--repeats", "2"],
}
NEEDS_DATA = {"prune", "sweep-local", "sweep-processes", "sweep-ray", "sensitivity"}


@pytest.mark.parametrize("what", ["model", "name", "dataset"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_command_imports_code_named_in_a_checkpoint(crafted, tmp_path, capsys, command, what):
    make, marker = crafted
    folder = make(what)
    argv = [arg.format(ck=folder, out=tmp_path / "out") for arg in COMMANDS[command]]
    code = main(argv)
    assert not marker.exists(), f"{command} imported code named in the checkpoint's {what}"
    if what != "dataset" or command in NEEDS_DATA:
        assert code == 2
        assert "never runs code named in a checkpoint" in capsys.readouterr().err


def test_the_code_runs_once_the_user_names_it_again(crafted, tmp_path):
    make, marker = crafted
    folder = make("model")
    assert main(["info", str(folder), "--model", str(tmp_path / "stranger.py") + ":build"]) == 0
    assert marker.exists()


# --- 2. --out keeps what prunekit did not write ------------------------------------------------------------

@pytest.fixture(scope="module")
def dense(tmp_path_factory, mnist):
    from prunekit.study import train_model
    from prunekit.training import TrainConfig

    folder = tmp_path_factory.mktemp("dense") / "lenet300"
    train_model("lenet300", dataset=mnist, config=TrainConfig(epochs=0.02, seed=0), out=folder, progress=False)
    return folder


def _user_files(folder):
    (folder / "notes.txt").write_text("my notes")
    (folder / "exports").mkdir()
    (folder / "exports" / "w50.safetensors").write_bytes(b"an export of mine")


def _kept(folder) -> bool:
    return (folder / "notes.txt").read_text() == "my notes" and \
        (folder / "exports" / "w50.safetensors").read_bytes() == b"an export of mine"


def test_writing_into_a_checkpoint_folder_keeps_the_users_files(dense, tmp_path):
    out = tmp_path / "w50"
    prune = ["prune", "--checkpoint", str(dense), "--method", "weight", "--sparsity", "50", "--quiet",
             "--out", str(out)]
    assert main(prune) == 0
    _user_files(out)
    assert main(prune[:-1] + [str(out)]) == 0  # prune again into it
    assert _kept(out)
    assert main(["compact", "--checkpoint", str(out), "--out", str(tmp_path / "small")]) == 0
    _user_files(tmp_path / "small")
    assert main(["compact", "--checkpoint", str(out), "--out", str(tmp_path / "small")]) == 0
    assert _kept(tmp_path / "small")
    assert load_checkpoint(out).metrics["sparsity_actual"] == pytest.approx(50, abs=0.1)


def test_a_folder_prunekit_did_not_write_is_never_replaced(dense, tmp_path, capsys):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"my": "project settings"}')
    (project / "src" / "main.py").write_text("print('hello')")
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    for argv in (["train", "--model", "lenet300", "--epochs", "0.01", "--quiet", "--out", str(project)],
                 ["prune", "--checkpoint", str(dense), "--method", "weight", "--sparsity", "50", "--quiet",
                  "--out", str(project)],
                 ["compact", "--checkpoint", str(dense), "--out", str(project)]):
        assert main(argv) == 2
        assert "is not a prunekit checkpoint" in capsys.readouterr().err
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before
    assert (project / "config.json").read_text() == '{"my": "project settings"}'


names = st.sampled_from(["notes.txt", "config.json", "model.safetensors", "masks.safetensors", "metrics.json",
                         "manifest.json", "exports", "plan.json", "README.md", ".hidden"])
contents = st.dictionaries(names, st.one_of(st.binary(max_size=20), st.just("folder")), max_size=5)


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=contents, start_as_checkpoint=st.booleans())
def test_out_keeps_every_file_it_did_not_write_or_refuses_before_touching_anything(tmp_path_factory, content,
                                                                                   start_as_checkpoint):
    """Any folder content, over a checkpoint or not: the save keeps every entry that a save did not write
    there byte for byte, or is refused with nothing touched."""
    folder = tmp_path_factory.mktemp("out") / "ck"
    model = get_model("lenet300", seed=0)
    written = set()
    if start_as_checkpoint:
        save_checkpoint(folder, model, model_name="lenet300")
        written = set(json.loads((folder / "manifest.json").read_text())["files"]) | {"manifest.json"}
    folder.mkdir(exist_ok=True)
    for name, value in content.items():
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        if value == "folder":
            path.mkdir(exist_ok=True)
            (path / "inside.txt").write_text("mine")
        else:
            path.write_bytes(value)
    before = _snapshot(folder)
    try:
        check_output(folder)
        save_checkpoint(folder, model, model_name="lenet300", mask=prune_model(model, "weight", 50.0))
    except OutputError:
        assert _snapshot(folder) == before  # refused before touching anything
        return
    for name, data in before.items():
        if name in written:
            continue  # a file the first save wrote (edited or not): the new save replaces it
        assert (folder / name).exists(), f"{name} was deleted"
        assert data is None or (folder / name).read_bytes() == data, f"{name} was changed"
    assert load_checkpoint(folder).mask is not None


@pytest.mark.parametrize("command, name", [
    (["sweep", "--methods", "weight", "--sparsities", "50", "--no-measure", "--quiet"], "REPORT.md"),
    (["sweep", "--methods", "weight", "--sparsities", "50", "--no-measure", "--quiet"], "results.csv"),
    (["sensitivity", "--sparsities", "50", "--quiet"], "sensitivity.csv"),
])
def test_commands_writing_file_by_file_never_overwrite_a_file_they_did_not_write(dense, tmp_path, capsys, command,
                                                                                  name):
    out = tmp_path / "shared"
    out.mkdir()
    (out / name).write_text("mine")
    (out / "notes.txt").write_text("mine too")
    assert main([*command, "--checkpoint", str(dense), "--out", str(out)]) == 2
    assert f"holds {name}, which prunekit {command[0]} writes but did not write there" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "notes.txt"])
    (out / name).unlink()
    assert main([*command, "--checkpoint", str(dense), "--out", str(out)]) == 0  # beside the user's notes
    assert main([*command, "--checkpoint", str(dense), "--out", str(out)]) == 0  # a rerun replaces its own files
    assert (out / "notes.txt").read_text() == "mine too"


# --- 3. a command never overwrites its input --------------------------------------------------------------

def test_export_refuses_to_write_over_a_file_of_its_input(dense, tmp_path, capsys):
    ck = tmp_path / "ck"
    shutil.copytree(dense, ck)
    weights = (ck / "model.safetensors").read_bytes()
    for name in ("model.safetensors", "config.json", "masks.safetensors"):
        assert main(["export", "--checkpoint", str(ck), "--format", "sparse", "--out", str(ck / name)]) == 2
        assert "would overwrite" in capsys.readouterr().err
    assert (ck / "model.safetensors").read_bytes() == weights
    assert not (ck / "masks.safetensors").exists()
    load_checkpoint(ck)
    assert main(["export", "--checkpoint", str(ck), "--format", "sparse", "--out",
                 str(ck / "exports" / "w.safetensors")]) == 0  # beside its files is fine
    assert main(["info", str(ck)]) == 0


# --- 4. a pruned compact checkpoint loads -------------------------------------------------------------------

def test_pruning_a_compact_checkpoint_gives_a_checkpoint_every_command_loads(dense, tmp_path, capsys):
    assert main(["prune", "--checkpoint", str(dense), "--method", "unit", "--sparsity", "50", "--quiet",
                 "--out", str(tmp_path / "u50")]) == 0
    assert main(["compact", "--checkpoint", str(tmp_path / "u50"), "--out", str(tmp_path / "small")]) == 0
    assert main(["prune", "--checkpoint", str(tmp_path / "small"), "--method", "weight", "--sparsity", "50",
                 "--quiet", "--out", str(tmp_path / "small-w50")]) == 0
    pruned = load_checkpoint(tmp_path / "small-w50")
    assert pruned.model[1].out_features == 150 and pruned.mask is not None
    assert json.loads((tmp_path / "small-w50" / "config.json").read_text())["model"]["architecture"]
    capsys.readouterr()
    assert main(["info", str(tmp_path / "small-w50")]) == 0
    assert main(["compact", "--checkpoint", str(tmp_path / "small-w50"), "--out", str(tmp_path / "again")]) == 0


# --- 5. a reader concurrent with writers sees one whole save --------------------------------------------------

def _writer(folder, value, stop=None):
    from prunekit.checkpoint import save_checkpoint
    from prunekit.models import get_model

    torch.set_num_threads(1)
    model = get_model("lenet300", seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    mask = {name: torch.full(p.shape, value > 0) for name, p in model.named_parameters()}
    while True:  # at least one save
        save_checkpoint(folder, model, model_name="lenet300", mask=mask, metrics={"value": value})
        if stop is None or stop.is_set():
            break


def test_a_load_beside_two_writers_is_always_one_whole_save(tmp_path):
    """Two processes save different models into one folder without pause while this one loads it: every
    load that succeeds has the weights, mask and metrics of one save (before, 12-20 of 180 mixed)."""
    import time

    folder = tmp_path / "ck"
    _writer(folder, 1.0)  # a first save
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    writers = [context.Process(target=_writer, args=(folder, value, stop)) for value in (2.0, -3.0)]
    for w in writers:
        w.start()
    loads, refused, values = 0, 0, []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (loads < 100 or not {2.0, -3.0} <= set(values)):
            try:
                ckpt = load_checkpoint(folder)
            except CheckpointError as exc:  # writers that never pause may starve a reader: a clear error
                assert "was replaced by another save while it was read" in str(exc)
                refused += 1
                continue
            value = ckpt.metrics["value"]
            weights = torch.cat([p.flatten() for p in ckpt.model.state_dict().values()]).unique()
            kept = torch.cat([m.flatten() for m in ckpt.mask.values()]).unique()
            expected_weight = value if value > 0 else 0.0  # a value <= 0 is masked away entirely
            assert weights.tolist() == [expected_weight], f"weights of another save than metrics {value}"
            assert kept.tolist() == [value > 0], f"mask of another save than metrics {value}"
            loads += value != 1.0  # loads while the writers write
            values.append(value)
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=30)
    assert {2.0, -3.0} <= set(values) and loads > refused  # both writers were read while they wrote


def test_a_file_deleted_by_hand_is_left_out_with_a_warning(tmp_path):
    folder = save_checkpoint(tmp_path / "ck", get_model("lenet300"), model_name="lenet300", metrics={"a": 1})
    (folder / "metrics.json").unlink()
    with pytest.warns(UserWarning, match="metrics.json was deleted since its save wrote it"):
        assert load_checkpoint(folder).metrics == {}


def test_a_file_edited_by_hand_is_read_with_a_warning(tmp_path):
    folder = save_checkpoint(tmp_path / "ck", get_model("lenet300"), model_name="lenet300", metrics={"a": 1})
    (folder / "metrics.json").write_text('{"a": 2}')
    with pytest.warns(UserWarning, match="metrics.json differs from the file its save wrote"):
        assert load_checkpoint(folder).metrics == {"a": 2}


# --- user code that calls sys.exit -------------------------------------------------------------------------------

def test_user_code_calling_sys_exit_does_not_end_a_command_as_a_success(tmp_path, capsys):
    code = tmp_path / "exits.py"
    code.write_text(textwrap.dedent("""
        import sys

        def build(**kwargs):
            sys.exit(0)
    """))
    out = tmp_path / "out"
    assert main(["train", "--model", f"{code}:build", "--epochs", "0.01", "--quiet", "--out", str(out)]) == 2
    assert "called sys.exit(0)" in capsys.readouterr().err
    assert not out.exists()


def test_sys_exit_while_a_command_runs_is_an_error(monkeypatch, capsys):
    import prunekit.cli.info as info

    monkeypatch.setattr(info, "load_model_or_checkpoint", lambda *a, **k: sys.exit(0))
    assert main(["info", "anything"]) == 2
    assert "ended by sys.exit(0)" in capsys.readouterr().err


def test_a_missing_checkpoint_is_still_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_exports_say_which_layers_stayed_uncompacted(tmp_path):
    from torch import nn

    from prunekit.deploy.exporters import EXPORTERS, ExportOptions

    model = nn.Sequential(nn.Linear(8, 6), nn.Sigmoid(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        model[0].weight[:3], model[0].bias[:3] = 0, 0  # dead rows, but sigmoid(0) = 0.5: not removable
        model[2].weight[:2], model[2].bias[:2] = 0, 0
    for name, out in (("onnx", tmp_path / "m.onnx"), ("compact", tmp_path / "small")):
        lines = EXPORTERS.get(name).run(model, out, ExportOptions((8,)))
        assert any(line.startswith("not compacted: 0 ") for line in lines), (name, lines)
