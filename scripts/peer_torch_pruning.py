"""Torch-Pruning's LLM recipe on a Hugging Face folder, written as a folder: the peer of
``scripts/bench_width_lm.py``. Imports torch, transformers and torch_pruning only (not prunekit), so it can run
in another environment, e.g. one holding the transformers release a Torch-Pruning version supports.

Usage:
    python scripts/peer_torch_pruning.py --model runs/smollm2 --ratio 0.15 --out runs/smollm2-tp [--scope all|mlp]

``--scope all`` is the recipe of Torch-Pruning's LLM example: ``MetaPruner`` with group L2-norm importance, one
ratio for the residual width, the attention heads (``num_heads``, whole heads, ``prune_head_dims=False``) and the
MLP channels, ``round_to`` 4, the output head left whole. ``--scope mlp`` prunes the MLP channels alone (the
attention modules and the embedding ignored), with ``--round-to``. The config is updated from the pruned
shapes and the model saved with ``save_pretrained``; it prints one JSON line: seconds, parameters before and after.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def prune(model: torch.nn.Module, ratio: float, scope: str, round_to: int) -> None:
    """Torch-Pruning's uniform L2 width pruning of ``model``, in place, and its config updated."""
    import torch_pruning as tp

    config = model.config
    attention = {name: m for name, m in model.named_modules() if name.endswith("self_attn") and hasattr(m, "q_proj")}
    ignored = [model.lm_head]
    heads = {}
    fused = {m.gate_up_proj: 2 for name, m in model.named_modules() if name.endswith("mlp") and hasattr(m, "gate_up_proj")}
    if scope == "mlp":
        ignored += [model.get_input_embeddings(), *attention.values()]
    else:
        for module in attention.values():
            heads[module.q_proj] = config.num_attention_heads
            heads[module.k_proj] = config.num_key_value_heads
            heads[module.v_proj] = config.num_key_value_heads
    inputs = torch.randint(0, config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    importance = getattr(tp.importance, "GroupNormImportance", None) or tp.importance.GroupMagnitudeImportance
    pruner = tp.pruner.MetaPruner(
        model, example_inputs=inputs, importance=importance(p=2, group_reduction="mean"), global_pruning=False,
        pruning_ratio=ratio, ignored_layers=ignored, num_heads=heads, prune_num_heads=bool(heads),
        prune_head_dims=False, head_pruning_ratio=ratio, out_channel_groups=fused, round_to=round_to,
        output_transform=lambda out: out.logits)
    for group in pruner.step(interactive=True):
        group.prune()
    config.hidden_size = model.lm_head.in_features
    for module in attention.values():
        config.num_attention_heads = module.q_proj.out_features // module.head_dim
        config.num_key_value_heads = module.k_proj.out_features // module.head_dim
        module.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
    widths = {m.gate_proj.out_features if hasattr(m, "gate_proj") else m.gate_up_proj.out_features // 2
              for name, m in model.named_modules() if name.endswith("mlp") and hasattr(m, "down_proj")}
    if len(widths) == 1:
        config.intermediate_size = widths.pop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a Hugging Face folder")
    parser.add_argument("--ratio", type=float, required=True)
    parser.add_argument("--scope", choices=("all", "mlp"), default="all")
    parser.add_argument("--round-to", type=int, default=4)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, local_files_only=True, dtype=torch.float32).eval()
    before = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    prune(model, args.ratio, args.scope, args.round_to)
    seconds = time.perf_counter() - started
    model.save_pretrained(args.out)
    print(json.dumps({"seconds": seconds, "params_dense": before,
                      "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
