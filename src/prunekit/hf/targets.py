"""Size targets of language models resolved to a width plan before pruning: at most N parameters, at most
N bytes of weights, or at most R x the dense decode time per token (measured on this machine).

Each is met by the **smallest uniform** unit sparsity (every pruned group alike, the spec's layers and
``--round-to``), found by bisection: the parameter and memory targets count the compaction plans' shapes (no
scores, no pruning: which units go does not change the sizes); the latency target times the compacted model
of each plan against the dense one, interleaved (prefill of a short prompt, then one token at a time through
the KV cache, batch 1, medians), so what it measures is what ``prunekit bench generate`` measures. The
search, every sparsity tried with what it gave, is returned and recorded.

Example (a tiny random Llama, its MLPs sized to 33,000 parameters):
    >>> import tempfile, torch
    >>> from prunekit.hf.tiny import tiny_folder
    >>> from prunekit.hf.load import load
    >>> from prunekit.prune import PruneSpec
    >>> from prunekit.structure import model_structure
    >>> model = load(tiny_folder(tempfile.mkdtemp(), "llama")).model
    >>> spec = PruneSpec("unit", layers=["*mlp*"])
    >>> structure = model_structure(model, {"input_ids": torch.arange(16)[None]})
    >>> search = resolve_size_target(model, spec, structure, SizeTarget(params=33000))
    >>> search.params <= 33000 < search.params_dense, search.target.kind
    (True, 'params')
"""

from __future__ import annotations

import copy
import glob
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from torch import nn

from ..compact.graph import build_plan
from ..compact.plan import apply_plan
from ..errors import ConfigError
from ..prune import Pruner, PruneSpec
from ..prune.select import num_to_prune
from ..prune.structured import prunable_groups
from ..structure import ModelStructure

MOST = 99.9
"""The largest sparsity tried: every pruned group keeps at least one unit."""


@dataclass(frozen=True)
class SizeTarget:
    """What the pruned language model must fit; give exactly one.

    Attributes:
        params: at most this many parameters.
        memory: at most this many bytes of weights at the model's dtype (the KV cache and activations are
            not counted: they depend on the context length, not on the plan alone).
        latency: at most this ratio of the dense model's decode time per token (batch 1, KV cache), measured.
        blocks: decoder blocks removed before the width is cut (:mod:`~.depth_width`): a number, or ``"auto"``
            to try several and keep the plan of the lowest validation perplexity; ``None``: width alone.

    Example:
        >>> SizeTarget(memory=400_000_000).check().describe()
        'at most 400,000,000 bytes of weights'
    """

    params: Optional[int] = None
    memory: Optional[int] = None
    latency: Optional[float] = None
    blocks: Any = None

    @property
    def kind(self) -> str:
        return next(k for k in ("params", "memory", "latency") if getattr(self, k) is not None)

    def check(self) -> "SizeTarget":
        """``self``, once it names exactly one positive target.

        Raises:
            ConfigError: naming what is wrong.
        """
        given = {k: getattr(self, k) for k in ("params", "memory", "latency") if getattr(self, k) is not None}
        if len(given) != 1:
            raise ConfigError(f"give one size target (--target-params, --target-memory or --target-latency), "
                              f"got {', '.join(given) or 'none'}")
        (kind, value), = given.items()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                or (kind != "latency" and not isinstance(value, int)):
            raise ConfigError(f"a {kind} target is a positive {'ratio' if kind == 'latency' else 'integer'}, "
                              f"got {value!r}")
        if kind == "latency" and value >= 1:
            raise ConfigError(f"a latency target is a ratio to the dense model below 1 (e.g. 0.8), got {value!r}")
        if self.blocks is not None and self.blocks != "auto" and (isinstance(self.blocks, bool)
                                                                  or not isinstance(self.blocks, int) or self.blocks < 0):
            raise ConfigError(f"the blocks to remove before width pruning are a count or 'auto', got {self.blocks!r}")
        return self

    def describe(self) -> str:
        if self.params is not None:
            return f"at most {self.params:,} parameters"
        if self.memory is not None:
            return f"at most {self.memory:,} bytes of weights"
        return f"at most {self.latency:g}x the dense decode time per token"


class TargetAlreadyMet(ConfigError):
    """The model meets the size target without width pruning."""


@dataclass
class SizeSearch:
    """How a :class:`SizeTarget` was met.

    Attributes:
        target: the target.
        sparsity: the uniform unit sparsity (percent) chosen.
        params: the parameters at that sparsity; ``params_dense`` before pruning.
        value: what the target measures at that sparsity (parameters, bytes, or the latency ratio).
        tried: ``(sparsity, value)`` of every plan tried, in order.
    """

    target: SizeTarget
    sparsity: float
    params: int
    params_dense: int
    value: float
    tried: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.target.kind, "target": getattr(self.target, self.target.kind),
                "sparsity": self.sparsity, "params": self.params, "params_dense": self.params_dense,
                "value": self.value, "tried": self.tried}


class _Plans:
    """The compaction plans of uniform sparsities of one model, spec and traced structure."""

    def __init__(self, model: nn.Module, spec: PruneSpec, structure: ModelStructure):
        self.model, self.spec, self.graph = model, spec, structure.graph
        self.pruner = Pruner(model, spec, structure=structure)
        self.groups = prunable_groups(self.graph, spec.layers, spec.include_inexact)
        if not self.groups:
            raise ConfigError(f"no coupled group of the model may be pruned under layers {spec.layers!r}: nothing "
                              f"to size")
        self.index = {id(g): i for i, g in enumerate(self.graph.groups)}

    def plan(self, sparsity: float):
        """The compaction plan removing ``sparsity`` percent of every pruned group (which units: the first
        ones, since only the sizes matter here)."""
        shares = self.pruner.rounded(sparsity) if self.spec.round_to > 1 else {}
        removed = {}
        for g in self.groups:
            share = shares.get(glob.escape(g.name), sparsity)
            removed[self.index[id(g)]] = np.arange(min(num_to_prune(share, g.size), g.size - 1))
        return build_plan(self.graph, self.model, removed)

    def params(self, sparsity: float) -> int:
        kept = self.plan(sparsity).tensors
        return sum(math.prod(len(kept[n].keep[a]) if n in kept and a in kept[n].keep else size
                             for a, size in enumerate(p.shape)) for n, p in self.model.named_parameters())

    def compacted(self, sparsity: float) -> nn.Module:
        """A copy of the model with the plan's shapes (its weights sliced: only its speed is of use)."""
        return apply_plan(copy.deepcopy(self.model), self.plan(sparsity)).eval()


def resolve_size_target(model: nn.Module, spec: PruneSpec, structure: ModelStructure, target: SizeTarget, *,
                        tolerance: float = 0.01, prompt_tokens: int = 128, new_tokens: int = 32,
                        repeats: int = 3, progress: bool = False) -> SizeSearch:
    """The smallest uniform unit sparsity of ``model`` (``spec``'s layers and rounding) that meets ``target``
    (see the module docstring); ``tolerance``: the bisection's width in sparsity points for the size targets
    (the latency target, being measured, stops at 1 point); ``prompt_tokens``, ``new_tokens``, ``repeats``:
    the generations timed per plan.

    Raises:
        ConfigError: for a target the dense model already meets, or one the width pruning cannot reach.
    """
    target.check()
    plans = _Plans(model, spec, structure)
    params_dense = plans.params(0.0)
    bytes_per_param = next(model.parameters()).element_size()
    if target.kind == "latency":
        measure = _latency_ratio(model, plans, prompt_tokens, new_tokens, repeats, progress)
        limit, tolerance = target.latency, max(tolerance, 1.0)
    elif target.kind == "memory":
        measure, limit = (lambda s: plans.params(s) * bytes_per_param), target.memory
    else:
        measure, limit = plans.params, target.params
    tried: list[tuple[float, float]] = []

    def value(sparsity: float) -> float:
        result = measure(sparsity)
        tried.append((round(sparsity, 3), result))
        return result

    dense = {"params": params_dense, "memory": params_dense * bytes_per_param, "latency": 1.0}[target.kind]
    if dense <= limit:
        raise TargetAlreadyMet(f"the model, {dense:,} {_unit(target)}, already meets the target: {target.describe()}")
    least = value(MOST)
    if least > limit:
        raise ConfigError(f"width pruning cannot bring the model to {target.describe()}: pruning every group it may "
                          f"prune to one unit gives {least:,.4g} {_unit(target)}. Give a larger target, more groups "
                          f"(--include-inexact for the residual width, --layers), or remove blocks first "
                          f"(prunekit drop-blocks)")
    high = _bisect(value, limit, 0.0, MOST, tolerance)
    chosen = next(v for s, v in reversed(tried) if s == round(high, 3))
    return SizeSearch(target, round(high, 3), plans.params(high), params_dense, chosen, tried)


def _bisect(value: Callable[[float], float], limit: float, low: float, high: float, tolerance: float) -> float:
    """The smallest sparsity in ``(low, high]`` whose ``value`` is at most ``limit``, to ``tolerance``
    (``value(high) <= limit`` is known; values fall as sparsity grows)."""
    while high - low > tolerance:
        middle = (low + high) / 2
        low, high = (low, middle) if value(middle) <= limit else (middle, high)
    return high


def _latency_ratio(model: nn.Module, plans: _Plans, prompt_tokens: int, new_tokens: int, repeats: int,
                   progress: bool) -> Callable[[float], float]:
    """A function of the sparsity: the compacted model's decode time per token over the dense model's, timed
    interleaved in one run (:func:`prunekit.bench.generate.generation_speed`)."""
    from ..bench.generate import generation_speed

    measured: dict[int, float] = {}  # by parameter count: sparsities that round to the same shapes are timed once

    def ratio(sparsity: float) -> float:
        size = plans.params(sparsity)
        if size not in measured:
            rows = generation_speed({"dense": model, "plan": plans.compacted(sparsity)},
                                    prompt_tokens=prompt_tokens, new_tokens=new_tokens, repeats=repeats)
            measured[size] = round(1.0 / rows[1]["speedup_decode"], 4)
            if progress:
                print(f"  {sparsity:6.2f}% of the units ({size:,} parameters): decode {measured[size]:.3f}x the "
                      f"dense time per token")
        return measured[size]

    return ratio


def _unit(target: SizeTarget) -> str:
    return {"params": "parameters", "memory": "bytes", "latency": "x the dense decode time"}[target.kind]


__all__ = ["SizeSearch", "SizeTarget", "TargetAlreadyMet", "resolve_size_target"]
