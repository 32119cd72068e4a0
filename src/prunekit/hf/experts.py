"""Expert pruning of mixture-of-experts language models: the experts that contribute least are removed, with
their router rows, and the config follows (a standard folder stock transformers loads).

Saliency (REAP, Lasby et al. 2025): over calibration text, the mean over the tokens routed to an expert of its
router weight times the norm of its output, ``mean g_e(x) ||f_e(x)||``; an expert never routed scores 0.
Every MoE layer loses the same number of experts (a standard config has one ``num_experts``), the lowest in
saliency; the router keeps the rows of the kept experts, so it still picks ``top_k`` of them (``top_k`` must
stay at most the experts kept).

The layers are found by rule, not by architecture: an experts module holds an integer ``num_experts`` and
parameters whose first axis has that many entries; its router is the sibling module whose weight has
``num_experts`` rows. The experts' outputs are read by calling the experts module itself on the routed tokens
with one expert each (transformers' experts interface: ``experts(hidden, top_k_index, top_k_weights)``).

Example (a tiny random Mixtral, 4 experts per layer, 2 removed):
    >>> import tempfile, torch
    >>> from prunekit.hf.tiny import tiny_folder
    >>> from prunekit.hf.load import load
    >>> model = load(tiny_folder(tempfile.mkdtemp(), "mixtral")).model
    >>> layers = moe_layers(model)
    >>> saliency = expert_saliency(model, layers, torch.randint(0, 300, (2, 16)))
    >>> small = drop_experts(model, layers, saliency, 2)
    >>> small.config.num_local_experts, small.model.layers[0].mlp.gate.weight.shape[0]
    (2, 2)
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..compact.graph import check_outputs
from ..data.text import DEFAULT, token_splits
from ..errors import ConfigError
from ..storage import check_output
from .load import load
from .perplexity import perplexity
from .save import save_pretrained
from .width import solve_config


@dataclass(frozen=True)
class MoELayer:
    """One mixture-of-experts layer: the experts module, its router, and how many experts it has."""

    experts: str
    router: str
    count: int


def moe_layers(model: nn.Module) -> list[MoELayer]:
    """Every mixture-of-experts layer of ``model``, found by the rule of the module docstring."""
    modules = dict(model.named_modules())
    layers = []
    for name, module in modules.items():
        count = getattr(module, "num_experts", None)
        if type(count) is not int or count < 2 or not any(p.dim() >= 3 and p.shape[0] == count
                                                          for p in module.parameters(recurse=False)):
            continue
        parent = name.rpartition(".")[0]
        routers = [n for n, m in modules.items() if n.rpartition(".")[0] == parent and n != name
                   and isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() == 2
                   and m.weight.shape[0] == count]
        if len(routers) == 1:
            layers.append(MoELayer(name, routers[0], count))
    return layers


@torch.no_grad()
def expert_saliency(model: nn.Module, layers: Sequence[MoELayer], calibration: torch.Tensor) -> list[list[float]]:
    """REAP saliency of every expert of every layer over ``calibration`` (token ids ``[sequences, length]``)."""
    modules = dict(model.named_modules())
    sums = [torch.zeros(layer.count, dtype=torch.float64) for layer in layers]
    counts = [torch.zeros(layer.count, dtype=torch.float64) for layer in layers]
    busy = set()

    def hook(i: int, module: nn.Module):
        def measure(_, args, kwargs):
            if i in busy:
                return
            hidden, index, weights = (list(args) + [kwargs.get(k) for k in ("top_k_index", "top_k_weights")])[:3]
            busy.add(i)
            try:
                for e in range(layers[i].count):
                    tokens, slot = torch.where(index == e)
                    if not len(tokens):
                        continue
                    one = torch.full((len(tokens), 1), e, dtype=index.dtype)
                    out = module(hidden[tokens], one, torch.ones(len(tokens), 1, dtype=weights.dtype))
                    gate = weights[tokens, slot].double()
                    sums[i][e] += (gate * out.double().norm(dim=-1)).sum()
                    counts[i][e] += len(tokens)
            finally:
                busy.discard(i)
        return measure

    handles = [modules[layer.experts].register_forward_pre_hook(hook(i, modules[layer.experts]), with_kwargs=True)
               for i, layer in enumerate(layers)]
    try:
        for row in calibration:
            model(input_ids=row.unsqueeze(0))
    finally:
        for handle in handles:
            handle.remove()
    return [(s / c.clamp(min=1)).tolist() for s, c in zip(sums, counts)]


def check_removal(model: nn.Module, layers: Sequence[MoELayer], remove: int) -> int:
    """The experts per layer, once ``remove`` of them is checked to leave a valid router (see :func:`drop_experts`)."""
    if not layers:
        raise ConfigError(f"{type(model).__name__} has no mixture-of-experts layer (an experts module with "
                          f"num_experts and a router beside it)")
    counts = sorted({layer.count for layer in layers})
    top_k = max([m.top_k for m in model.modules() if type(getattr(m, "top_k", None)) is int] or [1])
    if len(counts) > 1 or not 1 <= remove <= counts[0] - top_k:
        raise ConfigError(f"cannot remove {remove} of the {'/'.join(map(str, counts))} experts of each layer: the "
                          f"router picks {top_k} per token, so give 1 to {counts[0] - top_k}"
                          + (" (and every layer needs as many experts)" if len(counts) > 1 else ""))
    return counts[0]


def drop_experts(model: nn.Module, layers: Sequence[MoELayer], saliency: Sequence[Sequence[float]],
                 remove: int) -> nn.Module:
    """A copy of ``model`` without the ``remove`` least salient experts of every layer, rebuilt from its
    solved standard config (``num_local_experts`` or the architecture's name for it).

    Raises:
        ConfigError: for no MoE layer, layers of different expert counts, a count that leaves fewer
            experts than the router picks per token, or a config that cannot express the result.
    """
    count = check_removal(model, layers, remove)
    sliced = copy.deepcopy(model).eval()
    modules = dict(sliced.named_modules())
    for layer, scores in zip(layers, saliency):
        kept = torch.tensor(sorted(sorted(range(count), key=lambda e: -scores[e])[:count - remove]))
        for path in (layer.experts, layer.router):
            module = modules[path]
            for key, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                if tensor.dim() and tensor.shape[0] == count:
                    value = tensor.detach().index_select(0, kept).clone()
                    setattr(module, key, nn.Parameter(value, tensor.requires_grad)
                            if isinstance(tensor, nn.Parameter) else value)
            for key, value in vars(module).items():
                if type(value) is int and value == count:
                    setattr(module, key, count - remove)
    shapes = {n: tuple(t.shape) for n, t in sliced.state_dict().items()}
    config, changes = solve_config(model, shapes)
    small = type(model)._from_config(config, dtype=next(model.parameters()).dtype)
    small.load_state_dict(sliced.state_dict())
    small.generation_config = copy.deepcopy(model.generation_config)
    small.eval()
    check_outputs(sliced, small, {"input_ids": torch.arange(8)[None] % config.get_text_config().vocab_size},
                  atol=1e-4)
    return small


@dataclass
class ExpertsPruned:
    """What :func:`prune_experts` measured and wrote."""

    path: Path
    removed_per_layer: int
    saliency: list[list[float]]
    params_dense: int
    params: int
    perplexity_dense: float
    perplexity: float
    seconds: float


def prune_experts(reference: str, remove: int, *, out: str | os.PathLike, dataset: str = DEFAULT,
                  calibration_batches: int = 32, dtype: str = "fp32", seqlen: int = 512, held_out: int = 16384,
                  progress: bool = True) -> ExpertsPruned:
    """Load ``reference``, remove ``remove`` experts of every MoE layer by REAP saliency over
    ``calibration_batches`` sequences of ``dataset`` (after its first ``held_out`` tokens), and write a
    folder stock transformers loads, with the held-out perplexity before and after.

    Raises:
        ConfigError: see :func:`drop_experts`; a model or text that cannot be read.
    """
    out = check_output(out, inputs=[reference.removeprefix("hf:")])
    pretrained = load(reference, dtype)
    pretrained.check_standard("removing experts")
    model = pretrained.model
    layers = moe_layers(model)
    check_removal(model, layers, remove)
    splits = token_splits(dataset, pretrained.tokenizer, held_out, seqlen)
    calibration = torch.cat([b["input_ids"] for b in splits.calibration(calibration_batches, seqlen)])
    dense = perplexity(model, splits.held_out, seqlen, progress)
    started = time.perf_counter()
    saliency = expert_saliency(model, layers, calibration)
    small = drop_experts(model, layers, saliency, remove)
    seconds = time.perf_counter() - started
    pruned = perplexity(small, splits.held_out, seqlen, progress)
    params_dense, params = (sum(p.numel() for p in m.parameters()) for m in (model, small))
    record = {"pruning": {"method": "experts", "removed_per_layer": remove, "saliency": saliency,
                          "dataset": dataset, "calibration": [calibration_batches, seqlen]},
              "metrics": {"params_dense": params_dense, "params": params, "perplexity_dense": dense,
                          "perplexity": pruned, "perplexity_window": seqlen, "held_out_tokens": len(splits.held_out),
                          "prune_seconds": seconds}}
    path = save_pretrained(type(pretrained)(small, pretrained.tokenizer, pretrained.source, pretrained.digest,
                                            pretrained.dtype), out, None, record)
    return ExpertsPruned(path, remove, saliency, params_dense, params, dense, pruned, seconds)
