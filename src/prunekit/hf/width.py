"""Width-pruned language models out as standard Hugging Face folders: fewer MLP channels, attention heads
(a key/value head only with all its query heads) or residual width, in a config stock transformers reads.

The pruned units come from the traced coupled groups (:mod:`prunekit.structure`): no per-architecture code.
The compacted shapes are read off the compaction plan, and the config is **solved** from them: every integer
setting whose value is a size that changed (``intermediate_size`` 1536 -> 1152) or a head count scaled as a
heads group was (``num_key_value_heads`` 3 -> 2) is tried at its new value, as is a setting left unset
(GPT-2's ``n_inner``), and the settings whose freshly built model (on the ``meta`` device: no memory) has
exactly the compacted parameter shapes are kept, one change at a time. Sizes the modules derive (``head_dim``
= ``hidden_size // num_attention_heads``) are written out where the new head counts need them. The weights are then loaded into a model built from that config, so every constant of the
model's code (head counts in a view, a split offset read from the config) follows: the result is checked
against the masked model's logits before anything is written.

A plan no standard config expresses (layers of different widths, GPT-2's heads, whose width is ``n_embd``)
keeps the dense architecture with its tensors sliced, in prunekit's compacted form (the plan replayed on a
model built from the dense config: :func:`prunekit.hf.load` and :func:`prunekit.load_compacted` read it;
stock transformers does not), and says so.

Example (a tiny random Llama, its MLPs pruned by half):
    >>> import tempfile, torch
    >>> from prunekit.hf.tiny import tiny_folder
    >>> from prunekit.hf.load import load
    >>> from prunekit.prune import Pruner, PruneSpec
    >>> model = load(tiny_folder(tempfile.mkdtemp(), "llama")).model
    >>> example = {"input_ids": torch.arange(16)[None]}
    >>> pruner = Pruner(model, PruneSpec("unit", layers=["*mlp*"]), example)
    >>> small = compact_pretrained(model, pruner.prune(50.0), pruner.structure)
    >>> small.model.config.intermediate_size, small.changes
    (32, {'intermediate_size': [64, 32]})
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..compact.graph import build_plan, check_outputs, removable_units
from ..compact.plan import Plan, apply_plan
from ..errors import ConfigError
from ..prune.mask import as_mask
from ..structure import ModelStructure, Structure

MAX_ROUNDS = 8
"""At most this many settings change (each round of the search changes one)."""


@dataclass
class CompactedLM:
    """A width-pruned language model in a standard config.

    Attributes:
        model: the model built from the solved config, holding the kept weights (eval mode).
        changes: ``{setting: [before, after]}`` of the config.
        plan: the compaction plan (kept indices per tensor, the groups' sizes).
        difference: its logits' largest difference from the masked model's, relative to their scale
            (0 up to float rounding for exact groups; the residual width through a norm is not exact).
        exact: whether every removed group was exact.
        nonstandard: ``None`` when the config is standard; else why no standard config gives the shapes (the
            model is then the dense architecture with its tensors sliced, which prunekit's compacted form keeps:
            :func:`prunekit.hf.load` and :func:`prunekit.load_compacted` read it, stock transformers does not).
    """

    model: nn.Module
    changes: dict[str, list[int]]
    plan: Plan
    difference: float
    exact: bool
    nonstandard: Optional[str] = None

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def compact_pretrained(model: nn.Module, mask: Optional[Mapping[str, torch.Tensor]], structure: ModelStructure, *,
                       include_inexact: bool = False, atol: float = 1e-4,
                       standard_only: bool = False) -> CompactedLM:
    """Remove the pruned units of the Hugging Face model ``model`` (not modified) and rebuild it from a
    standard config solved from the new shapes (see the module docstring). When no standard config gives
    them (layers of different widths) the result is the model with its tensors sliced and
    :attr:`CompactedLM.nonstandard` says why; ``standard_only`` makes that an error instead.

    Raises:
        ConfigError: with ``standard_only``, when no change of the config's integer settings gives the
            compacted shapes (naming the tensors left unexplained); or when the compacted model's logits differ
            from the masked model's by more than ``atol`` (relative) although every removed group is exact.
    """
    masked = copy.deepcopy(model).eval()
    if mask is not None:
        as_mask(mask).apply_(masked)
    graph = structure.graph
    removed = removable_units(graph, masked, None, include_inexact)
    plan = build_plan(graph, masked, removed)
    exact = all(graph.groups[i].exact for i in removed)
    sliced_model = apply_plan(copy.deepcopy(masked), plan).eval()
    sliced = sliced_model.state_dict()
    shapes = {name: tuple(t.shape) for name, t in sliced.items()}
    try:
        config, changes = solve_config(model, shapes, graph, removed)
    except ConfigError as exc:
        if standard_only:
            raise
        difference = check_outputs(masked, sliced_model, structure.example_inputs,
                                   atol=atol if exact else float("inf"))
        return CompactedLM(sliced_model, {}, plan, difference, exact, nonstandard=str(exc).split("): ")[0] + ")")
    small = type(model)._from_config(config, dtype=next(model.parameters()).dtype)
    missing, unexpected = small.load_state_dict(sliced, strict=False)
    persistent = set(small.state_dict())
    if [n for n in missing if n in persistent] or unexpected:
        raise ConfigError(f"the rebuilt {type(model).__name__} does not take the compacted weights (missing "
                          f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    small.generation_config = copy.deepcopy(model.generation_config)
    small.eval()
    difference = check_outputs(masked, small, structure.example_inputs, atol=atol if exact else float("inf"))
    return CompactedLM(small, changes, plan, difference, exact)


def solve_config(model: nn.Module, shapes: Mapping[str, tuple[int, ...]], graph: Optional[Structure] = None,
                 removed: Optional[Mapping[int, Any]] = None) -> tuple[Any, dict]:
    """The config of ``model`` with the integer settings changed so that a model built from it has exactly
    ``shapes`` (``{state-dict name: shape}``), e.g. the compaction of ``removed`` (``{group index: units}`` of
    the traced ``graph``, whose heads groups give the head counts); and ``{setting: [before, after]}``.

    Raises:
        ConfigError: naming the tensors no change explains (e.g. layers pruned to different widths).
    """
    config = model.config
    base = config.to_dict()
    original = {n: tuple(t.shape) for n, t in model.state_dict().items()}
    aliases = set(getattr(config, "attribute_map", {}))  # other names of settings it has (num_experts...)
    pinned = {k: v for k, v in _derived_sizes(model, base).items() if k not in aliases
              if not _mismatches(type(model), type(config), base, {k: v}, original)}
    base = {**base, **pinned}
    sizes = _size_changes(model, shapes, graph, removed)
    settings = {k: v for k, v in base.items() if (type(v) is int and v > 1) or v is None}
    candidates = {k: sorted({new for old, new in sizes if old == v or v is None}) for k, v in settings.items()}
    candidates = {k: c for k, c in candidates.items() if c}
    current: dict[str, int] = {}
    best = _mismatches(type(model), type(config), base, current, shapes)
    for _ in range(MAX_ROUNDS):
        if not best:
            break
        tries = [({**current, key: value}, key) for key, values in candidates.items() if key not in current
                 for value in values]
        scored = [(_mismatches(type(model), type(config), base, changed, shapes), key, changed)
                  for changed, key in tries]
        scored = [s for s in scored if len(s[0]) < len(best)]
        if not scored:
            break
        best, _, current = min(scored, key=lambda s: len(s[0]))
    for key in [k for k in pinned if k not in current]:  # written out only where the new sizes need it
        trial = {k: v for k, v in base.items() if k != key}
        if not best and not _mismatches(type(model), type(config), trial, current, shapes):
            base = trial
    if best:
        shown = ", ".join(f"{name} {list(shapes.get(name, ()))}" for name in sorted(best)[:4])
        raise ConfigError(f"no standard {type(config).__name__} gives the compacted shapes ({shown}"
                          f"{', ...' if len(best) > 4 else ''}): the layers were pruned to different sizes, or the "
                          f"architecture sizes these units by a setting it shares with others. Prune every layer "
                          f"alike (--scope layer, one sparsity), or keep prunekit's compacted form "
                          f"(prunekit compact / prunekit.load_compacted)")
    final, original = {**base, **current}, config.to_dict()
    changes = {k: [original.get(k), v] for k, v in final.items() if original.get(k) != v}
    return type(config).from_dict(final), changes


def _derived_sizes(model: nn.Module, settings: Mapping[str, Any]) -> dict[str, int]:
    """Sizes the model's own modules hold that its config leaves derived (``head_dim`` computed as
    ``hidden_size // num_attention_heads``): one value across every module holding it, not a setting yet."""
    values: dict[str, set] = {}
    for module in model.modules():
        if type(module).__module__.startswith("torch."):
            continue
        for key, value in vars(module).items():
            if type(value) is int and value > 1 and not key.startswith("_") and settings.get(key) is None:
                values.setdefault(key, set()).add(value)
    return {k: v.pop() for k, v in values.items() if len(v) == 1}


def _size_changes(model: nn.Module, shapes: Mapping[str, tuple[int, ...]], graph: Optional[Structure],
                  removed: Optional[Mapping[int, Any]]) -> set[tuple[int, int]]:
    """``(old, new)`` sizes: every changed tensor axis, and the head counts of every pruned heads group (its
    key/value heads, and the query heads: as many more as a query tensor owns slices per unit)."""
    before = {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers())}
    pairs = {(a, b) for name, new in shapes.items() if name in before
             for a, b in zip(before[name].shape, new) if a != b}
    for index, units in (removed or {}).items():
        group = graph.groups[index]
        if group.kind != "heads" or not len(units):
            continue
        kept = group.size - len(units)
        per_unit = {int((m.units >= 0).sum()) // group.size for m in group.parameters if (m.units >= 0).any()}
        smallest = min(per_unit)
        pairs |= {(group.size * p // smallest, kept * p // smallest) for p in per_unit if p % smallest == 0}
    return pairs


def _mismatches(model_class, config_class, base: dict, changed: dict, shapes: Mapping[str, tuple]) -> set[str]:
    """The tensor names whose shape a model built with ``changed`` settings does not match (all of them when
    it cannot be built)."""
    try:
        config = config_class.from_dict({**base, **changed})
        with torch.device("meta"):
            built = {n: tuple(t.shape) for n, t in model_class._from_config(config).state_dict().items()}
    except Exception:  # noqa: BLE001 - a config the architecture refuses is simply not a solution
        return set(shapes) | {"(the model cannot be built)"}
    return {n for n in set(shapes) | set(built) if shapes.get(n) != built.get(n)}


def kv_rule_holds(config: Any) -> bool:
    """Whether the config's query heads divide by its key/value heads (every grouped-query runtime needs it).

    Example:
        >>> from types import SimpleNamespace
        >>> kv_rule_holds(SimpleNamespace(num_attention_heads=6, num_key_value_heads=2)), kv_rule_holds(SimpleNamespace())
        (True, True)
    """
    heads, kv = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None)
    return not (isinstance(heads, int) and isinstance(kv, int) and kv) or heads % kv == 0


__all__ = ["CompactedLM", "compact_pretrained", "kv_rule_holds", "solve_config"]
