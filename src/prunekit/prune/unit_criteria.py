"""Criteria that score whole units: filter norms, network slimming, the geometric median, Taylor.

* ``l1``, ``l2``: the norm of each unit's filters (Li et al. 2017); in a coupled group, of all its
  producers' filters together.
* ``bn_scale``: ``|gamma|`` of the normalisation after the unit (network slimming, Liu et al. 2017).
* ``fpgm``: the summed distance of a unit's filters to the other units' (He et al. 2019): units near the
  geometric median are the most replaceable, so they go first.
* ``activation``: what each unit adds to the layers that read it, over calibration data (Minitron's
  activation importance, weighted as Wanda weighs a weight): per unit, the square root of
  ``sum_j ||x_j||^2 ||W[:, j]||^2`` over the input features ``j`` it owns in every Linear (or GPT-2
  ``Conv1D``) reading it, ``x_j`` its activations over all calibration tokens. Forward passes only;
  it needs data (``calibration=``).
* ``taylor``: the first-order Taylor estimate of the loss change when a unit is removed (Molchanov
  et al. 2017, 2019): per batch, the sum over the unit's parameters of ``weight * gradient`` (which
  equals activation x gradient summed over the unit's positions), squared, averaged over calibration
  batches and normalised per group. It needs data: ``calibration=`` (any data form), in eval mode.

With ``method="weight"``, ``l1``/``l2`` are the weight magnitude and ``taylor`` is ``(w * grad)^2``
per weight averaged over batches; ``bn_scale`` and ``fpgm`` score units only.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.prune import prune_model
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    >>> with torch.no_grad():
    ...     _ = model[1].weight.copy_(torch.tensor([0.1, 2.0, 1.0]))
    >>> mask = prune_model(model, "unit", 34.0, criterion="bn_scale")
    >>> mask["0.weight"].any(dim=1).tolist()  # the unit with the smallest |gamma| goes
    [False, True, True]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch
from torch import Tensor, nn

from ..batches import as_source
from ..errors import ConfigError
from ..losses import LossFn, cross_entropy
from .scores import CRITERIA, magnitude
from .units import UnitSlice, UnitView, output_axis


@dataclass(frozen=True)
class UnitCriterion:
    """A criterion of whole units: ``score(view, params) -> [units]``, or data-driven (``needs_data``):
    ``data_scores(model, views, data, batches, loss_fn, sparsity) -> [scores per view]``."""

    name: str
    score: Optional[Callable[[UnitView, Mapping[str, Tensor]], Tensor]] = None
    needs_data: bool = False
    scores_weights: bool = False  # also defined for method="weight"
    data_scores: Optional[Callable[..., list[Tensor]]] = None

    def __call__(self, w: Tensor, grad: Optional[Tensor] = None) -> Tensor:
        """Per-weight scores for ``method="weight"``: the magnitude (``l1``, ``l2``)."""
        if not self.scores_weights or self.needs_data:
            raise ConfigError(f"criterion {self.name!r} scores whole units; use it with method='unit'")
        return magnitude(w)


@dataclass
class CriterionRun:
    """A :class:`UnitCriterion` with the calibration data it may need and the target sparsity
    (criteria that prune group after group, like ``learned``, read it)."""

    criterion: UnitCriterion
    calibration: Any = None
    batches: int = 32
    loss_fn: Optional[LossFn] = None
    sparsity: float = 0.0

    def __post_init__(self):
        if self.criterion.needs_data and self.calibration is None:
            raise ConfigError(f"criterion {self.criterion.name!r} needs data: pass calibration= (a DataLoader, "
                              f"(x, y) tensors or a Dataset; the CLI uses the training set)")
        if not (isinstance(self.batches, int) and self.batches > 0):
            raise ConfigError(f"calibration_batches must be a positive integer, got {self.batches!r}")

    def unit_scores(self, model: nn.Module, views: list[UnitView]) -> list[Tensor]:
        """One score per unit of every view (higher: kept longer)."""
        if self.criterion.needs_data:
            return self.criterion.data_scores(model, views, self.calibration, self.batches, self.loss_fn,
                                              self.sparsity)
        params = dict(model.named_parameters())
        return [self.criterion.score(view, params) for view in views]

    def weight_scores(self, model: nn.Module, names: list[str]) -> dict[str, Tensor]:
        """One score per weight of every named parameter."""
        if not self.criterion.scores_weights:
            raise ConfigError(f"criterion {self.criterion.name!r} scores whole units; use it with method='unit'")
        params = dict(model.named_parameters())
        if not self.criterion.needs_data:
            return {n: magnitude(params[n]) for n in names}
        sums = {n: torch.zeros_like(params[n], dtype=torch.float64) for n in names}

        def add(params, grads):
            for n in names:
                if grads.get(n) is not None:
                    sums[n] += (params[n].detach() * grads[n]).double().pow(2)

        count = _calibrate(model, self.calibration, self.batches, self.loss_fn, add)
        return {n: (s / count).to(params[n].dtype) for n, s in sums.items()}


def taylor_unit_scores(model: nn.Module, views: list[UnitView], data: Any, batches: int,
                       loss_fn: Optional[LossFn] = None, sparsity: float = 0.0) -> list[Tensor]:
    """Molchanov et al.'s Taylor scores of every unit, each group's scores normalised to unit L2 norm."""
    sums = [torch.zeros(v.size, dtype=torch.float64) for v in views]

    def add(params, grads):
        for i, view in enumerate(views):
            sums[i] += (view.rows(params) * view.rows(grads)).sum(dim=1).pow(2)

    count = _calibrate(model, data, batches, loss_fn, add)
    out = []
    for s in sums:
        s = s / count
        norm = s.norm()
        out.append(s / norm if norm > 0 else s)
    return out


def activation_unit_scores(model: nn.Module, views: list[UnitView], data: Any, batches: int,
                           loss_fn: Optional[LossFn] = None, sparsity: float = 0.0) -> list[Tensor]:
    """The ``activation`` scores of every unit (see the module docstring): forward passes, no gradients."""
    modules = dict(model.named_modules())
    readers: dict[str, list[tuple[int, UnitSlice]]] = {}
    for i, view in enumerate(views):
        for s in view.slices:
            owner, _, attr = s.name.rpartition(".")
            module = modules.get(owner)
            if attr == "weight" and module is not None and module.weight.dim() == 2 and s.axis == _input_axis(module):
                readers.setdefault(owner, []).append((i, s))
    unread = [views[i].name for i in range(len(views)) if not any(i == j for e in readers.values() for j, _ in e)]
    if unread:
        raise ConfigError(f"criterion 'activation' scores units by what the Linear layers reading them receive; no "
                          f"Linear layer reads {', '.join(unread[:3])} (use l2, fpgm or taylor there)")
    energy = {owner: torch.zeros(modules[owner].weight.shape[_input_axis(modules[owner])], dtype=torch.float64)
              for owner in readers}

    def hook(owner):
        def add(module, args):
            x = args[0].detach()
            energy[owner].add_(x.reshape(-1, x.shape[-1]).double().pow(2).sum(0).cpu())
        return add

    handles = [modules[owner].register_forward_pre_hook(hook(owner)) for owner in readers]
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    count = 0
    try:
        with torch.no_grad():
            for batch in as_source(data, batch_size=128, seed=0).epoch(0):
                batch = batch.to(device)
                model(*batch.args, **batch.kwargs)
                count += 1
                if count == batches:
                    break
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if count == 0:
        raise ConfigError("the calibration data is empty")
    scores = [torch.zeros(v.size, dtype=torch.float64) for v in views]
    for owner, entries in readers.items():
        weight = modules[owner].weight.detach().double().cpu()
        columns = weight.pow(2).sum(dim=1 - _input_axis(modules[owner]))
        contribution = energy[owner] * columns
        for i, s in entries:
            owned = s.units >= 0
            scores[i].index_add_(0, torch.from_numpy(s.units[owned]), contribution[torch.from_numpy(owned)])
    return [s.sqrt() for s in scores]


def _input_axis(module: nn.Module) -> int:
    """The axis of a 2-D weight that indexes the layer's inputs (0 for GPT-2's ``Conv1D``, stored ``[in, out]``)."""
    return 1 - output_axis(module)


def _calibrate(model: nn.Module, data: Any, batches: int, loss_fn: Optional[LossFn], add) -> int:
    """Run up to ``batches`` batches forward and backward (eval mode) and call ``add(params, grads)`` after each."""
    loss_fn = loss_fn or cross_entropy()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    params = dict(model.named_parameters())
    saved = {n: p.grad for n, p in params.items()}
    was_training = model.training
    model.eval()
    count = 0
    try:
        for batch in as_source(data, batch_size=128, seed=0).epoch(0):
            batch = batch.to(device)
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model(*batch.args, **batch.kwargs), batch)
            loss.backward()
            add(params, {n: p.grad for n, p in params.items()})
            count += 1
            if count == batches:
                break
    finally:
        model.train(was_training)
        for n, p in params.items():
            p.grad = saved[n]
    if count == 0:
        raise ConfigError("the calibration data is empty")
    return count


def _filters(view: UnitView, params: Mapping[str, Tensor]) -> Tensor:
    rows = view.rows(params, roles=("filter",))
    return rows if rows.shape[1] else view.rows(params)


def _bn_scale(view: UnitView, params: Mapping[str, Tensor]) -> Tensor:
    if not view.has("norm_scale"):
        raise ConfigError(f"criterion 'bn_scale' needs a normalisation layer with a scale after {view.name!r}; "
                          f"it has none (use l1, l2, fpgm or taylor there)")
    return view.rows(params, roles=("norm_scale",)).abs().sum(dim=1)


def _fpgm(view: UnitView, params: Mapping[str, Tensor]) -> Tensor:
    rows = _filters(view, params)
    return torch.cdist(rows.unsqueeze(0), rows.unsqueeze(0)).squeeze(0).sum(dim=1)


UNIT_CRITERIA = {
    "l1": (UnitCriterion("l1", lambda v, p: _filters(v, p).abs().sum(dim=1), scores_weights=True),
           "L1 norm of each unit's filters (Li et al. 2017); |w| for weight pruning"),
    "l2": (UnitCriterion("l2", lambda v, p: _filters(v, p).norm(dim=1), scores_weights=True),
           "L2 norm of each unit's filters (Li et al. 2017); |w| for weight pruning"),
    "bn_scale": (UnitCriterion("bn_scale", _bn_scale),
                 "|gamma| of the normalisation after each unit (network slimming, Liu et al. 2017)"),
    "fpgm": (UnitCriterion("fpgm", _fpgm),
             "distance of each unit's filters to the others; nearest the geometric median goes first (He et al. 2019)"),
    "activation": (UnitCriterion("activation", needs_data=True, data_scores=activation_unit_scores),
                   "what each unit adds to the Linear layers reading it over calibration data: ||x_j|| x ||W[:, j]|| "
                   "(Minitron's activation importance, Wanda-weighted)"),
    "taylor": (UnitCriterion("taylor", needs_data=True, scores_weights=True, data_scores=taylor_unit_scores),
               "first-order Taylor: (sum of weight x gradient)^2 per unit over calibration batches (Molchanov et al.)"),
}
"""The unit criteria, registered in :data:`prunekit.prune.CRITERIA` beside ``magnitude``, ``unit_l2`` and
``random`` (``learned`` joins them from :mod:`~prunekit.prune.learned`)."""


for _name, (_criterion, _description) in UNIT_CRITERIA.items():
    CRITERIA.register(_name, _criterion, description=_description)


def needs_data(criterion: str | None) -> bool:
    """Whether the named criterion reads calibration data (``taylor``); ``None`` (the method's default) does not.

    Example:
        >>> needs_data("taylor"), needs_data("l2"), needs_data(None)
        (True, False, False)
    """
    return criterion is not None and getattr(CRITERIA.get(criterion), "needs_data", False)
