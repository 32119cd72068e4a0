"""Data-parallel distillation on PyTorch's own engine: two gloo processes (torchrun) give the one-process student."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from prunekit.cli import main
from prunekit.hf import load
from prunekit.hf.tiny import tiny_folder

pytest.importorskip("transformers")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_distil_the_student_one_process_does(tmp_path, capsys):
    from pydoc_data.topics import topics

    dense = tiny_folder(str(tmp_path), "llama")
    student = tiny_folder(str(tmp_path / "s"), "llama", seed=1)
    text = tmp_path / "text.txt"
    text.write_text("".join(topics[k] for k in ("assert", "break", "continue", "del", "global", "pass")))
    args = ["train", "--model", f"hf:{student}", "--teacher", f"hf:{dense}", "--epochs", "1", "--lr", "0.003",
            "--dataset", f"text:{text}", "--seqlen", "32", "--held-out-tokens", "512", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(_free_port()), "-m", "prunekit", *args, "--out",
                           str(tmp_path / "two")], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("distilled from") == 2  # both processes report; one wrote the folder
    record = json.loads((tmp_path / "two" / "prunekit.json").read_text())
    assert record["training"]["processes"] == 2
    one, two = (load(f"hf:{tmp_path / name}").model.state_dict() for name in ("one", "two"))
    start = load(f"hf:{student}").model.state_dict()
    moved = max(float((one[k] - start[k]).abs().max()) for k in one)
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert moved > 1e-3 and worst < 1e-4 * moved, (moved, worst)  # the same steps, up to summation order
