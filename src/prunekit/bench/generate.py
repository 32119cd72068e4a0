"""Generation speed of language models: prefill and decode tokens per second at batch 1 with a KV cache.

Each model runs the same greedy loop: one forward pass over a prompt of random tokens (prefill), then one
token at a time through the cache (decode). Models are timed in turn, repeat after repeat, so a drifting
load touches them alike; the medians are reported. :func:`sparse_runner` makes the model whose pruned
linear layers run prunekit's sparse kernels (chosen per layer and token count by measurement), and
:func:`max_logit_difference` checks that it computes what the masked model computes. :func:`linear_free`
times the rest of the model (its linear layers cost nothing), and :func:`decode_limits` turns that floor,
the bytes the linear layers read per token (:func:`decode_bytes`) and the machine's read bandwidth into the
largest decode speed-up those bytes allow.

Example:
    >>> import tempfile
    >>> from prunekit.hf import load
    >>> from prunekit.hf.tiny import tiny_folder
    >>> model = load("hf:" + tiny_folder(tempfile.mkdtemp(), "llama")).model
    >>> rows = generation_speed({"dense": model}, prompt_tokens=16, new_tokens=4, repeats=1)
    >>> rows[0]["version"], rows[0]["decode_tokens_per_s"] > 0
    ('dense', True)
"""

from __future__ import annotations

import copy
import inspect
import statistics
import time
from typing import Any, Mapping

import torch
from torch import nn

from ..deploy.sparse_linear import SparseLinear
from ..deploy.sparsify import is_conv1d, is_linear_layer, kernel_choices, sparsify
from .roofline import weight_bytes


def _prompt(model: nn.Module, tokens: int, seed: int = 0) -> torch.Tensor:
    vocab = int(model.get_input_embeddings().num_embeddings)
    return torch.randint(0, vocab, (1, tokens), generator=torch.Generator().manual_seed(seed))


def _cache_argument(model: nn.Module) -> str:
    """The name the model's forward takes its KV cache by (``cache`` in recent transformers)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.inference_mode()
def _greedy(model: nn.Module, prompt: torch.Tensor, new_tokens: int) -> tuple[float, float, list[int]]:
    """``(prefill seconds, decode seconds, generated ids)`` of one greedy generation."""
    from transformers import DynamicCache

    cache = {_cache_argument(model): DynamicCache(config=model.config)}  # filled in place, call after call
    started = time.perf_counter()
    out = model(input_ids=prompt, use_cache=True, **cache)
    token = out.logits[:, -1:].argmax(-1)
    prefill = time.perf_counter() - started
    ids = [int(token)]
    started = time.perf_counter()
    for _ in range(new_tokens - 1):
        out = model(input_ids=token, use_cache=True, **cache)
        token = out.logits[:, -1:].argmax(-1)
        ids.append(int(token))
    return prefill, time.perf_counter() - started, ids


def generation_speed(models: Mapping[str, nn.Module], *, prompt_tokens: int = 128, new_tokens: int = 64,
                     repeats: int = 3) -> list[dict[str, Any]]:
    """Per model: ``{version, prefill_tokens_per_s, decode_tokens_per_s, prefill_s, decode_s_per_token,
    speedup_decode, speedup_prefill, tokens}`` (speed-ups against the first model, medians of ``repeats``
    interleaved runs after one warm-up each)."""
    first = next(iter(models.values()))
    prompt = _prompt(first, prompt_tokens)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    generated: dict[str, list[int]] = {}
    for name, model in models.items():
        model.eval()
        generated[name] = _greedy(model, prompt, new_tokens)[2]  # warm-up (and kernel choices)
    for _ in range(max(1, repeats)):
        for name, model in models.items():
            prefill, decode, _ = _greedy(model, prompt, new_tokens)
            samples[name].append((prefill, decode))
    rows = []
    for name in models:
        prefill = statistics.median(s[0] for s in samples[name])
        decode = statistics.median(s[1] for s in samples[name]) / max(1, new_tokens - 1)
        rows.append({"version": name, "prefill_s": prefill, "prefill_tokens_per_s": prompt_tokens / prefill,
                     "decode_s_per_token": decode, "decode_tokens_per_s": 1.0 / decode, "tokens": generated[name]})
    for row in rows:
        row["speedup_prefill"] = rows[0]["prefill_s"] / row["prefill_s"]
        row["speedup_decode"] = rows[0]["decode_s_per_token"] / row["decode_s_per_token"]
    return rows


def sparse_runner(model: nn.Module, *, prompt_tokens: int = 128, repeats: int = 10,
                  values: str = "fp32") -> nn.Module:
    """A copy of ``model`` whose pruned linear layers run the sparse kernels measured fastest for one token
    (decode) and for ``prompt_tokens`` tokens (prefill); the others stay dense."""
    runner = sparsify(model, batch_sizes=(1, prompt_tokens), example_inputs={"input_ids": _prompt(model, 1)},
                      repeats=repeats, values=values)
    # calibrate the prefill size on a real prompt too (sparsify's examples are resized copies of one token)
    with torch.inference_mode():
        runner(input_ids=_prompt(model, prompt_tokens))
    return runner


@torch.inference_mode()
def max_logit_difference(reference: nn.Module, other: nn.Module, tokens: int = 64, decoded: int = 16) -> float:
    """The largest difference between the two models' logits, relative to the largest logit: over a prompt of
    ``tokens`` random tokens and then ``decoded`` tokens fed one at a time through each model's KV cache (the
    reference's greedy choices, for both), so the kernels decode runs (one token per call) are checked as
    well as the prompt's."""
    from transformers import DynamicCache

    ids = _prompt(reference, tokens, seed=1)
    caches = [{_cache_argument(m): DynamicCache(config=m.config)} for m in (reference, other)]
    worst, scale = 0.0, 0.0
    for _ in range(decoded + 1):
        want, got = (m(input_ids=ids, use_cache=True, **c).logits.double() for m, c in zip((reference, other), caches))
        worst, scale = max(worst, float((got - want).abs().max())), max(scale, float(want.abs().max()))
        ids = want[:, -1:].argmax(-1)
    return worst / scale


class _Free(nn.Module):
    """A linear layer that costs nothing: zeros of its output's shape."""

    def __init__(self, out_features: int):
        super().__init__()
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(*x.shape[:-1], self.out_features)


def linear_free(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose linear layers output zeros at no cost: timing it gives what the rest of the
    model (attention, norms, embeddings, the framework) costs, the floor no linear-layer kernel can go below."""
    free = copy.deepcopy(model).eval()
    for name, module in list(free.named_modules()):
        if is_linear_layer(module):
            parent, _, child = name.rpartition(".")
            setattr(free.get_submodule(parent) if parent else free, child, _Free(_out_in(module)[0]))
    return free


def decode_bytes(model: nn.Module) -> int:
    """Bytes the linear layers of ``model`` read for one decoded token: each weight in the form its one-token
    kernel reads (a packed sparse form, else dense), the output head included.

    Example:
        >>> decode_bytes(nn.Sequential(nn.Linear(4, 2, bias=False), nn.ReLU(), nn.Linear(2, 1)))  # 11 fp32 values
        44
    """
    return sum(weight_bytes(m, (m.choice.get(1) or "dense") if isinstance(m, SparseLinear) else "dense")
               for m in model.modules() if is_linear_layer(m))


def _out_in(layer: nn.Module) -> tuple[int, int]:
    """``(out, in)`` features of a linear layer (transformers' ``Conv1D`` stores its weight ``[in, out]``)."""
    rows, cols = layer.weight.shape
    return (cols, rows) if is_conv1d(layer) else (rows, cols)


def linear_layout(model: nn.Module) -> tuple:
    """The model's class and the names and weight shapes of its linear layers: models with the same layout
    differ only in their weights' values (and the kernels running them), so one linear-free floor holds for
    all of them."""
    layers = tuple((name, _out_in(m)) for name, m in model.named_modules() if is_linear_layer(m))
    return type(model).__name__, layers


def decode_limits(rows: list[dict[str, Any]], floor_s_per_token: float, bytes_by_version: Mapping[str, int],
                  bandwidth_gbps: float) -> dict[str, float]:
    """``{version: decode speed-up}`` a version could reach at most against the first row's measured decode:
    its linear layers reading their bytes (``bytes_by_version``) at ``bandwidth_gbps``, everything else
    costing the measured linear-free floor. Only the versions in ``bytes_by_version`` get a limit.

    Example:
        >>> rows = [{"version": "dense", "decode_s_per_token": 0.06}, {"version": "w70", "decode_s_per_token": 0.04}]
        >>> round(decode_limits(rows, 0.02, {"w70": 150_000_000}, 15.0)["w70"], 2)
        2.0
    """
    reference = rows[0]["decode_s_per_token"]
    return {version: reference / (floor_s_per_token + nbytes / (bandwidth_gbps * 1e9))
            for version, nbytes in bytes_by_version.items()}


def kernel_summary(model: nn.Module) -> dict[str, dict[int, int]]:
    """``{kernel: {token count: layers}}``: how many layers run each kernel (for the report)."""
    summary: dict[str, dict[int, int]] = {}
    for choices in kernel_choices(model).values():
        for tokens, kernel in choices.items():
            summary.setdefault(kernel, {}).setdefault(tokens, 0)
            summary[kernel][tokens] += 1
    return summary
