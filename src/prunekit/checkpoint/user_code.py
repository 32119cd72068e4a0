"""The one rule for user code recorded in a checkpoint: it runs only when the caller names it again.

A checkpoint of a user model (``--model FILE.py:FUNCTION``) or of a user dataset records that
reference in ``config.json``. A checkpoint is a file a stranger may hand over, so no command
imports what it names on its own: the user must pass the same reference again (``--model``,
``--dataset``; ``model_source=``, ``dataset=`` in Python), which says they trust that code. Every
command resolves a checkpoint's model and dataset through :func:`checkpoint_model_name` and
:func:`checkpoint_dataset_name`, so none can forget the rule.

Example:
    >>> config = {"model": {"name": None, "source": "evil.py:build"}, "dataset": "mnist"}
    >>> checkpoint_dataset_name(config, None, "ck")
    'mnist'
    >>> checkpoint_model_name(config, "evil.py:build", "ck")
    'evil.py:build'
    >>> checkpoint_model_name(config, None, "ck")
    Traceback (most recent call last):
    ...
    prunekit.errors.CheckpointError: ck names user code evil.py:build as its model; ... pass it again to use it ...
"""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError
from ..references import is_reference


def trusted(recorded: Any, given: str | None, *, what: str, option: str, keyword: str, folder: Any) -> None:
    """Raise unless a reference ``recorded`` in the checkpoint ``folder`` is named again as ``given``.

    Args:
        recorded: what the checkpoint records (a registry name, a reference, or None).
        given: what the caller passed (None: nothing).
        what, option, keyword: for the message: ``"model"``, ``"--model"``, ``"model_source="``.
        folder: the checkpoint, named in the message.

    Raises:
        CheckpointError: if ``recorded`` names user code and ``given`` is not that same reference.
    """
    if not is_reference(recorded):
        return
    if given is None:
        raise CheckpointError(f"{folder} names user code {recorded} as its {what}; prunekit never runs code named "
                              f"in a checkpoint on its own: pass it again to use it ({option} {recorded} on the "
                              f"command line, {keyword} in Python)")
    if given != recorded:
        raise CheckpointError(f"{folder} names user code {recorded} as its {what}, not {given}")


def checkpoint_model_name(config: dict[str, Any], model_source: str | None, folder: Any) -> str | None:
    """The model a checkpoint's ``config.json`` names: its registry name, or its user code when
    ``model_source`` names that same code (else :class:`~prunekit.errors.CheckpointError`).
    ``None`` for a model described by an architecture file or not at all."""
    spec = config.get("model") or {}
    source = spec.get("source")
    if source is not None:
        trusted(source, model_source, what="model", option="--model", keyword="model_source=", folder=folder)
        return source
    name = spec.get("name")  # a hand-made config may put a reference here: user code all the same
    trusted(name, model_source, what="model", option="--model", keyword="model_source=", folder=folder)
    return name


def recorded_dataset(config: dict[str, Any]) -> str:
    """The dataset a checkpoint's ``config.json`` records (``mnist`` if none): a name or a reference."""
    return config.get("dataset") if isinstance(config.get("dataset"), str) else "mnist"


def checkpoint_dataset_name(config: dict[str, Any], dataset: str | None, folder: Any) -> str:
    """The dataset to use with a checkpoint: ``dataset`` if given (a recorded user dataset must be given
    again, as the same reference), else the one it records (``mnist`` if none)."""
    recorded = recorded_dataset(config)
    trusted(recorded, dataset, what="dataset", option="--dataset", keyword="dataset=", folder=folder)
    return dataset or recorded
