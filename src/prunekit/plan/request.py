"""The request a target solver prunes with: one :class:`~prunekit.prune.PruneSpec` and one
:class:`~prunekit.structure.ModelStructure`, built once and handed to every :class:`~prunekit.prune.Pruner`
and compaction the solver makes, so a model is traced at most once per solve.

Example:
    >>> from torch import nn
    >>> solver_spec("unit", criterion="l1").criterion
    'l1'
    >>> solver_structure(nn.Sequential(nn.Linear(2, 2)), example_inputs=None).kind
    'sequential'
"""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from ..errors import ConfigError
from ..prune import PruneSpec
from ..structure import ModelStructure, model_structure


def solver_spec(spec: PruneSpec | str, **loose: Any) -> PruneSpec:
    """``spec`` itself, or the spec of a method name and the loose fields given beside it (``criterion=``,
    ``layers=``, ``scope=``: the older call form, kept working).

    Raises:
        ConfigError: for loose fields beside a :class:`~prunekit.prune.PruneSpec` (put them in it).
    """
    given = {k: v for k, v in loose.items() if v is not None}
    if isinstance(spec, PruneSpec):
        if given:
            raise ConfigError(f"pass {', '.join(sorted(given))} in the PruneSpec, not beside it")
        return spec
    return PruneSpec(spec, **given)


def solver_structure(model: nn.Module, example_inputs: Any = None,
                     structure: Optional[ModelStructure] = None) -> ModelStructure:
    """``structure`` (checked against ``model``), else the model's: an ``nn.Sequential`` is walked layer by
    layer as the reference study prunes it, any other model traced on ``example_inputs`` (on first use)."""
    if structure is not None:
        structure.check(model)
        return structure
    return model_structure(model, example_inputs, walk_sequential=True)
