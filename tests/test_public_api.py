"""The public face: ``import prunekit`` exposes the documented API, and README's code runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import prunekit

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = ("prune_model", "compact", "Mask", "sparsity_report", "train", "evaluate", "TrainConfig", "get_model",
              "load_dataset", "save_checkpoint", "load_checkpoint", "from_torch_prune", "to_torch_prune")


def test_the_documented_names_are_exported():
    missing = [name for name in DOCUMENTED if not hasattr(prunekit, name)]
    assert missing == [] and set(DOCUMENTED) <= set(prunekit.__all__)
    assert all(getattr(prunekit, name).__doc__ for name in DOCUMENTED)
    assert re.fullmatch(r"\d+\.\d+\.\d+", prunekit.__version__)


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))])
def test_documented_python_code_runs(doc, tmp_path, monkeypatch):
    blocks = python_blocks(REPO / doc)
    monkeypatch.chdir(tmp_path)  # examples write runs/... here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, f"{doc} code block", "exec"), namespace)
    if doc == "README.md":
        assert blocks, "README.md has no python code block"
