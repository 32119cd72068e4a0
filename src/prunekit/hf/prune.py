"""Prune a pretrained Hugging Face model in one shot, with the field's protocol: calibration sequences and
held-out perplexity from one text, never overlapping; the result is a Hugging Face folder.

Example (a tiny random Llama, built and saved here):
    >>> import tempfile
    >>> from prunekit.hf.tiny import tiny_folder
    >>> folder = tiny_folder(tempfile.mkdtemp(), "llama")
    >>> from prunekit.prune import PruneSpec
    >>> result = prune_pretrained("hf:" + folder, PruneSpec("weight", criterion="wanda", calibration_batches=4),
    ...                           50.0, out=folder + "-w50", seqlen=64, held_out=1024, progress=False)
    >>> round(result.sparsity, 1), result.perplexity > 1
    (50.0, True)
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from ..data.text import DEFAULT, TokenSplits, token_splits
from ..errors import ConfigError
from ..plan import owl_plan
from ..prune import Mask, Pruner, PruneSpec
from ..schedules import Recovery
from ..storage import check_output
from ..structure import ModelStructure, model_structure

from .depth_width import DepthWidthPlan, plan_depth_and_width
from .load import load
from .perplexity import perplexity
from .recover import check_schedule, lm_recovery, prune_with_recovery, training_windows
from .save import save_pretrained
from .targets import SizeSearch, SizeTarget, resolve_size_target
from .width import compact_pretrained


@dataclass
class PrunedLM:
    """What :func:`prune_pretrained` measured and wrote (``config_changes``: the settings unit pruning changed,
    ``{setting: [before, after]}``; ``None`` for weight pruning, whose folder keeps the dense shapes;
    ``nonstandard``: why the folder is in prunekit's compacted form, which stock transformers cannot load)."""

    path: Path
    mask: Mask
    sparsity: float
    perplexity_dense: float
    perplexity: float
    prune_seconds: float
    train_tokens: int = 0
    params_dense: int = 0
    params: int = 0
    config_changes: Optional[dict[str, list]] = None
    search: Optional[SizeSearch] = None
    nonstandard: Optional[str] = None
    blocks_removed: list[int] = field(default_factory=list)
    depth_candidates: Optional[list[dict[str, Any]]] = None


def prune_pretrained(reference: str, spec: PruneSpec, target: Union[float, Mapping[str, float], None] = None, *,
                     out: str | os.PathLike, dataset: str = DEFAULT, dtype: str = "fp32", seqlen: int = 512,
                     held_out: int = 16384, owl: bool = False, schedule: str = "oneshot",
                     recovery: Optional[Recovery] = None, size: Optional[SizeTarget] = None,
                     progress: bool = True) -> PrunedLM:
    """Load ``reference`` (``hf:DIR`` or ``hf:FILE.gguf``), prune it as ``spec`` says to ``target`` (or the
    spec's N:M pattern) and write it as a Hugging Face folder ``out`` with its perplexity before and after.

    Calibration: ``spec.calibration_batches`` sequences of ``seqlen`` tokens from ``dataset`` after its
    first ``held_out`` tokens, which are the held-out text perplexity is measured on (windows of ``seqlen``).
    ``owl``: the sparsity becomes an OWL plan (:func:`~prunekit.plan.owl_plan`) measured on that calibration
    data: blocks whose weights carry more activation outliers are pruned less, the average kept.
    ``schedule``: ``oneshot``, or a schedule that trains (``finetune``, ``iterative``, ``gradual``) on the
    text's windows after the held-out part, with ``recovery``'s recipe (its unchanged settings taken from
    :data:`~.recover.LM_RECIPE`); see :func:`~.recover.prune_with_recovery`.

    Unit pruning (``spec.method == "unit"``) removes MLP channels, attention heads (a key/value head with all
    its query heads) and, with ``spec.include_inexact``, the residual width, from the traced model's coupled
    groups; the folder holds the **smaller** model in a standard config solved from its shapes
    (:func:`~.width.compact_pretrained`), which stock transformers loads. Every layer alike (layer scope,
    one sparsity) gives such a config; ``spec.round_to`` keeps channel counts multiples of N. Layers of
    different widths (global scope, per-layer ratios) are written in prunekit's compacted form, which
    :func:`~.load.load` reads and stock transformers does not (``PrunedLM.nonstandard`` says why).
    ``size`` (unit pruning, instead of ``target``): the smallest uniform sparsity whose compacted model has at
    most so many parameters or bytes of weights, or decodes in at most a ratio of the dense time per token
    (:func:`~.targets.resolve_size_target`; the search is recorded). With ``size.blocks`` decoder blocks are
    removed first, their number given or searched (:func:`~.depth_width.plan_depth_and_width`).

    Raises:
        ConfigError: for a target the spec refuses, a model or text that cannot be read, or a text too short.
    """
    recipe = check_request(spec, target, owl=owl, schedule=schedule, recovery=recovery, size=size)
    out = check_output(out, inputs=[reference.removeprefix("hf:")])
    pretrained = load(reference, dtype)
    if spec.removes_units:
        pretrained.check_standard("unit pruning")
    splits = token_splits(dataset, pretrained.tokenizer, held_out, seqlen)
    model = pretrained.model
    dense = perplexity(model, splits.held_out, seqlen, progress)
    params_dense = sum(p.numel() for p in model.parameters())
    search, structure, depth = None, None, None
    if size is not None and size.blocks is not None:  # depth and width planned together
        depth = _plan_depth(model, splits, spec, size, seqlen, progress)
        model, structure, search = depth.model, depth.structure, depth.search
        pretrained = replace(pretrained, model=model)
        target = search.sparsity if search is not None else 0.0
    elif spec.removes_units:
        structure = model_structure(model, {"input_ids": splits.rest[:min(seqlen, 64)].unsqueeze(0)})
    if size is not None and depth is None:
        search = resolve_size_target(model, spec, structure, size, progress=progress)
        target = search.sparsity
    point = prune_loaded(model, splits, spec, target, seqlen=seqlen, owl=owl, schedule=schedule, recipe=recipe,
                         structure=structure, progress=progress)
    sparsity = point.mask.sparsity()
    compacted, mask, plan = None, point.mask, None
    if spec.removes_units:  # a smaller model in a standard config, not a masked one
        compacted = compact_pretrained(model, point.mask, structure, include_inexact=spec.include_inexact)
        pretrained = replace(pretrained, model=compacted.model)
        mask = None
        plan = compacted.plan if compacted.nonstandard else None
    pruned = perplexity(pretrained.model, splits.held_out, seqlen, progress)
    params = sum(p.numel() for p in pretrained.model.parameters())
    record = {"pruning": {**_spec_record(spec), "sparsity": target, "dataset": dataset,
                          "calibration": [spec.calibration_batches, seqlen] if point.calibrated else None,
                          "owl_plan": point.plan, "schedule": schedule,
                          "recovery": recipe.to_dict() if recipe else None},
              "metrics": {"sparsity_actual": sparsity, "perplexity_dense": dense, "perplexity": pruned,
                          "perplexity_window": seqlen, "held_out_tokens": len(splits.held_out),
                          "prune_seconds": point.seconds, "params_dense": params_dense, "params": params,
                          **point.cost}}
    if search is not None:
        record["pruning"]["size_target"] = search.to_dict()
    if depth is not None:
        record["pruning"]["depth"] = {"blocks": size.blocks, "removed": depth.removed, "candidates": depth.candidates}
    if compacted is not None:
        record["compacted"] = {"config_changes": compacted.changes, "groups": compacted.plan.groups,
                               "exact": compacted.exact, "logit_difference": compacted.difference,
                               "form": "prunekit" if compacted.nonstandard else "standard",
                               "nonstandard": compacted.nonstandard}
    path = save_pretrained(pretrained, out, mask, record, plan)
    return PrunedLM(path, point.mask, sparsity, dense, pruned, point.seconds, point.cost.get("train_tokens", 0),
                    params_dense, params, compacted.changes if compacted is not None else None, search,
                    compacted.nonstandard if compacted is not None else None,
                    depth.removed if depth is not None else [], depth.candidates if depth is not None else None)


def _plan_depth(model: Any, splits: TokenSplits, spec: PruneSpec, size: SizeTarget, seqlen: int,
                progress: bool) -> DepthWidthPlan:
    """:func:`~.depth_width.plan_depth_and_width` on the text: blocks ranked on (up to 32 of) the calibration
    sequences, candidates compared on the 8 windows after them."""
    batches = spec.calibration_batches
    ranking = torch.cat([b["input_ids"] for b in splits.calibration(min(batches, 32), seqlen)])
    windows = training_windows(splits.rest, seqlen)
    validation = windows[batches:batches + 8]
    if len(validation) == 0:
        raise ConfigError(f"the text after the held-out part has {len(windows)} windows of {seqlen} tokens: none left "
                          f"after the {batches} calibration sequences to compare depth x width plans on")
    calibration = splits.calibration(batches, seqlen) if spec.needs_data else None
    return plan_depth_and_width(model, spec, size, calibration=ranking, validation=validation,
                                calibration_batches=calibration, progress=progress)


def check_request(spec: PruneSpec, target: Union[float, Mapping[str, float], None], *, owl: bool = False,
                  schedule: str = "oneshot", recovery: Optional[Recovery] = None,
                  size: Optional[SizeTarget] = None) -> Optional[Recovery]:
    """Refuse, before anything is loaded, a request :func:`prune_pretrained` cannot do; return the recovery
    recipe of a schedule that trains (through :func:`~.recover.lm_recovery`), else ``None``.

    Raises:
        ConfigError: naming what is wrong with the request.
    """
    if size is not None:
        if not spec.removes_units or target is not None or spec.pattern is not None or schedule != "oneshot":
            raise ConfigError("a size target (--target-params, --target-memory, --target-latency) is met by one-shot "
                              "unit pruning alone: give --method unit without --sparsity, --ratios or --pattern "
                              "(distil afterwards with prunekit train --teacher)")
        if spec.scope != "layer":
            raise ConfigError("a size target resolves to one sparsity for every layer (--scope layer)")
        size.check()
    elif (target is None) == (spec.pattern is None):
        raise ConfigError("give exactly one of a sparsity, per-layer ratios or an N:M pattern")
    else:
        spec.check_target(target)
    if owl and (spec.removes_units or spec.pattern is not None or isinstance(target, Mapping)):
        raise ConfigError("OWL turns one sparsity into per-block sparsities of weight pruning: give --sparsity "
                          "with a weight method, not a pattern, a plan or unit pruning")
    if spec.criterion is not None and not isinstance(spec.criterion, str):
        raise ConfigError("the folder records its request in prunekit.json: give the criterion by its registered name")
    trains = schedule != "oneshot"
    if trains and (owl or isinstance(target, Mapping)):
        raise ConfigError(f"--schedule {schedule} takes one sparsity (or an N:M pattern); OWL and per-layer plans "
                          f"are for one-shot pruning")
    recipe = lm_recovery(recovery) if trains else None
    if trains:
        check_schedule(schedule, recipe)
    return recipe


@dataclass
class PrunedPoint:
    """One pruning of a loaded model: its mask, the OWL plan it used (or ``None``), the seconds it took
    (calibration and training included), what training cost (``train_tokens``...) and whether it read
    calibration data."""

    mask: Mask
    plan: Optional[dict[str, float]]
    seconds: float
    cost: dict[str, Any]
    calibrated: bool


def prune_loaded(model: Any, splits: TokenSplits, spec: PruneSpec, target: Union[float, Mapping[str, float], None],
                 *, seqlen: int, owl: bool = False, schedule: str = "oneshot", recipe: Optional[Recovery] = None,
                 structure: Optional[ModelStructure] = None, progress: bool = True) -> PrunedPoint:
    """Prune the loaded language model ``model`` in place as :func:`prune_pretrained` does (checked request,
    ``recipe`` already through :func:`~.recover.lm_recovery` for a schedule that trains): calibration from
    ``splits`` after its held-out part; ``structure``: the model's traced structure, if already built."""
    reads = spec.needs_data or spec.reconstruct or owl
    calibration = splits.calibration(spec.calibration_batches, seqlen) if reads else None
    plan = owl_plan(model, target, calibration, batches=len(calibration), layers=spec.layers,
                    progress=progress) if owl else None
    example = {"input_ids": splits.rest[:seqlen].unsqueeze(0)} if spec.removes_units else None
    started, cost = time.perf_counter(), {}
    if schedule != "oneshot":
        mask, cost = prune_with_recovery(model, spec, spec.check_target(target), schedule, recipe,
                                         training_windows(splits.rest, seqlen), calibration,
                                         example_inputs=example, progress=progress)
    else:
        pruner = Pruner(model, spec, structure=structure) if structure is not None else Pruner(model, spec, example)
        mask = pruner.prune(plan if owl else target, calibration=calibration)
    return PrunedPoint(mask, plan, time.perf_counter() - started, cost, calibration is not None)


def _spec_record(spec: PruneSpec) -> dict[str, Any]:
    fields = asdict(spec)
    fields["layers"] = list(spec.layers) if spec.layers else None
    return fields


def held_out_perplexity(reference: str, *, dataset: str = DEFAULT, dtype: str = "fp32", seqlen: int = 512,
                        held_out: int = 16384, mask: Optional[Mapping[str, Any]] = None,
                        progress: bool = True) -> tuple[float, int]:
    """``(perplexity, tokens)`` of the model ``reference`` names on the held-out part of ``dataset``, the same
    tokens :func:`prune_pretrained` measures (``mask``: applied first)."""
    pretrained = load(reference, dtype)
    if mask is not None:
        Mask(dict(mask)).apply_(pretrained.model)
    splits = token_splits(dataset, pretrained.tokenizer, held_out, seqlen)
    return perplexity(pretrained.model, splits.held_out, seqlen, progress), len(splits.held_out)
