"""Series names of a sweep: a schedule, optionally with a ``+distill`` suffix and an ``@CRITERION``.

Example:
    >>> from prunekit.schedules import Recovery
    >>> schedule, recipe, label = resolve_series("gradual+distill", Recovery())
    >>> schedule.name, recipe.distill is not None, label
    ('gradual', True, 'gradual+distill')
    >>> resolve_series("finetune@taylor", Recovery())[2], series_criterion("finetune@taylor")
    ('finetune@taylor', 'taylor')
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from ..prune import CRITERIA
from ..schedules import Recovery, Schedule, get_schedule
from ..training import DistillConfig


def resolve_series(name: str, recipe: Recovery) -> tuple[Schedule, Recovery, str]:
    """A sweep's series name -> ``(schedule, its recipe, its label in the results)``.

    ``"iterative"`` uses ``recipe`` as it is; ``"iterative+distill"`` distils whatever
    ``recipe.distill`` says (default :class:`~prunekit.training.DistillConfig`). A schedule
    that trains is labelled ``<name>+distill`` whenever its recipe distils. ``"iterative@taylor"``
    ranks with that criterion (:data:`~prunekit.prune.CRITERIA`), labelled so.

    Raises:
        ConfigError: for an unknown schedule or suffix, or ``+distill`` on a schedule that does not train.
    """
    name, at, criterion = name.partition("@")
    if at:
        CRITERIA.get(criterion)
    base, plus, suffix = name.partition("+")
    schedule = get_schedule(base)
    if plus:
        if suffix != "distill":
            raise ConfigError(f"unknown schedule variant {name!r}; write SCHEDULE or SCHEDULE+distill")
        if not schedule.trains:
            raise ConfigError(f"schedule {base!r} does not train, so {name!r} has nothing to distil")
        recipe = replace(recipe, distill=recipe.distill or DistillConfig())
    label = f"{base}+distill" if schedule.trains and recipe.distill is not None else base
    return schedule, recipe, f"{label}@{criterion}" if at else label


def series_criterion(name: str) -> str | None:
    """The criterion a series name asks for (``"finetune@taylor"`` -> ``"taylor"``), or ``None``: the method's."""
    return name.partition("@")[2] or None
