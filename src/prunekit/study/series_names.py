"""Series names of a sweep: a schedule, optionally with a ``+distill`` suffix.

Example:
    >>> from prunekit.schedules import Recovery
    >>> schedule, recipe, label = resolve_series("gradual+distill", Recovery())
    >>> schedule.name, recipe.distill is not None, label
    ('gradual', True, 'gradual+distill')
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from ..schedules import Recovery, Schedule, get_schedule
from ..training import DistillConfig


def resolve_series(name: str, recipe: Recovery) -> tuple[Schedule, Recovery, str]:
    """A sweep's series name -> ``(schedule, its recipe, its label in the results)``.

    ``"iterative"`` uses ``recipe`` as it is; ``"iterative+distill"`` distils whatever
    ``recipe.distill`` says (default :class:`~prunekit.training.DistillConfig`). A schedule
    that trains is labelled ``<name>+distill`` whenever its recipe distils.

    Raises:
        ConfigError: for an unknown schedule or suffix, or ``+distill`` on a schedule that does not train.
    """
    base, plus, suffix = name.partition("+")
    schedule = get_schedule(base)
    if plus:
        if suffix != "distill":
            raise ConfigError(f"unknown schedule variant {name!r}; write SCHEDULE or SCHEDULE+distill")
        if not schedule.trains:
            raise ConfigError(f"schedule {base!r} does not train, so {name!r} has nothing to distil")
        recipe = replace(recipe, distill=recipe.distill or DistillConfig())
    label = f"{base}+distill" if schedule.trains and recipe.distill is not None else base
    return schedule, recipe, label
