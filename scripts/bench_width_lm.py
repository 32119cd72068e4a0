"""Smaller language models side by side, at (about) the same parameter count, on the same held-out text:
prunekit's structured pruning without recovery, the same after distillation, and Torch-Pruning's LLM recipe
(uniform magnitude width pruning; no recovery).

Usage:
    python scripts/bench_width_lm.py --dense hf:runs/smollm2 --models hf:runs/smollm2-dw hf:runs/smollm2-dw-kd \
        [--peer-ratio 0.458333 --peer-scope mlp --peer-round-to 64] [--peer-timeout 900] [--peer-python PY] \
        [--dataset text:pydoc] [--held-out-tokens 16384] [--seqlen 512]

``--models``: prunekit's folders (written by ``prunekit drop-blocks`` / ``prunekit prune --method unit`` /
``prunekit train --teacher``); each is loaded with stock transformers. The peer: Torch-Pruning (``pip install
torch-pruning``, the ``bench`` extra) run on the dense model by ``scripts/peer_torch_pruning.py``: with
``--peer-scope all`` as its LLM example does (``MetaPruner``, group L2 norm importance, one ratio for the hidden
width, the heads and the MLP channels, ``round_to=4``, the output head left whole), with ``--peer-scope mlp`` the
MLP channels alone, at ``--peer-ratio`` (chosen so that its parameter count is near prunekit's; the table prints
both), in a child process (``--peer-python``: another environment may hold it) stopped after --peer-timeout
seconds (reported so). Prints parameters, held-out perplexity and its ratio to dense per row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from prunekit.data.text import token_splits
from prunekit.hf import load, perplexity


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def peer_row(args: argparse.Namespace, ids: torch.Tensor) -> tuple:
    """Torch-Pruning's row: ``scripts/peer_torch_pruning.py`` run by ``--peer-python`` on the dense folder, stopped
    after ``--peer-timeout`` seconds (the row says so), its folder then evaluated here like the others."""
    name = f"Torch-Pruning {args.peer_ratio:g} ({args.peer_scope}, no recovery)"
    with tempfile.TemporaryDirectory() as out:
        command = [args.peer_python, str(Path(__file__).with_name("peer_torch_pruning.py")), "--model",
                   args.dense.removeprefix("hf:"), "--ratio", str(args.peer_ratio), "--scope", args.peer_scope,
                   "--round-to", str(args.peer_round_to), "--out", out]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.peer_timeout)
        except subprocess.TimeoutExpired:
            return f"{name}: not done in {args.peer_timeout:g} s", 0, float("nan"), args.peer_timeout
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            return f"{name}: failed ({last[:80]})", 0, float("nan"), 0.0
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        try:
            model = load_folder(out)
        except (OSError, ValueError, RuntimeError) as exc:
            return f"{name}: its folder does not load ({type(exc).__name__}: {str(exc)[:60]})", 0, float("nan"), 0.0
        return name, params(model), perplexity(model, ids, args.seqlen), seconds


def load_folder(folder: str) -> torch.nn.Module:
    """A folder the peer wrote (no tokenizer in it), with stock transformers."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense", required=True)
    parser.add_argument("--models", nargs="*", default=[])
    parser.add_argument("--peer-ratio", type=float, default=None)
    parser.add_argument("--peer-timeout", type=float, default=1800, help="seconds the peer may take")
    parser.add_argument("--peer-scope", choices=("all", "mlp"), default="all",
                        help="all: the LLM example's hidden width, heads and MLP; mlp: MLP channels alone")
    parser.add_argument("--peer-round-to", type=int, default=4)
    parser.add_argument("--peer-python", default=sys.executable,
                        help="the Python that runs the peer (an environment with torch-pruning)")
    parser.add_argument("--dataset", default="text:pydoc")
    parser.add_argument("--held-out-tokens", type=int, default=16384)
    parser.add_argument("--seqlen", type=int, default=512)
    args = parser.parse_args()
    torch.manual_seed(0)
    dense = load(args.dense)
    ids = token_splits(args.dataset, dense.tokenizer, args.held_out_tokens, args.seqlen).held_out
    rows = [("dense", params(dense.model), perplexity(dense.model, ids, args.seqlen), 0.0)]
    for reference in args.models:
        rows.append((reference, params(model := load(reference).model), perplexity(model, ids, args.seqlen), 0.0))
    if args.peer_ratio is not None:
        rows.append(peer_row(args, ids))
    base_params, base_ppl = rows[0][1], rows[0][2]
    print(f"held-out perplexity: {args.dataset}, first {len(ids):,} tokens, windows of {args.seqlen}")
    print(f"{'model':<52} {'parameters':>14} {'fewer':>7} {'perplexity':>11} {'x dense':>8}")
    for name, count, ppl, seconds in rows:
        fewer = f"{100 * (1 - count / base_params):.1f}%" if count else "-"
        took = f" ({seconds:.0f} s)" if seconds else ""
        print(f"{name:<52} {count:>14,} {fewer:>7} {ppl:>11.2f} {ppl / base_ppl:>8.2f}{took}")


if __name__ == "__main__":
    main()
