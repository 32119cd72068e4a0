"""How far a language model's logits move when only the rounding of its linear layers changes: the model
against a copy whose linear layers (all but the output head, or the ones given) compute in fp64, rounded back
to fp32, measured as ``prunekit bench generate`` checks its sparse kernels (a 64-token prompt, then 16
tokens decoded one by one, relative to the largest logit). A kernel that sums in another order cannot be
held to a bar below this (``bench generate`` prints the all-layer figure beside its check).

Usage:
    python scripts/logit_rounding.py --model hf:runs/smollm2-w50
    python scripts/logit_rounding.py --model hf:runs/smollm2-w50 --layer model.layers.0.self_attn.k_proj
"""

from __future__ import annotations

import argparse

import torch

from prunekit.bench.rounding import rounding_floor
from prunekit.hf import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="hf:DIR")
    parser.add_argument("--layer", action="append", help="only this linear layer exact (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.model).model
    which = ", ".join(args.layer) if args.layer else "every linear layer but the output head"
    print(f"{args.model}: {which} in fp64 (rounded to fp32) vs fp32, max logit difference "
          f"{rounding_floor(model, args.layer):.1e} (relative; a 64-token prompt, then 16 tokens decoded one by one)")


if __name__ == "__main__":
    main()
