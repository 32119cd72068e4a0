"""``model_structure(model, example_inputs)``: the one place that decides how prunekit sees a model's units.

* **traced** -- ``example_inputs`` given: the model is traced (:func:`~prunekit.structure.trace`, on first
  use of :attr:`ModelStructure.graph`, then kept) and its coupled channel groups are the units;
* **sequential** -- an ``nn.Sequential`` without example inputs: its layers are walked in order, each
  layer's output neurons (or filters) are its units;
* **layers** -- any other model without example inputs: each layer is pruned on its own (weights); units
  can be neither coupled nor removed.

Pruning, compaction, reports and benchmarks take a :class:`ModelStructure` instead of deciding again, so a
model is traced at most once however many times it is pruned, copied, compacted or timed.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> model_structure(model).kind, model_structure(model, torch.randn(2, 4)).kind
    ('sequential', 'traced')
    >>> structure = model_structure(model, torch.randn(2, 4))
    >>> [g.name for g in structure.graph.groups]  # traced here, once
    ['0']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from ..batches import as_args
from ..errors import ConfigError

from .structure import Structure, trace

KINDS = ("traced", "sequential", "layers")


def walkable(model: nn.Module) -> bool:
    """Whether ``model`` can be walked layer by layer in order without a trace (an ``nn.Sequential``)."""
    return isinstance(model, nn.Sequential)


def signature(model: nn.Module, example_inputs: Any = None) -> tuple:
    """What a structure depends on: parameter and buffer names and shapes, module types, input shapes."""
    tensors = tuple((n, tuple(t.shape)) for n, t in [*model.named_parameters(), *model.named_buffers()])
    types = tuple(type(m).__qualname__ for m in model.modules())
    if example_inputs is None:
        return tensors, types
    args, kwargs = as_args(example_inputs)
    shapes = tuple(tuple(v.shape) if isinstance(v, torch.Tensor) else repr(v) for v in (*args, *kwargs.values()))
    return tensors, types, shapes, tuple(kwargs)


@dataclass
class ModelStructure:
    """How a model's units are found (see the module docstring); build it with :func:`model_structure`.

    Attributes:
        kind: ``"traced"``, ``"sequential"`` or ``"layers"``.
        example_inputs: the batch a traced structure is traced on (None otherwise).
    """

    kind: str
    example_inputs: Any = None
    _model: Optional[nn.Module] = field(default=None, repr=False)
    _signature: tuple = field(default=(), repr=False)
    _graph: Optional[Structure] = field(default=None, repr=False)
    traces: int = field(default=0, repr=False)

    @property
    def traced(self) -> bool:
        return self.kind == "traced"

    @property
    def removes_units(self) -> bool:
        """Whether units can be pruned as wholes and compacted away (traced or sequential)."""
        return self.kind != "layers"

    @property
    def graph(self) -> Structure:
        """The traced coupled groups (traced on first use, then kept).

        Raises:
            ConfigError: for a structure that is not traced.
        """
        if not self.traced:
            raise ConfigError(f"a {self.kind} structure has no traced graph; pass example_inputs=<one batch>")
        if self._graph is None:
            self._graph = trace(self._model, self.example_inputs)
            self.traces += 1
            self._model = None  # the graph is kept, not the model it was traced on
        return self._graph

    def check(self, model: nn.Module) -> None:
        """Raise :class:`ConfigError` unless ``model`` has the architecture this structure was built for
        (a pruned, masked or copied model has; a compacted one has not)."""
        if signature(model) != self._signature:
            raise ConfigError(f"the structure given was built for another architecture than this "
                              f"{type(model).__name__} (parameter names, shapes or module types differ); "
                              f"build one for it with model_structure(model, example_inputs)")


def model_structure(model: nn.Module, example_inputs: Any = None, *, walk_sequential: bool = False) -> ModelStructure:
    """Decide how ``model``'s units are found: traced on ``example_inputs`` if given, else walked in order if
    it is an ``nn.Sequential``, else layer by layer (see the module docstring). Nothing is traced yet.

    ``walk_sequential``: walk an ``nn.Sequential`` even when ``example_inputs`` are given. Enough to find
    and remove dead units (compaction, timing); pruning whole coupled groups needs the trace.

    Example:
        >>> model_structure(nn.Linear(3, 2)).kind
        'layers'
        >>> model_structure(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3), walk_sequential=True).kind
        'sequential'
    """
    if walk_sequential and walkable(model):
        example_inputs = None
    kind = "traced" if example_inputs is not None else "sequential" if walkable(model) else "layers"
    traced = kind == "traced"
    return ModelStructure(kind, example_inputs if traced else None, model if traced else None,
                          signature(model))
