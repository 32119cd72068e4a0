"""Smaller language models side by side, at (about) the same parameter count, on the same held-out text:
prunekit's structured pruning without recovery, the same after distillation, and Torch-Pruning's LLM recipe
(uniform magnitude width pruning of the residual width, the heads and the MLP channels; no recovery).

Usage:
    python scripts/bench_width_lm.py --dense hf:runs/smollm2 --models hf:runs/smollm2-d5w hf:runs/smollm2-d5w-kd \
        [--peer-ratio 0.15] [--dataset text:pydoc] [--held-out-tokens 16384] [--seqlen 512]

``--models``: prunekit's folders (written by ``prunekit drop-blocks`` / ``prunekit prune --method unit`` /
``prunekit train --teacher``); each is loaded with stock transformers. The peer: Torch-Pruning (``pip install
torch-pruning``, the ``bench`` extra) run on the dense model as its LLM example does (``MetaPruner``, group L2
norm importance, one ratio for the hidden width, the heads and the MLP channels, ``round_to=4``, the output
head left whole; the config updated after), at ``--peer-ratio`` (chosen so that its parameter count is near
prunekit's; the table prints both), in a child process stopped after --peer-timeout seconds (reported so). Prints
parameters, held-out perplexity and its ratio to dense per row.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from prunekit.data.text import token_splits
from prunekit.hf import load, perplexity


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def torch_pruning_width(model: torch.nn.Module, tokenizer, ratio: float) -> torch.nn.Module:
    """Torch-Pruning's LLM recipe on ``model`` (in place): uniform width pruning by L2 norm, no recovery."""
    import torch_pruning as tp

    config = model.config
    heads, groups = {}, {}
    for name, module in model.named_modules():
        if name.endswith("self_attn") and hasattr(module, "q_proj"):
            heads[module.q_proj] = config.num_attention_heads
            heads[module.k_proj] = config.num_key_value_heads
            heads[module.v_proj] = config.num_key_value_heads
        if name.endswith("mlp") and hasattr(module, "gate_up_proj"):
            groups[module.gate_up_proj] = 2
    inputs = torch.tensor(tokenizer.encode("Hello world.")).unsqueeze(0)
    group_norm = getattr(tp.importance, "GroupNormImportance", None) or tp.importance.GroupMagnitudeImportance
    pruner = tp.pruner.MetaPruner(
        model, example_inputs=inputs, importance=group_norm(p=2, group_reduction="mean"),
        global_pruning=False, pruning_ratio=ratio, ignored_layers=[model.lm_head], num_heads=heads,
        prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=ratio, out_channel_groups=groups,
        round_to=4, output_transform=lambda out: out.logits)
    for group in pruner.step(interactive=True):
        group.prune()
    gqa = config.num_attention_heads != config.num_key_value_heads
    config.hidden_size = model.lm_head.in_features
    for name, module in model.named_modules():
        if name.endswith("self_attn") and hasattr(module, "q_proj"):
            config.num_attention_heads = module.q_proj.out_features // module.head_dim
            config.num_key_value_heads = module.k_proj.out_features // module.head_dim if gqa \
                else config.num_attention_heads
            module.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        elif name.endswith("mlp") and hasattr(module, "gate_proj"):
            config.intermediate_size = module.gate_proj.out_features
    return model.eval()


def _peer(dense: str, ratio: float, ids: torch.Tensor, seqlen: int, results) -> None:
    """The peer's row, computed in a child process (so that a time limit can stop it)."""
    started = time.perf_counter()
    try:
        model = load(dense)
        peer = torch_pruning_width(model.model, model.tokenizer, ratio)
        results.put((f"Torch-Pruning {ratio:g} (no recovery)", params(peer), perplexity(peer, ids, seqlen),
                     time.perf_counter() - started))
    except Exception as exc:  # noqa: BLE001 - the peer's failure is a result to print
        results.put((f"Torch-Pruning {ratio:g}: failed ({type(exc).__name__}: {exc})"[:120], 0, float("nan"),
                     time.perf_counter() - started))


def peer_row(args: argparse.Namespace, ids: torch.Tensor) -> tuple:
    """Torch-Pruning's row, or one saying it did not finish within ``--peer-timeout`` seconds."""
    context = mp.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_peer, args=(args.dense, args.peer_ratio, ids, args.seqlen, results))
    child.start()
    child.join(args.peer_timeout)
    if child.is_alive():
        child.terminate()
        child.join()
        return (f"Torch-Pruning {args.peer_ratio:g}: not done in {args.peer_timeout:g} s", 0, float("nan"),
                args.peer_timeout)
    return results.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense", required=True)
    parser.add_argument("--models", nargs="*", default=[])
    parser.add_argument("--peer-ratio", type=float, default=None)
    parser.add_argument("--peer-timeout", type=float, default=1800, help="seconds the peer may take")
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
