"""Resumable training: an interrupted run continued from its last state equals an uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch

import prunekit.hf.train as hf_train
from prunekit.errors import CheckpointError
from prunekit.hf import load, train_pretrained
from prunekit.hf.tiny import tiny_folder
from prunekit.training import TrainConfig, train
from prunekit.training.resume import Interrupt, has_state

pytest.importorskip("transformers")

SMALL = dict(seqlen=32, held_out=512, progress=False)


@pytest.fixture
def text(tmp_path):
    """A short text: about twenty training steps an epoch at batch 4 and windows of 32 tokens."""
    from pydoc_data.topics import topics

    path = tmp_path / "text.txt"
    path.write_text("".join(topics[k] for k in ("assert", "break", "continue", "del", "global", "pass")))
    return f"text:{path}"


def test_an_interrupted_distillation_continues_from_its_last_state_to_the_same_student(tmp_path, monkeypatch, text):
    dense = tiny_folder(str(tmp_path), "llama")
    student = tiny_folder(str(tmp_path / "s"), "llama", seed=1)
    config = TrainConfig(epochs=0.5, lr=0.003)
    whole = train_pretrained("hf:" + student, config, out=tmp_path / "whole", teacher="hf:" + dense, dataset=text,
                             **SMALL)

    real = hf_train.train
    monkeypatch.setattr(hf_train, "train", lambda *a, **k: real(*a, callbacks=[Interrupt(5)], **k))
    with pytest.raises(KeyboardInterrupt):
        train_pretrained("hf:" + student, config, out=tmp_path / "kd", teacher="hf:" + dense, state_every=2,
                         dataset=text, **SMALL)
    state = tmp_path / "kd.state"
    assert has_state(state) and not (tmp_path / "kd").exists()
    assert json.loads((state / "state.json").read_text())["step"] == 4  # the last finished save

    monkeypatch.setattr(hf_train, "train", real)
    resumed = train_pretrained("hf:" + student, config, out=tmp_path / "kd", teacher="hf:" + dense, state_every=2,
                               dataset=text, **SMALL)
    assert resumed.resumed_at == 4 and not state.exists()
    a, b = load("hf:" + str(whole.path)).model.state_dict(), load("hf:" + str(resumed.path)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.perplexity == pytest.approx(whole.perplexity, rel=1e-6)


def test_a_state_of_another_run_is_refused_naming_the_folder(tmp_path):
    torch.manual_seed(0)
    model, data = torch.nn.Linear(4, 2), (torch.randn(64, 4), torch.randint(0, 2, (64,)))
    with pytest.raises(KeyboardInterrupt):
        train(model, data, TrainConfig(epochs=1, batch_size=16), progress=False, state_dir=tmp_path / "st",
              state_every=1, callbacks=[Interrupt(2)])
    with pytest.raises(CheckpointError, match="holds the state of another training run"):
        train(model, data, TrainConfig(epochs=1, batch_size=16, lr=0.5), progress=False, state_dir=tmp_path / "st")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        train(torch.nn.Linear(4, 3), data, TrainConfig(epochs=1, batch_size=16), progress=False,
              state_dir=tmp_path / "st")


def test_gradient_checkpointing_trains_the_same_student(tmp_path, text):
    student = tiny_folder(str(tmp_path), "llama")
    config = TrainConfig(epochs=0.2, lr=0.003)
    plain = train_pretrained("hf:" + student, config, out=tmp_path / "plain", dataset=text, **SMALL)
    saved = train_pretrained("hf:" + student, config, out=tmp_path / "ckpt", dataset=text,
                             gradient_checkpointing=True, **SMALL)
    a, b = load("hf:" + str(plain.path)).model.state_dict(), load("hf:" + str(saved.path)).model.state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    assert not load("hf:" + str(saved.path)).model.is_activation_checkpointing
