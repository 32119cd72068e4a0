"""Depth pruning of a language model: remove whole decoder blocks, the ones that change their input least.

A block's importance is the angular distance between the hidden states entering and leaving it,
``arccos(cos(h_in, h_out)) / pi`` averaged over the calibration tokens (ShortGPT's block influence; Gromov et
al.'s distance). ``independent`` removes the ``n`` blocks of least distance; ``contiguous`` removes the run of
``n`` consecutive blocks whose input and output are closest (Gromov et al.). The blocks are found without
knowing the architecture: the ``nn.ModuleList`` as long as the config's ``num_hidden_layers``. Removing them
keeps the config standard (fewer layers, per-layer lists such as ``layer_types`` shortened alike, each
attention's ``layer_idx`` renumbered for the KV cache), so the saved folder loads with stock
``AutoModelForCausalLM.from_pretrained`` and gives the logits of the model in memory. :func:`prune_depth`
with ``part="attention"`` / ``"mlp"`` removes only that half of the chosen blocks (:mod:`prunekit.hf.halves`).

Example (a tiny random Llama of 2 blocks):
    >>> import tempfile, torch
    >>> from prunekit.hf import load
    >>> from prunekit.hf.tiny import tiny_folder
    >>> model = load("hf:" + tiny_folder(tempfile.mkdtemp(), "llama")).model
    >>> distances = block_distances(model, torch.randint(0, 100, (2, 16)))
    >>> len(distances), all(0 <= d <= 1 for d in distances)
    (2, True)
    >>> drop_blocks(model, [1]); model.config.num_hidden_layers
    1
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ..compact.bypass import PARTS as HALVES
from ..compact.plan import Plan
from ..data.text import DEFAULT, token_splits
from ..errors import ConfigError
from ..storage import check_output

from .blocks import angular_distance_sum, decoder_blocks, hidden_states, text_config
from .halves import check_half_count, choose_halves, drop_halves
from .load import load
from .perplexity import perplexity
from .save import save_pretrained

SELECTIONS = ("independent", "contiguous")
PARTS = ("block",) + HALVES
"""What ``prune_depth`` removes: whole blocks, or one half of each chosen block."""


@torch.inference_mode()
def block_distances(model: nn.Module, calibration: Tensor, *, span: int = 1, batch_size: int = 1) -> list[float]:
    """Mean angular distance (in ``[0, 1]``) between the input of block ``i`` and the output of block
    ``i + span - 1``, for every start ``i``, over the tokens of ``calibration`` (``[sequences, tokens]``)."""
    _, blocks = decoder_blocks(model)
    count = len(blocks)
    if not 1 <= span <= count:
        raise ConfigError(f"a run of {span} blocks does not fit in the model's {count}")
    states: dict[int, Tensor] = {}

    def keep_input(index: int):
        def hook(module, args, kwargs):
            states[index] = hidden_states(args[0] if args else kwargs["hidden_states"]).double()  # a copy
        return hook

    def keep_output(module, args, output):
        states[count] = hidden_states(output).double()

    handles = [b.register_forward_pre_hook(keep_input(i), with_kwargs=True) for i, b in enumerate(blocks)]
    handles.append(blocks[-1].register_forward_hook(keep_output))
    sums, tokens = torch.zeros(count - span + 1, dtype=torch.float64), 0
    try:
        for start in range(0, len(calibration), batch_size):
            ids = calibration[start:start + batch_size]
            model(input_ids=ids, use_cache=False)
            for i in range(count - span + 1):
                sums[i] += angular_distance_sum(states[i], states[i + span])
            tokens += ids.numel()
    finally:
        for handle in handles:
            handle.remove()
    return (sums / max(tokens, 1)).tolist()


def choose_blocks(model: nn.Module, calibration: Tensor, blocks: int,
                  selection: str = "independent") -> tuple[list[int], list[float]]:
    """``(indices, distances)``: the ``blocks`` decoder blocks to remove, ranked on ``calibration`` (see the
    module), and the distances they were ranked by (per block; per run of ``blocks`` for ``contiguous``)."""
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown block selection {selection!r}; choose from {', '.join(SELECTIONS)}")
    count = len(decoder_blocks(model)[1])
    if not 1 <= blocks < count:
        raise ConfigError(f"cannot remove {blocks} of the model's {count} decoder blocks: give 1 to {count - 1}")
    if selection == "contiguous":
        distances = block_distances(model, calibration, span=blocks)
        start = min(range(len(distances)), key=distances.__getitem__)
        return list(range(start, start + blocks)), distances
    distances = block_distances(model, calibration)
    return sorted(sorted(range(count), key=distances.__getitem__)[:blocks]), distances


def drop_blocks(model: nn.Module, indices: Sequence[int]) -> None:
    """Remove the decoder blocks at ``indices`` in place; the config and the cache indices follow."""
    name, blocks = decoder_blocks(model)
    count = len(blocks)
    drop = set(indices)
    if not drop or not drop <= set(range(count)) or len(drop) == count:
        raise ConfigError(f"blocks to remove must be some, not all, of 0..{count - 1}; got {sorted(indices)}")
    kept = [i for i in range(count) if i not in drop]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.ModuleList(blocks[i] for i in kept))
    for new, block in enumerate(model.get_submodule(name)):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new
    for config in {id(c): c for c in (model.config, text_config(model))}.values():
        for key, value in list(vars(config).items()):  # per-layer lists (layer_types, ...) keep the kept entries
            if isinstance(value, list) and len(value) == count and key != "architectures":
                setattr(config, key, [value[i] for i in kept])
        if getattr(config, "num_hidden_layers", None) == count:
            config.num_hidden_layers = len(kept)


@dataclass
class DepthPruned:
    """What :func:`prune_depth` measured and wrote."""

    path: Path
    removed: list[int]
    distances: list[float]
    params_dense: int
    params: int
    perplexity_dense: float
    perplexity: float
    seconds: float
    part: str = "block"


def prune_depth(reference: str, blocks: int, *, out: str | os.PathLike, selection: str = "independent",
                part: str = "block", dataset: str = DEFAULT, calibration_batches: int = 32, dtype: str = "fp32",
                seqlen: int = 512, held_out: int = 16384, progress: bool = True) -> DepthPruned:
    """Load ``reference`` (``hf:DIR`` / ``hf:FILE.gguf``), remove ``blocks`` decoder blocks chosen on
    ``calibration_batches`` sequences of ``dataset`` after its first ``held_out`` tokens, and write a Hugging
    Face folder ``out`` that stock transformers loads, with the held-out perplexity before and after.

    With ``part`` ``"attention"`` or ``"mlp"``, only that half of ``blocks`` blocks is removed
    (:mod:`prunekit.hf.halves`) and the folder is in prunekit's compacted form.

    Raises:
        ConfigError: for a block count, selection or part that cannot be done, or a model or text that cannot
            be read.
    """
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown block selection {selection!r}; choose from {', '.join(SELECTIONS)}")
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    if part != "block" and selection != "independent":
        raise ConfigError(f"--selection {selection} removes runs of whole blocks; halves ({part}) are chosen "
                          f"independently")
    out = check_output(out, inputs=[reference.removeprefix("hf:")])
    pretrained = load(reference, dtype)
    model = pretrained.model
    count = len(decoder_blocks(model)[1])
    if part == "block":
        pretrained.check_standard("removing blocks")
        if not 1 <= blocks < count:
            raise ConfigError(f"cannot remove {blocks} of the model's {count} decoder blocks: give 1 to {count - 1}")
    else:  # the halves are found, and counted, before any text is read
        check_half_count(model, part, blocks)
    splits = token_splits(dataset, pretrained.tokenizer, held_out, seqlen)
    calibration = torch.cat([batch["input_ids"] for batch in splits.calibration(calibration_batches, seqlen)])
    params_dense = sum(p.numel() for p in model.parameters())
    dense = perplexity(model, splits.held_out, seqlen, progress)
    started = time.perf_counter()
    plan = None
    if part == "block":
        removed, distances = choose_blocks(model, calibration, blocks, selection)
        drop_blocks(model, removed)
    else:
        removed, distances = choose_halves(model, calibration, part, blocks)
        branches = drop_halves(model, part, removed)
        plan = (pretrained.plan or Plan({}, model_class=type(model).__name__)).with_bypassed(branches)
    seconds = time.perf_counter() - started
    pruned = perplexity(model, splits.held_out, seqlen, progress)
    params = sum(p.numel() for p in model.parameters())
    record = {"pruning": {"method": "depth", "part": part, "blocks": blocks, "selection": selection,
                          "removed": removed, ("block" if part == "block" else part) + "_distances": distances,
                          "dataset": dataset,
                          "calibration": [calibration_batches, seqlen]},
              "metrics": {"params_dense": params_dense, "params": params, "perplexity_dense": dense,
                          "perplexity": pruned, "perplexity_window": seqlen, "held_out_tokens": len(splits.held_out),
                          "prune_seconds": seconds}}
    path = save_pretrained(pretrained, out, None, record, plan)
    return DepthPruned(path, removed, distances, params_dense, params, dense, pruned, seconds, part)
