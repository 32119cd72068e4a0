"""Half-block pruning of a language model: remove the attention or the MLP of chosen decoder blocks alone.

A decoder block adds two residual branches to its input, ``h + attention(...)`` then ``+ mlp(...)``. Each
branch is ranked by the change it makes to the residual stream over calibration data (He et al., "What
matters in transformers? Not all attention is needed"): the angular distance between the block's input and
its output with the MLP removed (the attention's share), and between that and the full output (the MLP's).
The branches with the least distance are replaced by :class:`~prunekit.compact.bypass.Bypassed` modules
(zeros, no weights; attention still counts tokens in the KV cache).

The halves are found without naming an architecture: of a block's children, the attention is the one with
weight matrices that carries a KV-cache ``layer_idx``, the MLP the one other child with weight matrices. A
block whose halves are not residual branches (with both removed, its output is not its input: BLOOM adds
the residual inside its attention) is refused with the measured difference.

A removed attention returns no attention weights (``output_attentions`` gives ``None`` for its block) and
keeps a key and a value one wide per token in the cache.

No standard config says "block i has no attention", so the result is written in prunekit's compacted form
(:func:`prunekit.hf.load` and :func:`prunekit.load_compacted` read it; stock transformers does not).

Example (a tiny random Llama of 3 blocks):
    >>> import tempfile, torch
    >>> from prunekit.hf import load
    >>> from prunekit.hf.tiny import tiny_folder
    >>> model = load("hf:" + tiny_folder(tempfile.mkdtemp(), "llama", layers=3)).model
    >>> block_halves(model.model.layers[0])
    {'attention': 'self_attn', 'mlp': 'mlp'}
    >>> chosen, distances = choose_halves(model, torch.randint(0, 300, (2, 16)), "attention", 1)
    >>> branches = drop_halves(model, "attention", chosen)
    >>> type(model.model.layers[chosen[0]].self_attn).__name__, len(distances)
    ('Bypassed', 3)
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..compact.bypass import PARTS, Bypassed, bypass
from ..errors import ConfigError
from .blocks import angular_distance_sum, decoder_blocks, hidden_states

IDENTITY_TOLERANCE = 1e-4
"""Largest relative difference between a block's input and its output with both halves removed for the
halves to count as residual branches."""


def block_halves(block: nn.Module) -> dict[str, str]:
    """``{"attention": name, "mlp": name}``: the block's children that are its two residual branches.

    Raises:
        ConfigError: when the block has not exactly one attention child and one other child with weight
            matrices (e.g. an MLP made of loose linear layers, as in OPT).
    """
    attention, mlp = [], []
    for name, child in block.named_children():
        if isinstance(child, Bypassed):
            (attention if child.part == "attention" else mlp).append(name)
        elif any(p.dim() >= 2 for p in child.parameters()):
            cached = any(isinstance(getattr(m, "layer_idx", None), int) for m in child.modules())
            (attention if cached else mlp).append(name)
    if len(attention) != 1 or len(mlp) != 1:
        raise ConfigError(f"{type(block).__name__}: cannot tell its attention and MLP apart (children with weight "
                          f"matrices: attention-like {attention or 'none'}, others {mlp or 'none'}); removing half "
                          f"a block needs one attention module (with a KV-cache layer_idx) and one MLP module")
    return {"attention": attention[0], "mlp": mlp[0]}


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ConfigError(f"unknown half {part!r}; choose from {', '.join(PARTS)}")


@contextlib.contextmanager
def _removed(block: nn.Module, names: dict[str, str], parts: Sequence[str], outputs: dict[str, int]) -> Iterator[None]:
    """The block with ``parts`` bypassed for the duration (no cache entry: calibration runs without one)."""
    saved = {part: getattr(block, names[part]) for part in parts}
    try:
        for part in parts:
            setattr(block, names[part], Bypassed(part, outputs.get(names[part], 0)))
        yield
    finally:
        for part, module in saved.items():
            setattr(block, names[part], module)


def _arity(output: Any) -> int:
    return len(output) if isinstance(output, tuple) else 0


@torch.inference_mode()
def half_distances(model: nn.Module, calibration: Tensor, *, batch_size: int = 1) -> dict[str, list[float]]:
    """Per block, the mean angular distance (in ``[0, 1]``) each half moves the residual stream, over the
    tokens of ``calibration`` (``[sequences, tokens]``): ``{"attention": [...], "mlp": [...]}``; 0 for a
    half already removed.

    Raises:
        ConfigError: when a block's halves cannot be found or are not residual branches (see the module).
    """
    _, blocks = decoder_blocks(model)
    names = [block_halves(block) for block in blocks]
    sums = {part: torch.zeros(len(blocks), dtype=torch.float64) for part in PARTS}
    outputs: dict[int, dict[str, int]] = {i: {} for i in range(len(blocks))}
    state = {"busy": False, "checked": set()}

    def record(index: int, name: str):
        def hook(module, args, output):
            outputs[index][name] = _arity(output)
        return hook

    def measure(index: int):
        def hook(block, args, kwargs, output):
            if state["busy"]:
                return
            state["busy"] = True
            try:
                before, after = hidden_states(args[0] if args else kwargs["hidden_states"]), hidden_states(output)
                with _removed(block, names[index], ["mlp"], outputs[index]):
                    middle = hidden_states(block(*args, **kwargs))
                if index not in state["checked"]:
                    with _removed(block, names[index], PARTS, outputs[index]):
                        _check_residual(block, index, before, hidden_states(block(*args, **kwargs)))
                    state["checked"].add(index)
            finally:
                state["busy"] = False
            sums["attention"][index] += angular_distance_sum(before, middle)
            sums["mlp"][index] += angular_distance_sum(middle, after)
        return hook

    handles = []
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_hook(measure(i), with_kwargs=True))
        handles += [getattr(block, name).register_forward_hook(record(i, name)) for name in names[i].values()]
    tokens = 0
    try:
        for start in range(0, len(calibration), batch_size):
            ids = calibration[start:start + batch_size]
            model(input_ids=ids, use_cache=False)
            tokens += ids.numel()
    finally:
        for handle in handles:
            handle.remove()
    return {part: (sums[part] / max(tokens, 1)).tolist() for part in PARTS}


def _check_residual(block: nn.Module, index: int, before: Tensor, without: Tensor) -> None:
    difference = ((without.double() - before.double()).norm() / before.double().norm().clamp_min(1e-30)).item()
    if not difference <= IDENTITY_TOLERANCE:
        raise ConfigError(f"{type(block).__name__} (block {index}): with its attention and MLP removed the block "
                          f"does not pass its input through (relative difference {difference:.3g}): its halves are "
                          f"not residual branches, so one cannot be removed alone; remove whole blocks instead")


def check_half_count(model: nn.Module, part: str, count: int) -> list[int]:
    """The blocks that still have their ``part``, when ``count`` of them can lose it.

    Raises:
        ConfigError: for an unknown part, blocks whose halves cannot be found, or a count out of range.
    """
    _check_part(part)
    _, blocks = decoder_blocks(model)
    present = [i for i, block in enumerate(blocks) if not isinstance(getattr(block, block_halves(block)[part]),
                                                                     Bypassed)]
    if not 1 <= count <= len(present):
        raise ConfigError(f"cannot remove the {part} of {count} blocks: {len(present)} of the model's {len(blocks)} "
                          f"blocks have one; give 1 to {len(present)}")
    return present


def choose_halves(model: nn.Module, calibration: Tensor, part: str, count: int) -> tuple[list[int], list[float]]:
    """``(indices, distances)``: the ``count`` blocks whose ``part`` (``attention`` / ``mlp``) moves the
    residual stream least on ``calibration``, among those that still have it, and every block's distance."""
    present = check_half_count(model, part, count)
    distances = half_distances(model, calibration)[part]
    return sorted(sorted(present, key=distances.__getitem__)[:count]), distances


def drop_halves(model: nn.Module, part: str, indices: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Remove the ``part`` (``attention`` / ``mlp``) of the blocks at ``indices`` in place.

    Returns:
        The removed branches by module path, as a compaction plan records them
        (:meth:`prunekit.compact.Plan.with_bypassed`).
    """
    _check_part(part)
    name, blocks = decoder_blocks(model)
    if not indices or not set(indices) <= set(range(len(blocks))):
        raise ConfigError(f"blocks whose {part} to remove must be some of 0..{len(blocks) - 1}; got {sorted(indices)}")
    paths = {i: f"{name}.{i}.{block_halves(blocks[i])[part]}" for i in sorted(set(indices))}
    removed = [p for p in paths.values() if isinstance(model.get_submodule(p), Bypassed)]
    if removed:
        raise ConfigError(f"already removed: {', '.join(removed)}")
    arity = _output_arity(model, list(paths.values()))
    branches = {}
    for path in paths.values():
        layers = [m.layer_idx for m in model.get_submodule(path).modules() if isinstance(getattr(m, "layer_idx", None), int)]
        branch = {"part": part, "outputs": arity[path], "layer_idx": layers[0] if part == "attention" and layers else None}
        bypass(model, path, **branch)
        branches[path] = branch
    return branches


def check_removed(model: nn.Module, branches: dict[str, dict[str, Any]], source: Any) -> None:
    """Each removed branch of a plan read from ``source`` is the attention or MLP (as it says) of a decoder block.

    Raises:
        ConfigError: naming ``source`` and the first branch that is not.
    """
    name, blocks = decoder_blocks(model)
    for path, branch in branches.items():
        parent, _, child = path.rpartition(".")
        index = parent.removeprefix(name + ".")
        if not (parent.startswith(name + ".") and index.isdigit() and int(index) < len(blocks)
                and block_halves(blocks[int(index)])[branch["part"]] == child):
            raise ConfigError(f"{source} removes {path!r} as the {branch['part']} of a decoder block, which it is not "
                              f"in {type(model).__name__}: the plan does not fit this model")


@torch.inference_mode()
def _output_arity(model: nn.Module, paths: list[str]) -> dict[str, int]:
    """What each module at ``paths`` returns in a forward pass of two tokens: 0 for a tensor, else the
    length of its tuple (what :class:`Bypassed` must return in its place)."""
    arity: dict[str, int] = {}
    handles = [model.get_submodule(p).register_forward_hook(
        lambda module, args, output, path=p: arity.__setitem__(path, _arity(output))) for p in paths]
    try:
        model(input_ids=torch.zeros(1, 2, dtype=torch.long, device=next(model.parameters()).device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return arity
