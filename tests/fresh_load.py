"""Load Hugging Face folders in a fresh Python process with stock transformers alone (prunekit never imported)
and check their logits and generate() against the ones saved beside them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import safetensors.torch
import torch

FRESH = """
import json, sys, torch, safetensors.torch
from transformers import AutoModelForCausalLM
for folder, expected, layers in json.loads(sys.argv[1]):
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    assert model.config.get_text_config().num_hidden_layers == layers, folder
    want = safetensors.torch.load_file(expected)
    with torch.no_grad():
        got = model(input_ids=want["ids"]).logits
        out = model.generate(want["ids"], max_new_tokens=4, do_sample=False, use_cache=True)
    assert torch.allclose(got, want["logits"], rtol=1e-4, atol=1e-5), (folder, float((got - want["logits"]).abs().max()))
    assert out.shape[1] == want["ids"].shape[1] + 4, folder
assert not any(name.startswith("prunekit") for name in sys.modules)
print("all equal")
"""


def expect(model: torch.nn.Module, ids: torch.Tensor, path: Path) -> str:
    """Save ``model``'s logits on ``ids`` (with the ids) to ``path`` for :func:`check_fresh`; returns the path."""
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    safetensors.torch.save_file({"ids": ids, "logits": logits.contiguous()}, str(path))
    return str(path)


def check_fresh(checks: list[tuple[str, str, int]]) -> None:
    """``checks``: (folder, expected file, decoder blocks) each; all in one fresh process."""
    done = subprocess.run([sys.executable, "-c", FRESH, json.dumps(checks)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "all equal" in done.stdout, done.stderr[-2000:]
