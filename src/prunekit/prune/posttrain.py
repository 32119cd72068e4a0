"""Post-training weight criteria that read calibration data: ``wanda`` and ``sparsegpt``.

Both prune ``nn.Linear`` and ``nn.Conv2d`` weights layer by layer, in the order the model calls them
(:mod:`~prunekit.prune.calibration`): each layer's input statistics are gathered with the layers before
it already pruned, so a layer sees what the pruned model will feed it. ``wanda`` ranks weights by
``|w| * ||x||`` per output row (:mod:`~prunekit.prune.wanda`); ``sparsegpt`` also updates the weights
that remain to reconstruct the layer's outputs (:mod:`~prunekit.prune.sparsegpt`). Both take any
sparsity, a per-layer plan, or an N:M pattern, and shrink a previous mask like every criterion.

Example:
    >>> from torch import nn
    >>> from prunekit.prune import prune_model
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> x = torch.randn(64, 8)
    >>> mask = prune_model(model, "weight", pattern="2:4", criterion="sparsegpt", calibration=x)
    >>> int(mask["0.weight"].sum()), int(mask["2.weight"].sum())
    (64, 128)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .calibration import layer_by_layer, take_batches
from .nm import Pattern, nm_keep_mask
from .reconstruct import reconstruct_rows
from .scores import CRITERIA
from .select import check_finite_scores, sparsity_of
from .sparsegpt import sparsegpt_prune
from .wanda import rowwise_keep_mask, wanda_scores


@dataclass(frozen=True)
class PostTrainingCriterion:
    """A criterion that prunes each layer from its calibration inputs (``kind``: ``wanda`` or ``sparsegpt``).

    Attributes:
        kind: ``"wanda"`` or ``"sparsegpt"``.
        damp: sparsegpt: fraction of the Hessian's mean diagonal added to it.
        block_size: sparsegpt: columns per lazy-update block.
        batch_size: samples per calibration batch when the data are in-memory tensors.
        progress: show a progress bar over the layers.
        sequential: each layer's calibration inputs come from the layers before it as already pruned
            (True), or all the layers of a block from one pass before any of them is pruned (False).
    """

    kind: str
    damp: float = 0.01
    block_size: int = 128
    batch_size: int = 128
    progress: bool = True
    sequential: bool = True
    needs_data = True

    def __post_init__(self):
        if self.kind not in ("wanda", "sparsegpt"):
            raise ConfigError(f"unknown post-training criterion {self.kind!r}; valid: wanda, sparsegpt")
        if not self.damp > 0 or not (isinstance(self.block_size, int) and self.block_size > 0):
            raise ConfigError(f"sparsegpt needs damp > 0 and a positive integer block_size, got damp={self.damp!r}, "
                              f"block_size={self.block_size!r}")

    def __call__(self, w: Tensor, grad: Optional[Tensor] = None) -> Tensor:
        raise ConfigError(f"criterion {self.kind!r} reads each layer's inputs: call prune_model(..., method='weight', "
                          f"criterion={self.kind!r}, calibration=data)")


def posttrain_masks(model: nn.Module, targets: list[tuple[str, nn.Module]], sparsity: float | Mapping[str, float],
                    criterion: PostTrainingCriterion, calibration: Any, batches: int, previous: Mapping[str, Tensor],
                    pattern: Optional[Pattern] = None, reconstruct: bool = False) -> dict[str, Tensor]:
    """Prune ``targets`` of ``model`` in order (weights zeroed, and for sparsegpt or with ``reconstruct``
    updated, in place) and return their keep masks ``{"<layer>.weight": mask}``."""
    def choose(name: str, module: nn.Module, stats: dict[str, Tensor]) -> Tensor:
        key = f"{name}.weight"
        if criterion.kind == "wanda":
            scores = wanda_scores(module.weight, stats["squares"])
            check_finite_scores({key: scores}, previous)
            if pattern is not None:
                return nm_keep_mask(scores, *pattern, previous.get(key))
            return rowwise_keep_mask(scores, sparsity_of(sparsity, name), previous.get(key))
        check_finite_scores({key: module.weight.detach()}, previous)  # sparsegpt's scores are |w|^2 / [H^-1]_jj^2
        return _sparsegpt_layer(module, stats["hessian"], sparsity_of(sparsity, name), pattern, previous.get(key),
                                criterion, name, update=not reconstruct)

    kinds = {"wanda": ("squares",), "sparsegpt": ("hessian",)}[criterion.kind]
    return _layer_pass(model, targets, sparsity, pattern, calibration, batches, choose, kinds, reconstruct, criterion)


def reconstruct_masked(model: nn.Module, targets: list[tuple[str, nn.Module]], masks: Mapping[str, Tensor],
                       calibration: Any, batches: int, settings: PostTrainingCriterion | None = None) -> None:
    """Re-solve the kept weights of every target layer with a mask in ``masks``, in call order, each from its
    inputs in the model as reconstructed so far (:mod:`~prunekit.prune.reconstruct`); the masks are kept."""
    settings = settings or SPARSEGPT
    chosen = [(name, m) for name, m in targets if f"{name}.weight" in masks and not bool(masks[f"{name}.weight"].all())]
    _layer_pass(model, chosen, 0.0, None, calibration, batches, lambda name, m, stats: masks[f"{name}.weight"],
                ("hessian",), True, replace(settings, kind="sparsegpt"), prune_all=True)


def _layer_pass(model, targets, sparsity, pattern, calibration, batches, choose, kinds, reconstruct, settings,
                prune_all=False) -> dict[str, Tensor]:
    if calibration is None:
        what = f"criterion {settings.kind!r}" if not reconstruct else "reconstruct=True"
        raise ConfigError(f"{what} needs calibration data: pass calibration= (a DataLoader, (x, y) tensors or "
                          f"a Dataset; the CLI uses the training set)")
    masks = {f"{name}.weight": torch.ones_like(m.weight, dtype=torch.bool) for name, m in targets}
    to_prune = {name: m for name, m in targets if prune_all or pattern is not None or sparsity_of(sparsity, name) > 0}
    if not to_prune:
        return masks
    data = take_batches(calibration, batches, settings.batch_size)
    kinds = tuple(dict.fromkeys(kinds + (("hessian",) if reconstruct else ())))

    def visit(name: str, module: nn.Module, stats: dict[str, Tensor]) -> None:
        keep = choose(name, module, stats)
        weight = module.weight
        with torch.no_grad():
            if reconstruct:
                groups = stats["hessian"].shape[0]
                rows, kept = weight.reshape(groups, weight.shape[0] // groups, -1), keep.reshape(groups, weight.shape[0] // groups, -1)
                new = torch.stack([reconstruct_rows(rows[g], stats["hessian"][g], kept[g], settings.damp)
                                   for g in range(groups)])
                weight.copy_(new.reshape(weight.shape).to(weight.dtype))
            weight.mul_(keep.to(weight.device))
        masks[f"{name}.weight"] = keep

    desc = "reconstruct" if prune_all else settings.kind + (" + reconstruct" if reconstruct else "")
    layer_by_layer(model, to_prune, data, kinds, visit, desc=desc, progress=settings.progress,
                   sequential=settings.sequential)
    return masks


def _sparsegpt_layer(module: nn.Module, hessian: Tensor, sparsity: float, pattern: Optional[Pattern],
                     previous: Optional[Tensor], criterion: PostTrainingCriterion, name: str, update: bool) -> Tensor:
    """SparseGPT on every conv group of a layer: the keep mask (and, with ``update``, the new weights in place)."""
    weight = module.weight
    groups = hessian.shape[0]
    rows = weight.detach().reshape(groups, weight.shape[0] // groups, -1)
    prev = None if previous is None else previous.reshape(rows.shape)
    new, keep = [], []
    for g in range(groups):
        w, k = sparsegpt_prune(rows[g], hessian[g], sparsity, pattern=pattern, previous=None if prev is None else prev[g],
                               block_size=criterion.block_size, damp=criterion.damp, name=name)
        new.append(w)
        keep.append(k)
    if update:
        with torch.no_grad():
            weight.copy_(torch.stack(new).reshape(weight.shape).to(weight.dtype))
    return torch.stack(keep).reshape(weight.shape)


WANDA = PostTrainingCriterion("wanda")
SPARSEGPT = PostTrainingCriterion("sparsegpt")
CRITERIA.register("wanda", WANDA, description="|w| x input-feature norm per output row, from calibration data "
                                              "(Sun et al. 2023); no retraining")
CRITERIA.register("sparsegpt", SPARSEGPT, description="layer-wise OBS reconstruction from calibration data, "
                                                      "remaining weights updated (Frantar & Alistarh 2023)")
