"""Pretrained Hugging Face models in: ``hf:DIR`` (a ``save_pretrained`` folder) or ``hf:FILE.gguf``.

Loading is offline (``local_files_only``, ``HF_HUB_OFFLINE``) and never runs code from the folder: a config
that asks for remote code (``auto_map``) is refused, and ``trust_remote_code`` is always off. The tokenizer
is loaded from the same folder and travels with the model; :attr:`Pretrained.digest` hashes the folder's
config and weights so a result records exactly what it was computed from.

Example:
    >>> is_hf_reference("hf:runs/smollm2"), is_hf_reference("lenet300")
    (True, False)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..storage import file_digest

PREFIX = "hf:"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf")
COMPACTED_DIR = "prunekit-compacted"
"""Where a folder keeps a width-pruned model no standard config describes: the compact weights and the plan
that made them from the architecture ``config.json`` describes (see :func:`prunekit.load_compacted`)."""


def is_hf_reference(text: Any) -> bool:
    """Whether ``text`` names a Hugging Face folder or GGUF file (``hf:PATH``)."""
    return isinstance(text, str) and text.startswith(PREFIX)


@dataclass
class Pretrained:
    """A loaded model, its tokenizer and where they came from.

    Attributes:
        model: the ``PreTrainedModel`` (eval mode).
        tokenizer: its tokenizer.
        source: the folder or GGUF file.
        digest: sha256 (first 16 hex digits) of the config and weight files.
        dtype: ``fp32``, ``bf16`` or ``fp16``.
        plan: for a folder in prunekit's compacted form (:data:`COMPACTED_DIR`), the compaction plan that made
            the model from the architecture of its ``config.json`` (saved again with it); else ``None``.
    """

    model: nn.Module
    tokenizer: Any
    source: Path
    digest: str
    dtype: str = "fp32"
    plan: Any = None

    def check_standard(self, what: str) -> None:
        """Refuse ``what`` (e.g. "removing blocks") on a model in prunekit's compacted form.

        Raises:
            ConfigError: when :attr:`plan` is set.
        """
        if self.plan is not None:
            kinds = (["layers of different widths"] if self.plan.tensors else []) + (
                ["attention or MLP halves of blocks removed"] if self.plan.bypassed else []) or ["a compaction plan"]
            raise ConfigError(f"{self.source} is in prunekit's compacted form ({' and '.join(kinds)}): {what} needs "
                              f"a standard config; do it before the step that wrote this form")


GGUF_EXPECTED = ("expected a GGUF file of an architecture and a quantization transformers' GGUF reader supports "
                 "(e.g. llama, qwen2, gemma3; F32, F16, BF16, Q8_0, Q4_K, Q6_K...)")


def load(reference: str | os.PathLike, dtype: str = "fp32") -> Pretrained:
    """Load ``hf:DIR`` / ``hf:FILE.gguf`` (the prefix is optional) with its tokenizer, offline.

    Raises:
        ConfigError: for a path that is not a model folder or GGUF file, a config asking for remote code,
            a missing tokenizer, an unknown dtype, or a file transformers cannot read (naming it).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    path = Path(str(reference).removeprefix(PREFIX)).expanduser()
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing from a hub, ever
    transformers = _transformers()
    if path.is_file() and path.suffix == ".gguf":
        folder, options = path.parent, {"gguf_file": path.name}
        files = [path]
    elif path.is_dir() and (path / COMPACTED_DIR).is_dir():
        return _load_compacted(transformers, path, dtype)
    elif path.is_dir():
        folder, options = path, {}
        files = [path / "config.json"] + sorted(f for p in WEIGHT_PATTERNS for f in path.glob(p))
        _check_folder(path)
    else:
        raise ConfigError(f"{path} is neither a Hugging Face model folder (config.json + weights, as "
                          f"save_pretrained writes) nor a .gguf file")
    common = dict(local_files_only=True, trust_remote_code=False, **options)
    tokenizer = _tokenizer(transformers, path, folder, common)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=DTYPES[dtype], **common)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"{path}: transformers cannot load this model ({type(exc).__name__}: {_first(exc)})"
                          + (f"; {GGUF_EXPECTED}" if options else ""))
    if options:
        _dequantized(model)
    return Pretrained(model.eval(), tokenizer, path, folder_digest(files), dtype)


def _load_compacted(transformers, path: Path, dtype: str) -> Pretrained:
    """A folder in prunekit's compacted form: the dense architecture of ``config.json``, built empty, with the
    plan in :data:`COMPACTED_DIR` replayed on it and its weights loaded."""
    from ..compact.saved import PLAN_FILE, WEIGHTS_FILE, load_compacted_with_plan

    _check_folder(path, weights=False)
    common = dict(local_files_only=True, trust_remote_code=False)
    tokenizer = _tokenizer(transformers, path, path, common)
    try:
        config = transformers.AutoConfig.from_pretrained(path, **common)
        with torch.random.fork_rng(devices=[]):  # its random initialisation is overwritten: leave the RNG be
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype], trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"{path}: transformers cannot build this model ({type(exc).__name__}: {_first(exc)})")
    model, plan = load_compacted_with_plan(model, path / COMPACTED_DIR)
    if plan.bypassed:
        from .halves import check_removed

        check_removed(model, plan.bypassed, path / COMPACTED_DIR)
    if (path / "generation_config.json").is_file():
        model.generation_config = transformers.GenerationConfig.from_pretrained(path, **common)
    files = [path / "config.json", path / COMPACTED_DIR / PLAN_FILE, path / COMPACTED_DIR / WEIGHTS_FILE]
    return Pretrained(model, tokenizer, path, folder_digest(files), dtype, plan)


def load_tokenizer(reference: str | os.PathLike) -> Any:
    """The tokenizer of ``hf:DIR`` / ``hf:FILE.gguf`` alone (offline, no remote code)."""
    path = Path(str(reference).removeprefix(PREFIX)).expanduser()
    transformers = _transformers()
    if path.is_file() and path.suffix == ".gguf":
        return _tokenizer(transformers, path, path.parent, dict(local_files_only=True, trust_remote_code=False,
                                                                 gguf_file=path.name))
    _check_folder(path)
    return _tokenizer(transformers, path, path, dict(local_files_only=True, trust_remote_code=False))


def _tokenizer(transformers, path: Path, folder: Path, options: dict[str, Any]) -> Any:
    try:
        return transformers.AutoTokenizer.from_pretrained(folder, **options)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        if "gguf_file" in options:
            raise ConfigError(f"{path}: transformers cannot read this GGUF file ({_first(exc)}); {GGUF_EXPECTED}")
        raise ConfigError(f"{path}: no tokenizer transformers can load there ({_first(exc)}); the folder must "
                          f"hold the tokenizer files save_pretrained writes (tokenizer.json, tokenizer_config.json)")


def _dequantized(model: nn.Module) -> None:
    """A GGUF model is dequantised as transformers reads it (its weights are plain float tensors) but keeps
    a marker of its quantizer, which refuses ``save_pretrained``: drop the marker, so the model is what its
    tensors are and saves as a plain folder."""
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    for attribute in ("is_quantized", "quantization_method"):
        if attribute in vars(model):
            delattr(model, attribute)


def folder_digest(files: list[Path]) -> str:
    """sha256 over the names and the sha256 of ``files`` (first 16 hex digits)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{file_digest(file, 64)}\n".encode())
    return digest.hexdigest()[:16]


def _check_folder(path: Path, weights: bool = True) -> None:
    config = path / "config.json"
    if not config.is_file():
        raise ConfigError(f"{path} has no config.json: it is not a Hugging Face model folder (save_pretrained "
                          f"writes config.json, the weights and the tokenizer)")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{config} holds {type(data).__name__}, not a model config object")
    if data.get("auto_map") or data.get("trust_remote_code"):
        raise ConfigError(f"{config} asks for code shipped with the model (auto_map: remote code); prunekit never "
                          f"runs code from a model folder. Use an architecture transformers has built in")
    if weights and not any(path.glob(p) for p in WEIGHT_PATTERNS):
        raise ConfigError(f"{path} holds no weights (*.safetensors): save the model with save_pretrained")


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ConfigError("Hugging Face models need transformers: pip install 'prunekit[lm]'") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # prunekit's own bars say what runs
    return transformers


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
