"""A size target met by depth and width together: how many decoder blocks to remove before the width is cut.

For each candidate count of blocks (``SizeTarget.blocks``: one number, or ``"auto"``: 0, then steps of about a
tenth of the blocks until removing blocks alone meets the target), the blocks whose output is closest to their
input are removed (``prunekit drop-blocks``' ranking, computed once on the calibration text), the smallest
uniform width sparsity meeting the target is found (:func:`~.targets.resolve_size_target`), the candidate is
pruned one-shot with the request's criterion, and its perplexity is measured on validation windows of the text
(after the calibration windows, never the held-out part). The candidate with the lowest perplexity is the plan;
every candidate is reported.

Example (a tiny random Llama of 2 blocks brought to 30,000 parameters):
    >>> import tempfile, torch
    >>> from prunekit.hf.tiny import tiny_folder
    >>> from prunekit.hf.load import load
    >>> from prunekit.hf.targets import SizeTarget
    >>> from prunekit.prune import PruneSpec
    >>> model = load(tiny_folder(tempfile.mkdtemp(), "llama")).model
    >>> ids = torch.randint(0, 300, (6, 16), generator=torch.Generator().manual_seed(0))
    >>> plan = plan_depth_and_width(model, PruneSpec("unit", layers=["*mlp*"]), SizeTarget(params=30000, blocks="auto"),
    ...                             calibration=ids[:2], validation=ids[2:])
    >>> [c["blocks"] for c in plan.candidates], all(c["params"] <= 30000 for c in plan.candidates)
    ([0, 1], True)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..prune import Pruner, PruneSpec
from ..structure import ModelStructure, model_structure

from .blocks import decoder_blocks
from .depth import block_distances, drop_blocks
from .targets import SizeSearch, SizeTarget, TargetAlreadyMet, resolve_size_target


@dataclass
class DepthWidthPlan:
    """The chosen plan: ``model`` (a copy with ``removed`` blocks gone, its width not yet cut), its traced
    ``structure``, the width ``search`` (``None`` when removing blocks alone meets the target) and every
    candidate tried (``{blocks, removed, sparsity, params, validation_perplexity}``)."""

    model: nn.Module
    structure: ModelStructure
    removed: list[int]
    search: Optional[SizeSearch]
    candidates: list[dict[str, Any]]


def depth_candidates(blocks: Any, count: int) -> list[int]:
    """The block counts to try: ``[blocks]`` for a number, or 0 and steps of about a tenth of ``count`` for
    ``"auto"`` (the caller stops once removing blocks alone meets the target).

    Example:
        >>> depth_candidates("auto", 30), depth_candidates(5, 30)
        ([0, 3, 6, 9, 12, 15, 18, 21, 24, 27], [5])
    """
    if blocks == "auto":
        step = max(1, round(count / 10))
        return list(range(0, count, step))
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 0 <= blocks < count:
        raise ConfigError(f"the blocks to remove before width pruning are 0 to {count - 1} or 'auto', got {blocks!r}")
    return [blocks]


def plan_depth_and_width(model: nn.Module, spec: PruneSpec, target: SizeTarget, *, calibration: torch.Tensor,
                         validation: torch.Tensor, calibration_batches: Any = None,
                         progress: bool = False) -> DepthWidthPlan:
    """The depth x width plan meeting ``target`` with the lowest perplexity on ``validation`` (``[n, tokens]``
    ids); blocks ranked on ``calibration`` (``[n, tokens]``); the criterion reads ``calibration_batches`` (the
    prune request's calibration data) if it needs data. ``model`` is not modified; up to three copies of it are
    held at once (the best candidate, the one being tried, and it pruned).

    Raises:
        ConfigError: when no candidate meets the target, or ``target.blocks`` is not a valid count.
    """
    count = len(decoder_blocks(model)[1])
    ranking = sorted(range(count), key=block_distances(model, calibration).__getitem__)
    example = {"input_ids": calibration[:1, :64]}
    candidates, best = [], None
    for blocks in depth_candidates(target.blocks, count):
        removed = sorted(ranking[:blocks])
        candidate = copy.deepcopy(model)
        if removed:
            drop_blocks(candidate, removed)
        structure = model_structure(candidate, example)
        try:
            search = resolve_size_target(candidate, spec, structure, target, progress=progress)
            sparsity: float = search.sparsity
        except TargetAlreadyMet:
            search, sparsity = None, 0.0
        except ConfigError as exc:
            candidates.append({"blocks": blocks, "removed": removed, "error": str(exc)})
            continue
        pruned = candidate
        if sparsity > 0:  # scored masked, on a copy: the candidate itself stays whole for the final pruning
            pruned = copy.deepcopy(candidate)
            Pruner(pruned, spec, structure=structure).prune(sparsity, calibration=calibration_batches).apply_(pruned)
        score = _perplexity(pruned, validation)
        params = search.params if search is not None else sum(p.numel() for p in candidate.parameters())
        candidates.append({"blocks": blocks, "removed": removed, "sparsity": sparsity, "params": params,
                           "validation_perplexity": score})
        if progress:
            print(f"  {blocks} blocks removed, width {sparsity:g}%: {params:,} parameters, validation perplexity "
                  f"{score:.3f}")
        if best is None or score < best[0]:
            best = (score, DepthWidthPlan(candidate, structure, removed, search, candidates))
        if search is None:  # removing blocks alone meets the target: more blocks only lose more
            break
    if best is None:
        raise ConfigError(f"no plan of depth and width meets the target ({target.describe()}): "
                          + "; ".join(f"{c['blocks']} blocks: {c['error']}" for c in candidates))
    return best[1]


@torch.inference_mode()
def _perplexity(model: nn.Module, ids: torch.Tensor) -> float:
    """``exp`` of the mean next-token loss over the rows of ``ids``."""
    losses = [float(model(input_ids=row[None], labels=row[None], use_cache=False).loss) for row in ids]
    return math.exp(sum(losses) / len(losses))


__all__ = ["DepthWidthPlan", "depth_candidates", "plan_depth_and_width"]
