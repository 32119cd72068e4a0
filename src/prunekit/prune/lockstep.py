"""Calibration in one pass: every calibration batch runs through the model (or one block) at once, in
lock-step, and each pruned layer is visited the moment all batches have reached it.

Sequential calibration (each layer sees its inputs as the layers before it, already pruned, produce them)
used to cost one forward pass per step. Here each batch's forward runs in its own thread, but only one
thread runs at a time (turns are handed out by the caller's thread, in batch order), so nothing runs in
parallel and the results are deterministic. A forward pre-hook on each layer to prune parks the batch at
the layer; when every batch still running is parked there, the caller gets the layer and its inputs (in
batch order) and prunes it; then the parked batches go on, through the pruned layer. One pass visits
every layer, with exactly the inputs the step-by-step path gives it.

Forward passes that reach the layers in different orders (data-dependent routing, as in a mixture of
experts) cannot run in lock-step: :class:`OutOfStep` is raised before anything more is visited, and the
caller finishes the layers left with the step-by-step path.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> seen = []
    >>> def visit(name, module, inputs):
    ...     seen.append((name, len(inputs)))
    ...     with torch.no_grad():
    ...         module.weight.zero_()   # pruned: the batches go on through the changed layer
    >>> runs = [lambda x=torch.randn(5, 3): model(x) for _ in range(3)]
    >>> outputs = run_in_lockstep(runs, {"0": model[0], "2": model[2]}, visit)
    >>> seen, bool((outputs[0] == model[2].bias).all())
    ([('0', 3), ('2', 3)], True)
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Sequence

from torch import Tensor, nn

from ..errors import ConfigError

Visit = Callable[[str, nn.Module, list[Tensor]], None]
"""``visit(name, module, inputs)``: a layer and its first positional input from every batch that reached
it, in batch order; called once per layer, before any batch runs through it."""


class OutOfStep(Exception):
    """The batches reached the layers in different orders; ``visited`` names the layers visited before."""

    def __init__(self, visited: set[str]):
        super().__init__("the calibration batches reach the layers in different orders")
        self.visited = visited


class _Abort(BaseException):
    """Unwinds a parked batch's forward when the pass is given up."""


class _Batch:
    def __init__(self, index: int, run: Callable[[], Any]):
        self.index, self.run = index, run
        self.state = "ready"  # ready -> running -> parked | done | failed
        self.layer: Optional[str] = None
        self.input: Optional[Tensor] = None
        self.output: Any = None
        self.error: Optional[BaseException] = None
        self.calls: dict[str, int] = {}


def run_in_lockstep(runs: Sequence[Callable[[], Any]], layers: dict[str, nn.Module], visit: Visit) -> list[Any]:
    """Run every ``runs[i]()`` to its end, visiting each of ``layers`` once when all running batches reach it;
    the runs' return values, in order. A layer no batch reaches is not visited.

    Raises:
        OutOfStep: when running batches wait at different layers (nothing more is visited then).
        ConfigError: when a forward calls one of ``layers`` more than once (shared weights).
        Any error a run raises (the other runs are stopped first).
    """
    batches = [_Batch(i, run) for i, run in enumerate(runs)]
    turn = threading.Condition()
    current: list[Optional[_Batch]] = [None]  # the batch whose turn it is
    aborted = [False]
    visited: set[str] = set()
    local = threading.local()

    def wait_for_turn(batch: _Batch) -> None:
        while current[0] is not batch:
            turn.wait()
        if aborted[0]:
            raise _Abort

    def hook(name: str):
        def park(module: nn.Module, args: tuple) -> None:
            batch = getattr(local, "batch", None)
            if batch is None:  # a call from outside the pass (another thread of the user's)
                return
            batch.calls[name] = batch.calls.get(name, 0) + 1
            if batch.calls[name] > 1:
                raise ConfigError(f"layer {name} is called more than once per forward pass (shared weights); "
                                  f"post-training criteria need each pruned layer called once")
            if name in visited:
                return
            with turn:
                batch.state, batch.layer, batch.input = "parked", name, args[0].detach()
                current[0] = None
                turn.notify_all()
                wait_for_turn(batch)
                batch.state, batch.layer, batch.input = "running", None, None
        return park

    def work(batch: _Batch) -> None:
        local.batch = batch
        try:
            with turn:
                wait_for_turn(batch)
            batch.output = batch.run()
            state = "done"
        except _Abort:
            state = "done"
        except BaseException as exc:  # handed to the caller's thread, which raises it
            batch.error, state = exc, "failed"
        with turn:
            batch.state = state
            current[0] = None
            turn.notify_all()

    def give_turn(batch: _Batch) -> None:
        batch.state = "running"
        current[0] = batch
        turn.notify_all()
        while current[0] is batch:
            turn.wait()

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    threads = [threading.Thread(target=work, args=(b,), daemon=True, name=f"calibration-batch-{b.index}")
               for b in batches]
    for thread in threads:
        thread.start()
    try:
        with turn:
            while True:
                for batch in batches:
                    if batch.state in ("ready", "running"):
                        give_turn(batch)
                    if batch.state == "failed":
                        raise batch.error
                parked = [b for b in batches if b.state == "parked"]
                if not parked:
                    break
                names = {b.layer for b in parked}
                if len(names) > 1:
                    raise OutOfStep(set(visited))
                name = names.pop()
                visit(name, layers[name], [b.input for b in parked])
                visited.add(name)
                for b in parked:
                    b.state = "ready"
    finally:
        with turn:  # unwind every batch still alive (also after an interrupt that left one running)
            aborted[0] = True
            while any(b.state not in ("done", "failed") for b in batches):
                waiting = next((b for b in batches if b.state in ("ready", "parked")), None)
                if waiting is None:
                    turn.wait()  # a running batch: it parks or finishes, then notifies
                else:
                    give_turn(waiting)
        for thread in threads:
            thread.join()
        for h in handles:
            h.remove()
    return [b.output for b in batches]
