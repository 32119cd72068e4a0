"""The weights a lottery ticket rewinds to, rebuilt from how the baseline was made.

A registered model built with ``get_model(name, seed=seed)`` has reproducible initial weights;
rewinding to an early epoch re-runs the baseline's recipe deterministically up to that epoch
(same seed, same batch order, same learning-rate schedule) and stops there.

Example:
    >>> state = rewind_state("lenet300", seed=0)  # the initialisation
    >>> sorted(state)[:2]
    ['classifier.bias', 'classifier.weight']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import Tensor

from ..errors import ConfigError
from ..models import get_model
from ..references import is_reference
from ..batches import as_source
from ..storage import load_tensors, save_tensors
from ..training import Callback, TrainConfig, TrainState, train


class StopAtStep(Callback):
    """Ends training once ``step`` steps are done."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state: TrainState) -> None:
        if state.step >= self.step:
            state.stop = True


def rewind_state(
    model_name: str,
    *,
    seed: int,
    model_args: dict[str, Any] | None = None,
    epoch: float = 0.0,
    train_config: TrainConfig | None = None,
    train_data: tuple[Tensor, Tensor] | None = None,
    progress: bool = False,
) -> dict[str, Tensor]:
    """The baseline's weights at ``epoch`` of its training (0: its initialisation).

    Args:
        model_name: the registered model.
        seed: the seed the baseline was built and trained with.
        model_args: its builder arguments.
        epoch: epochs of the baseline's recipe to re-run (may be fractional).
        train_config: the baseline's recipe (needed when ``epoch > 0``).
        train_data: the baseline's training data (needed when ``epoch > 0``).
        progress: show a progress bar while re-running.

    Returns:
        A state dict (copies).
    """
    model = get_model(model_name, seed=seed, **(model_args or {}))
    if epoch > 0:
        if train_config is None or train_data is None:
            raise ConfigError("rewinding to epoch > 0 needs the baseline's train_config and train_data")
        steps = round(epoch * len(as_source(train_data, train_config.batch_size, train_config.seed)))
        train(model, train_data, train_config, callbacks=[StopAtStep(max(1, steps))], progress=progress,
              desc=f"rewind to epoch {epoch:g}")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def cached_rewind_state(path: str | Path, **kwargs: Any) -> dict[str, Tensor]:
    """:func:`rewind_state`, kept in the safetensors file ``path`` after the first call."""
    path = Path(path)
    if path.is_file():
        return load_tensors(path, what="rewind weights file")
    state = rewind_state(**kwargs)
    save_tensors(path, state)
    return state


def checkpoint_rewind(
    config: dict[str, Any],
    *,
    epoch: float = 0.0,
    train_data: tuple[Tensor, Tensor] | None = None,
    cache: str | Path | None = None,
    progress: bool = False,
) -> Callable[[], dict[str, Tensor]] | None:
    """How to get the rewind weights of the baseline a checkpoint's ``config.json`` describes.

    Args:
        config: the checkpoint's config (``model.name``, ``model.args``, ``seed``, ``train``).
        epoch: the rewind epoch (0: the initialisation).
        train_data: the baseline's training data (for ``epoch > 0``).
        cache: a safetensors file keeping the result (see :func:`cached_rewind_state`).
        progress: show a progress bar while re-running the baseline's first epochs.

    Returns:
        A function computing the state dict lazily, or ``None`` when the checkpoint is not a
        registered model built from a seed (its initialisation cannot be rebuilt).
    """
    spec, seed = config.get("model") or {}, config.get("seed")
    if spec.get("name") is None or is_reference(spec["name"]) or seed is None:
        return None  # no registry name: nothing to rebuild the initialisation from (never user code)
    recipe = TrainConfig(**config["train"]) if config.get("train") else None
    kwargs = dict(model_name=spec["name"], model_args=spec.get("args"), seed=seed, epoch=epoch,
                  train_config=recipe, train_data=train_data, progress=progress)
    if cache is None:
        return lambda: rewind_state(**kwargs)
    return lambda: cached_rewind_state(cache, **kwargs)
