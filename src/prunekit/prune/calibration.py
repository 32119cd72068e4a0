"""Calibration: what each pruned layer sees, gathered through the model as pruned so far.

Post-training criteria (``wanda``, ``sparsegpt``) need statistics of each layer's inputs. They are
gathered **sequentially**: the layers are taken in the order the model calls them, and each layer's
statistics come from the calibration batches run through the model *as pruned so far*. By default all
batches run at once in lock-step (:mod:`.lockstep`): one pass visits every layer. Where the batches
reach the layers in different orders, each step runs the batches again, with a hook on that step's
layers that adds the batch to a running statistic and then stops the forward pass; layers called on the
same input tensor (a transformer's query/key/value projections) form one step. Inputs are read as rows
of features (:mod:`.input_stats`); a model made of repeated blocks is calibrated one block at a time
(:mod:`.blockwise`), so only one block's activations are held.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    >>> batches = take_batches(torch.randn(8, 3), 2, batch_size=4)
    >>> layers = {"0": model[0], "2": model[2]}
    >>> [[name for name, _ in step] for step in layer_steps(model, layers, batches)]
    [['0'], ['2']]
    >>> sums = {}
    >>> def add(name, rows): sums[name] = sums.get(name, 0) + rows.pow(2).sum(dim=-2)
    >>> for step in layer_steps(model, layers, batches):
    ...     feed_step(model, step, batches, add)
    >>> sums["2"].shape
    torch.Size([1, 4])
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..batches import Batch, as_source
from ..errors import ConfigError
from ..structure.trace import without_kv_cache
from .blockwise import block_stages
from .input_stats import add_statistics, input_rows
from .lockstep import OutOfStep, run_in_lockstep


class _StopForward(Exception):
    """Raised by a hook once a step's layers have seen the batch: the rest of the forward is not needed."""


def take_batches(data: Any, count: int, batch_size: int = 128) -> list[Batch]:
    """The first ``count`` batches of ``data`` (any data form; in-memory ``(x, y)`` tensors are shuffled with
    seed 0, a tensor of inputs alone is taken in order; both are cut into ``batch_size`` rows), kept on the
    CPU so every step sees the same samples.

    Raises:
        ConfigError: if ``data`` has no batch.
    """
    if not (isinstance(count, int) and count > 0):
        raise ConfigError(f"calibration_batches must be a positive integer, got {count!r}")
    out = []
    if isinstance(data, Tensor):  # inputs alone, in order
        data = list(data.split(batch_size))
    for batch in as_source(data, batch_size=batch_size, seed=0).epoch(0):
        out.append(batch.to("cpu"))
        if len(out) == count:
            break
    if not out:
        raise ConfigError("the calibration data is empty")
    return out


def layer_steps(model: nn.Module, layers: dict[str, nn.Module], batches: list[Batch]) -> list[list[tuple[str, nn.Module]]]:
    """``layers`` in the order the model first calls them on ``batches[0]``, consecutive layers called on
    the same input tensor grouped into one step; layers the forward never reaches are left out.

    Raises:
        ConfigError: if a layer is called more than once per forward (shared weights).
    """
    return steps_of(layers, _model_runs(model, batches[:1])[0])


def steps_of(layers: dict[str, nn.Module], run: Callable[[], Any]) -> list[list[tuple[str, nn.Module]]]:
    """The steps of :func:`layer_steps`, from one call ``run()`` of the forward pass that calls ``layers``."""
    order: list[tuple[str, nn.Module, Tensor]] = []  # holding the inputs keeps them (and their ids) alive
    calls: dict[str, int] = {}

    def hook(name):
        def record(module, args):
            calls[name] = calls.get(name, 0) + 1
            if calls[name] == 1:
                order.append((name, module, args[0]))
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    shared = [n for n, c in calls.items() if c > 1]
    if shared:
        raise ConfigError(f"layers {', '.join(shared)} are called more than once per forward pass (shared "
                          f"weights); post-training criteria need each pruned layer called once")
    steps: list[list[tuple[str, nn.Module]]] = []
    last = None
    for name, module, key in order:
        if steps and key is last:
            steps[-1].append((name, module))
        else:
            steps.append([(name, module)])
        last = key
    return steps


def feed_step(model: nn.Module, step: list[tuple[str, nn.Module]], batches: list[Batch],
              add: Callable[[str, Tensor], None]) -> None:
    """Run ``batches`` through ``model`` (eval mode, no gradients) and call ``add(name, rows)`` with each
    step layer's :func:`input_rows`, stopping each forward once the step's layers have their input."""
    feed(step, _model_runs(model, batches), add)


def feed(step: list[tuple[str, nn.Module]], runs: list[Callable[[], Any]], add: Callable[[str, Tensor], None]) -> None:
    """:func:`feed_step` over calls ``run()`` of a forward pass (the model's, or one block's)."""
    seen: set[str] = set()

    def hook(name):
        def record(module, args):
            add(name, input_rows(module, args[0].detach()))
            seen.add(name)
            if len(seen) == len(step):
                raise _StopForward
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in step]
    try:
        for run in runs:
            seen.clear()
            try:
                run()
            except _StopForward:
                pass
    finally:
        for h in handles:
            h.remove()


def layer_by_layer(model: nn.Module, layers: dict[str, nn.Module], data: list[Batch], statistics: Iterable[str],
                   visit: Callable[[str, nn.Module, dict[str, Tensor]], None], desc: str = "calibration",
                   progress: bool = True, sequential: bool = True) -> None:
    """Call ``visit(name, module, stats)`` for every layer, in call order, after running ``data`` through the
    model as changed by the visits before: block by block for a stack of repeated blocks
    (:mod:`.blockwise`), else through the whole model. ``stats`` holds the requested statistics of the
    layer's inputs, in float64 ``[groups, ...]``: ``"squares"`` (the sum of each feature's squares,
    ``[g, features]``) and ``"hessian"`` (``X^T X``, ``[g, features, features]``).

    ``sequential=True``: each layer's statistics come from the layers before it as already visited, all
    from one pass of the batches in lock-step (:mod:`.lockstep`), or one truncated pass per step where the
    batches reach the layers in different orders. ``sequential=False``: every layer of a block (of the
    model, without a stack of blocks) gets its statistics from one pass before any of them is visited, as
    the Wanda and SparseGPT reference code does.

    Raises:
        ConfigError: if a layer is never called on the data.
    """
    statistics = tuple(statistics)
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(layers), desc=desc, unit="layer", leave=False, disable=None if progress else True)

    def visit_and_count(name: str, module: nn.Module, stats: dict[str, Tensor]) -> None:
        visit(name, module, stats)
        bar.update(1)

    try:
        with without_kv_cache(model):
            stages = block_stages(model, layers, data, _forward)
            if stages is None:
                stages = iter([(layers, _model_runs(model, data), None)])
            for stage_layers, runs, advance in stages:
                outputs = None
                if sequential:
                    outputs = _lockstep_stage(stage_layers, runs, statistics, visit_and_count)
                else:
                    _stepwise_stage(stage_layers, runs, statistics, visit_and_count, together=True)
                if advance is not None:
                    advance(outputs)
    finally:
        bar.close()
        model.train(was_training)


def _lockstep_stage(layers, runs, statistics, visit) -> Optional[list[Any]]:
    """One stage in one lock-step pass; the runs' outputs, or None when the stage fell back to steps."""
    last: list[Any] = [None, None]  # the inputs of the last visit and their statistics (query/key/value share them)
    visited: set[str] = set()

    def visit_inputs(name: str, module: nn.Module, inputs: list[Tensor]) -> None:
        if last[0] is None or len(last[0]) != len(inputs) or any(a is not b for a, b in zip(last[0], inputs)):
            last[0], last[1] = inputs, {}
        cached = last[1]
        key = (type(module), getattr(module, "groups", 1), getattr(module, "kernel_size", None),
               getattr(module, "stride", None), getattr(module, "padding", None), getattr(module, "dilation", None))
        if key not in cached:
            stats: dict[str, Tensor] = {}
            for x in inputs:
                add_statistics(stats, input_rows(module, x), statistics)
            cached[key] = stats
        visit(name, module, dict(cached[key]))
        visited.add(name)

    try:
        outputs = run_in_lockstep(runs, layers, visit_inputs)
    except OutOfStep as exc:
        rest = {name: m for name, m in layers.items() if name not in exc.visited}
        _stepwise_stage(rest, runs, statistics, visit, together=False)
        return None
    missed = [name for name in layers if name not in visited]
    if missed:
        raise ConfigError(f"layers {', '.join(missed)} are never called on the calibration data; "
                          f"exclude them with layers=")
    return outputs


def _stepwise_stage(layers, runs, statistics, visit, *, together: bool) -> None:
    """One stage one step at a time (``together``: all its layers as one step, from one pass)."""
    steps = steps_of(layers, runs[0]) if layers else []
    reached = {name for step in steps for name, _ in step}
    missed = [name for name in layers if name not in reached]
    if missed:
        raise ConfigError(f"layers {', '.join(missed)} are never called on the calibration data; "
                          f"exclude them with layers=")
    if steps and together:
        steps = [[layer for step in steps for layer in step]]
    for step in steps:
        stats: dict[str, dict[str, Tensor]] = {name: {} for name, _ in step}
        feed(step, runs, lambda name, rows: add_statistics(stats[name], rows, statistics))
        for name, module in step:
            visit(name, module, stats.pop(name))


def _model_runs(model: nn.Module, batches: list[Batch]) -> list[Callable[[], None]]:
    return [functools.partial(_forward, model, batch) for batch in batches]


def _forward(model: nn.Module, batch: Batch) -> None:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = batch.to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*batch.args, **batch.kwargs)
    finally:
        model.train(was_training)
