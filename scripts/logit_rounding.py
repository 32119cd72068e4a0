"""How far a language model's logits move when only the rounding of its linear layers changes: the model
against a copy whose decoder-block linear layers compute in fp64 (rounded back to fp32), measured as
``prunekit bench generate`` checks its sparse kernels (a 64-token prompt, then 16 tokens decoded one by one,
relative to the largest logit). A kernel that sums in another order cannot be held to a bar below this.

Usage:
    python scripts/logit_rounding.py --model hf:runs/smollm2-w50
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from prunekit.bench.generate import max_logit_difference
from prunekit.hf import load
from prunekit.hf.blocks import decoder_blocks


class ExactLinear(nn.Module):
    """A linear layer computed in fp64 and rounded to fp32 once."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = linear.weight.detach().double()
        self.bias = None if linear.bias is None else linear.bias.detach().double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.double(), self.weight, self.bias).to(x.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="hf:DIR")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.model).model
    exact = copy.deepcopy(model)
    name, _ = decoder_blocks(exact)
    for path, module in list(exact.named_modules()):
        if isinstance(module, nn.Linear) and path.startswith(name + "."):
            parent, _, child = path.rpartition(".")
            setattr(exact.get_submodule(parent), child, ExactLinear(module))
    print(f"{args.model}: fp64-rounded block linear layers vs fp32, max logit difference "
          f"{max_logit_difference(model, exact):.1e} (relative; a 64-token prompt, then 16 tokens decoded one by one)")


if __name__ == "__main__":
    main()
