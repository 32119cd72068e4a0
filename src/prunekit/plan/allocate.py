"""Per-layer sparsities from sensitivity curves: the plan that removes a target share of the parameters,
MACs or latency with the least predicted accuracy loss.

Greedily, :func:`allocate` takes the next grid step of whichever layer loses the least predicted accuracy
per weight (or MAC, or share of the latency) removed, until the target is reached. The prediction adds the
layers' drops (measured one layer at a time), which is what makes it cheap and what makes it approximate.

Example:
    >>> from prunekit.plan import Sensitivity
    >>> curves = Sensitivity("weight", 0.9, 200, 0, {"a": 100, "b": 100}, rows=[
    ...     {"layer": "a", "sparsity": 50.0, "accuracy": 0.89, "params_removed": 50, "macs_removed": 0},
    ...     {"layer": "b", "sparsity": 50.0, "accuracy": 0.60, "params_removed": 50, "macs_removed": 0}])
    >>> allocate(curves, target=25.0)  # a costs far less accuracy per weight
    {'a': 50.0, 'b': 0.0}
"""

from __future__ import annotations

from ..errors import ConfigError
from ..prune import check_sparsity
from .sensitivity import TARGET_KINDS, Sensitivity


def allocate(curves: Sensitivity, target: float, kind: str = "params") -> dict[str, float]:
    """Per-layer sparsities that remove ``target`` percent of the parameters (``params``: of the analysed
    layers' weights for weight pruning, of the model's for unit pruning) or of the model's MACs
    (``macs``) with the least predicted loss of the curves' metric (accuracy, or log perplexity; greedy).

    Raises:
        ConfigError: for an unknown kind, or a target the grid cannot reach (naming the most it can).
    """
    if kind not in TARGET_KINDS:
        raise ConfigError(f"unknown budget kind {kind!r}; choose from {', '.join(TARGET_KINDS)}")
    check_sparsity(target)
    key = f"{kind}_removed"
    if kind == "latency":
        if any(key not in r for r in curves.rows):
            raise ConfigError("a latency budget needs curves measured with latency_batch (a latency table)")
        total = 1.0
    elif kind == "macs":
        total = curves.macs_total
    elif curves.layer_weights:  # weight pruning: k% of the analysed layers' weights, as sweeps count it
        total = sum(curves.layer_weights.values())
    else:
        total = curves.params_total
    goal = target / 100 * total
    steps = {n: [{"sparsity": 0.0, curves.metric: curves.dense_accuracy, key: 0}] + curves.curve(n)
             for n in curves.layers()}
    at = {n: 0 for n in steps}
    removed = 0.0
    reachable = sum(max(r[key] for r in s) for s in steps.values())
    if reachable < goal:
        raise ConfigError(f"a {target:g}% {kind} target is out of reach of the sensitivity grid: pruning every "
                          f"layer to its largest grid sparsity removes {100 * reachable / max(total, 1):.1f}%")
    while removed < goal:
        best, best_cost = None, None
        for n, s in steps.items():  # the cheapest next move: any further step (a noisy step may save nothing)
            here = s[at[n]]
            for j in range(at[n] + 1, len(s)):
                gain = s[j][key] - here[key]
                if gain <= 0:
                    continue
                loss = curves.loss(s[j][curves.metric]) - curves.loss(here[curves.metric])
                cost = (max(0.0, loss) + 1e-9) / gain
                if best_cost is None or cost < best_cost:
                    best, best_cost = (n, j), cost
        if best is None:
            break
        n, j = best
        removed += steps[n][j][key] - steps[n][at[n]][key]
        at[n] = j
    return {n: steps[n][at[n]]["sparsity"] for n in steps}
