"""A compaction plan: which indices of which tensors are kept, and which attributes change. It is
plain JSON, so a compacted model is rebuilt by replaying the plan on a fresh instance of the same
model class (e.g. a Hugging Face model built from its config) and loading the weights: no pickle.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> plan = Plan(tensors={"0.weight": TensorPlan((3, 4), {0: [0, 2]}), "0.bias": TensorPlan((3,), {0: [0, 2]}),
    ...                      "2.weight": TensorPlan((2, 3), {1: [0, 2]})}, attributes={})
    >>> small = apply_plan(model, plan)
    >>> small[0].weight.shape, small[0].out_features, small[2].in_features
    (torch.Size([2, 4]), 2, 2)
    >>> Plan.from_json(plan.to_json()) == plan
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .attributes import int_attributes, update_layer_attributes
from .bypass import PARTS, bypass

FORMAT, VERSION = "prunekit.plan", 1


@dataclass(frozen=True)
class TensorPlan:
    """One parameter or buffer: its original shape and the indices kept along each changed axis."""

    shape: tuple[int, ...]
    keep: dict[int, list[int]]


@dataclass
class Plan:
    """Kept indices per tensor (by state-dict name) and attribute updates per module path."""

    tensors: dict[str, TensorPlan]
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_class: str = ""
    groups: list[dict[str, Any]] = field(default_factory=list)
    bypassed: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Residual branches removed whole, by module path: ``{"part", "outputs", "layer_idx"}`` (see
    :class:`~prunekit.compact.bypass.Bypassed`), replayed after the slicing."""

    def with_bypassed(self, branches: dict[str, dict[str, Any]]) -> "Plan":
        """This plan with ``branches`` removed too: their tensors and attributes are no longer sliced or set."""
        def inside(name: str) -> bool:
            return any(name == p or name.startswith(p + ".") for p in branches)
        return Plan({n: t for n, t in self.tensors.items() if not inside(n)},
                    {p: a for p, a in self.attributes.items() if not inside(p)}, self.model_class, self.groups,
                    {**self.bypassed, **branches})

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "model_class": self.model_class,
                "tensors": {name: {"shape": list(t.shape), "keep": {str(a): list(map(int, k))
                                                                    for a, k in t.keep.items()}}
                            for name, t in self.tensors.items()},
                "attributes": {path: {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}
                               for path, attrs in self.attributes.items()},
                "groups": self.groups, **({"bypassed": {p: dict(b) for p, b in self.bypassed.items()}} if self.bypassed else {})}

    @classmethod
    def from_json(cls, data: Any, source: Any = "plan") -> "Plan":
        """Parse a plan; raises CheckpointError naming ``source`` and what is malformed.

        Example:
            >>> Plan.from_json({"format": FORMAT, "version": VERSION, "tensors": {"fc.weight": {"shape": [3, 1e400],
            ...                 "keep": {}}}}, "plan.json")
            Traceback (most recent call last):
            ...
            prunekit.errors.CheckpointError: plan.json is not a valid compaction plan (tensor 'fc.weight': shape[1] must be a non-negative integer, got inf)
        """
        try:
            if data.get("format") != FORMAT or data.get("version") != VERSION:
                raise ValueError(f"format {data.get('format')!r} version {data.get('version')!r}, expected "
                                 f"{FORMAT!r} version {VERSION}")
            tensors = {}
            for name, entry in data["tensors"].items():
                where = f"tensor {name!r}"
                shape = tuple(_count(v, f"{where}: shape[{i}]") for i, v in enumerate(_list(entry["shape"], where)))
                keep = {_axis(a, where): [_count(i, f"{where}: a kept index of axis {a}") for i in _list(idx, where)]
                        for a, idx in entry["keep"].items()}
                for axis, idx in keep.items():
                    if not 0 <= axis < len(shape) or not idx or max(idx) >= shape[axis] or len(set(idx)) != len(idx):
                        raise ValueError(f"tensor {name!r}: kept indices of axis {axis} do not fit shape {list(shape)}")
                tensors[str(name)] = TensorPlan(shape, keep)
            attributes = {str(p): {str(k): _count(v, f"attribute {p}.{k}") for k, v in a.items()}
                          for p, a in data.get("attributes", {}).items()}
            bypassed = {str(p): _branch(b, f"bypassed {p!r}") for p, b in data.get("bypassed", {}).items()}
            return cls(tensors, attributes, str(data.get("model_class", "")), list(data.get("groups", [])), bypassed)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} is not a valid compaction plan ({exc})") from None


def _count(value: Any, what: str) -> int:
    """A size or an index read from a plan: a JSON integer >= 0 (not a bool, a fraction, NaN or inf)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _branch(value: Any, where: str) -> dict[str, Any]:
    """A removed branch read from a plan: its part, the length of its output tuple, its KV-cache layer."""
    if not isinstance(value, dict) or value.get("part") not in PARTS:
        raise ValueError(f"{where}: expected {{'part': one of {', '.join(PARTS)}, 'outputs', 'layer_idx'}}, got {value!r}")
    layer = value.get("layer_idx")
    if (value["part"] == "attention") != (layer is not None):
        raise ValueError(f"{where}: an attention branch names the KV-cache layer it wrote (layer_idx), an MLP "
                         f"branch none; got part {value['part']!r} with layer_idx {layer!r}")
    return {"part": value["part"], "outputs": _count(value.get("outputs", 0), f"{where}: outputs"),
            "layer_idx": None if layer is None else _count(layer, f"{where}: layer_idx")}


def _axis(key: Any, where: str) -> int:
    """An axis number, written as a JSON object key ("0", "1"...)."""
    if not (isinstance(key, str) and key.isascii() and key.isdigit()):
        raise ValueError(f"{where}: axis {key!r} must be a non-negative integer")
    return int(key)


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise TypeError(f"{where}: expected a JSON list, got {type(value).__name__} {value!r}")
    return value


def apply_plan(model: nn.Module, plan: Plan) -> nn.Module:
    """Slice ``model``'s tensors, set its attributes and remove its bypassed branches as ``plan`` says, in
    place; returns ``model``.

    Raises:
        CheckpointError: if a tensor of the plan is missing or has another shape, or an attribute it sets
            is not an integer attribute of the model (the plan was made for another model); nothing is
            changed then.
    """
    tensors = _tensors(model)
    modules = dict(model.named_modules())
    for path, attrs in plan.attributes.items():
        for attr in attrs:
            if path not in modules or attr not in int_attributes(modules[path]):
                raise CheckpointError(f"the plan sets {f'{path}.' if path else ''}{attr}, which is not an integer "
                                      f"attribute of the model ({type(model).__name__}): it does not fit this model")
    for path, branch in plan.bypassed.items():
        _check_branch(model, modules, plan, path, branch)
    for name, entry in plan.tensors.items():
        if name not in tensors:
            raise CheckpointError(f"the plan slices {name!r}, which the model ({type(model).__name__}) does not have")
        if tuple(tensors[name].shape) != entry.shape:
            raise CheckpointError(f"the plan was made for {name!r} of shape {list(entry.shape)}, the model's has "
                                  f"{list(tensors[name].shape)}: it does not fit this model")
    layers = {}
    done: dict[int, torch.Tensor] = {}
    for name, entry in plan.tensors.items():
        old = tensors[name]
        if id(old) not in done:
            done[id(old)] = _slice(old, entry.keep)
        path, _, attr = name.rpartition(".")
        owner = model.get_submodule(path) if path else model
        layers.setdefault(path, (owner, {k: v for k, v in vars(owner).items() if type(v) is int}))
        if isinstance(old, nn.Parameter):
            setattr(owner, attr, done[id(old)])
        else:
            owner.register_buffer(attr, done[id(old)], persistent=attr not in owner._non_persistent_buffers_set)
    for owner, before in layers.values():
        update_layer_attributes(owner, before)
    for path, attrs in plan.attributes.items():
        for attr, value in attrs.items():
            setattr(modules[path], attr, value)
    for path, branch in plan.bypassed.items():
        bypass(model, path, **branch)
    return model


def _check_branch(model: nn.Module, modules: dict[str, nn.Module], plan: Plan, path: str, branch: dict) -> None:
    """A branch the plan removes is a module of the model, inside no other removed branch, and an attention
    branch wrote the KV-cache layer the plan names."""
    if path not in modules or not path:
        raise CheckpointError(f"the plan removes the branch {path!r}, which the model ({type(model).__name__}) "
                              f"does not have: it does not fit this model")
    if any(path.startswith(other + ".") for other in plan.bypassed):
        raise CheckpointError(f"the plan removes {path!r} inside another removed branch: it is not a valid plan")
    if branch["part"] == "attention":
        layers = sorted({m.layer_idx for m in modules[path].modules() if isinstance(getattr(m, "layer_idx", None), int)})
        if layers != [branch["layer_idx"]]:
            raise CheckpointError(f"the plan removes {path!r} as the attention of KV-cache layer {branch['layer_idx']}; "
                                  f"the model's module there has layer_idx {layers or 'none'}: it does not fit this model")


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    named = dict(model.named_parameters(remove_duplicate=False))
    named.update(dict(model.named_buffers(remove_duplicate=False)))
    return named


def _slice(tensor: torch.Tensor, keep: dict[int, list[int]]) -> torch.Tensor:
    out = tensor.detach()
    for axis, idx in keep.items():
        out = out.index_select(axis, torch.tensor(idx, dtype=torch.long, device=out.device))
    out = out.clone()
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(out, requires_grad=tensor.requires_grad)
    return out
