"""Block-by-block calibration: a model made of a stack of repeated blocks (a transformer's decoder layers)
is calibrated one block at a time, as the SparseGPT and Wanda reference code does.

The stack is found by rule, not by architecture: the ``nn.ModuleList`` of modules of one class that holds
every layer to prune, whose blocks one forward pass calls once each, in order. One forward pass per
calibration batch records every block's call (its hidden-state input, and the other arguments: masks,
position embeddings, which do not depend on the weights; the blocks pass their input through during
that pass, so it costs the embedding only); from then on each block runs alone, on the outputs of the
blocks before it as already pruned. A model without such a stack is calibrated through the
whole model, one truncated pass per step (:mod:`.calibration`). Both see the same inputs, so they give the
same masks; the stack costs about (steps per block + 1) block passes instead of one model pass per step.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(3))
    ...     def forward(self, x):
    ...         for block in self.blocks:
    ...             x = x + block(x)
    ...         return x
    >>> net = Net()
    >>> layers = {f"blocks.{i}.0": net.blocks[i][0] for i in range(3)}
    >>> find_stack(net, layers)[0]
    'blocks'
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import torch
from torch import Tensor, nn

from ..batches import Batch

Stage = tuple[dict[str, nn.Module], list[Callable[[], Any]], Optional[Callable[[Optional[list[Any]]], None]]]
"""A stage of calibration: its layers, one call per batch that runs them, and what to do once they are pruned
(given the calls' outputs when the pass that pruned them ran them to the end, else running them again)."""


class _Stop(Exception):
    pass


def find_stack(model: nn.Module, layers: dict[str, nn.Module]) -> Optional[tuple[str, nn.ModuleList]]:
    """``(name, module list)`` of the repeated blocks that hold every layer in ``layers``, or None."""
    names = set(layers)
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) < 2 or len({type(m) for m in module}) != 1:
            continue
        if names and all(_block_of(name, prefix, len(module)) is not None for name in names):
            return prefix, module
    return None


def _block_of(name: str, prefix: str, count: int) -> Optional[int]:
    head = f"{prefix}." if prefix else ""
    if not name.startswith(head):
        return None
    index = name[len(head):].split(".", 1)[0]
    return int(index) if index.isdigit() and int(index) < count else None


def block_stages(model: nn.Module, layers: dict[str, nn.Module], batches: list[Batch],
                 forward: Callable[[nn.Module, Batch], None]) -> Optional[Iterator[Stage]]:
    """The stages of block-by-block calibration, or None when the model has no stack of blocks that one
    forward pass calls once each, in order, mapping a hidden state to one of the same shape."""
    found = find_stack(model, layers)
    if found is None:
        return None
    prefix, stack = found
    calls = _record_calls(model, stack, batches, forward)
    if calls is None:
        return None
    return _stages(stack, prefix, layers, calls)


def _record_calls(model, stack, batches, forward) -> Optional[list[list[tuple[tuple, dict]]]]:
    """``[batch][block] -> (args, kwargs)`` of every block call, or None if the blocks are not called once
    each, in order, or the model does not run with its blocks passing their hidden state through.

    The blocks are not run here: each is replaced, for this pass only, by one that records its call and
    returns its hidden-state input, so the pass costs the model's embedding, not its blocks."""
    recorded: list[list[tuple[int, tuple, dict]]] = []

    def passthrough(index):
        def record(*args, **kwargs):
            recorded[-1].append((index, args, dict(kwargs)))
            if index == len(stack) - 1:
                raise _Stop
            return _hidden(args, kwargs)
        return record

    own = [block.__dict__.get("forward") for block in stack]  # a forward set on the instance (a wrapper) stays
    for i, block in enumerate(stack):
        block.forward = passthrough(i)
    try:
        for batch in batches:
            recorded.append([])
            try:
                forward(model, batch)
            except _Stop:
                pass
    except Exception:  # a model that needs more of its blocks than their hidden state: the whole-model path
        return None
    finally:
        for block, forward_of_its_own in zip(stack, own):
            if forward_of_its_own is None:
                del block.forward
            else:
                block.forward = forward_of_its_own
    expected = list(range(len(stack)))
    if any([i for i, _, _ in calls] != expected for calls in recorded):
        return None
    if any(_hidden(args, kwargs) is None for calls in recorded for _, args, kwargs in calls):
        return None
    return [[(args, kwargs) for _, args, kwargs in calls] for calls in recorded]


def _hidden(args: tuple, kwargs: dict) -> Optional[Tensor]:
    value = args[0] if args else kwargs.get("hidden_states")
    return value if isinstance(value, Tensor) else None


def _with_hidden(args: tuple, kwargs: dict, hidden: Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _stages(stack: nn.ModuleList, prefix: str, layers: dict[str, nn.Module],
            calls: list[list[tuple[tuple, dict]]]) -> Iterator[Stage]:
    hidden = [_hidden(*batch_calls[0]) for batch_calls in calls]
    for index, block in enumerate(stack):
        inputs = [_with_hidden(*batch_calls[index], hidden[b]) for b, batch_calls in enumerate(calls)]
        runs = [_runner(block, args, kwargs) for args, kwargs in inputs]
        mine = {n: m for n, m in layers.items() if _block_of(n, prefix, len(stack)) == index}

        def advance(outputs: Optional[list[Any]] = None, runs=runs) -> None:
            for b, run in enumerate(runs):
                out = run() if outputs is None else outputs[b]
                hidden[b] = out if isinstance(out, Tensor) else out[0]

        yield mine, runs, advance


def _runner(block: nn.Module, args: tuple, kwargs: dict) -> Callable[[], Any]:
    def run():
        with torch.no_grad():
            return block(*args, **kwargs)
    return run
