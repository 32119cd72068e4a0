"""Fine-tune a pretrained Hugging Face language model on a text (``prunekit train --model hf:DIR``): the
next-token loss on the windows after the held-out part, perplexity before and after on the held-out part,
the result written as a Hugging Face folder.

Example (a tiny random Llama, built and saved here):
    >>> import tempfile
    >>> from prunekit.hf.tiny import tiny_folder
    >>> folder = tiny_folder(tempfile.mkdtemp(), "llama")
    >>> result = train_pretrained("hf:" + folder, TrainConfig(epochs=0.2), out=folder + "-ft", seqlen=64,
    ...                           held_out=1024, progress=False)
    >>> result.perplexity < result.perplexity_before
    True
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from ..data.text import DEFAULT, token_splits
from ..losses import causal_lm_loss
from ..storage import check_output, read_json
from ..errors import CheckpointError, ConfigError
from ..training import DistillConfig, TrainConfig, lm_distillation_loss, train
from ..training.distributed import barrier, init_from_launcher, is_main, world
from ..training.resume import has_state

from .load import Pretrained, load
from .perplexity import perplexity
from .recover import lm_config, training_windows
from .save import save_pretrained


@dataclass
class TrainedLM:
    """What :func:`train_pretrained` measured and wrote."""

    path: Path
    perplexity_before: float
    perplexity: float
    train_tokens: int
    train_seconds: float
    resumed_at: int = 0


def train_pretrained(reference: str, config: Optional[TrainConfig] = None, *, out: str | os.PathLike,
                     dataset: str = DEFAULT, dtype: str = "fp32", seqlen: int = 512, held_out: int = 16384,
                     device: Any = None, teacher: Optional[str] = None,
                     distill: DistillConfig = DistillConfig(temperature=1.0, alpha=1.0),
                     state_every: int = 0, gradient_checkpointing: bool = False, progress: bool = True) -> TrainedLM:
    """Fine-tune the model ``reference`` names (``hf:DIR``, ``hf:FILE.gguf``) on ``dataset`` and write it
    as the Hugging Face folder ``out``.

    ``config``: the recipe; settings left at :class:`~prunekit.training.TrainConfig`'s (classifier)
    defaults take :data:`~.recover.LM_RECIPE`'s. Training reads the windows of ``seqlen`` tokens after the
    first ``held_out`` tokens; perplexity is measured on those first tokens, before and after.
    ``teacher`` (``hf:DIR``, e.g. the dense model a pruned one came from): distil from it instead, with
    :func:`~prunekit.training.lm_distillation_loss` and ``distill`` (default: the logit KL alone).
    Launched by ``torchrun`` as several processes, it trains data-parallel (DDP; ``gloo`` on CPUs): each
    process takes its share of every batch, and the first one writes the folder.
    ``state_every``: write the training state to ``OUT.state/`` every that many steps (0: never); when that
    folder holds one, the same call continues from it (an interrupted run loses at most ``state_every``
    steps) and the folder is removed once ``out`` is written. ``gradient_checkpointing``: recompute each
    block's activations in the backward pass instead of keeping them (transformers' own; less memory, about a
    third more time). The progress bar shows tokens/s.

    Raises:
        ConfigError: a model or text that cannot be read, a text too short, an output that exists, a teacher
            whose tokenizer or vocabulary differs from the model's.
    """
    config = lm_config(config or TrainConfig())
    init_from_launcher(device)
    out = check_output(out, inputs=[reference.removeprefix("hf:")])
    pretrained = load(reference, dtype)
    model = pretrained.model
    loss_fn = causal_lm_loss() if teacher is None else lm_distillation_loss(_teacher(teacher, pretrained), distill)
    splits = token_splits(dataset, pretrained.tokenizer, held_out, seqlen)
    windows = training_windows(splits.rest, seqlen)
    before = perplexity(model, splits.held_out, seqlen, progress)
    use_cache, model.config.use_cache = getattr(model.config, "use_cache", None), False
    state_dir = out.with_name(out.name + ".state")
    resumed_at = int(read_json(state_dir / "state.json", error=CheckpointError)["step"]) if has_state(state_dir) else 0
    started = time.perf_counter()
    try:
        if gradient_checkpointing:
            _checkpointing(model, True)
        train(model, (windows, windows), config, loss_fn=loss_fn, device=device, progress=progress,
              desc="fine-tune" if teacher is None else "distil", state_dir=state_dir, state_every=state_every,
              samples_per_step=config.batch_size * seqlen, sample_unit="tok")
    finally:
        model.config.use_cache = use_cache
        if gradient_checkpointing:
            _checkpointing(model, False)
    seconds = time.perf_counter() - started
    model.eval()
    after = perplexity(model, splits.held_out, seqlen, progress)
    tokens = int(round(config.epochs * windows.numel()))
    record = {"training": {**config.to_dict(), "dataset": dataset, "seqlen": seqlen, "teacher": teacher,
                           "distill": distill.to_dict() if teacher else None},
              "metrics": {"perplexity_before": before, "perplexity": after, "perplexity_window": seqlen,
                          "held_out_tokens": len(splits.held_out), "train_tokens": tokens,
                          "train_seconds": seconds}}
    if resumed_at:
        record["metrics"]["resumed_at_step"] = resumed_at
    record["training"]["processes"] = world()[1]
    if is_main():
        save_pretrained(pretrained, out, None, record)
        shutil.rmtree(state_dir, ignore_errors=True)
    barrier()
    path = out
    return TrainedLM(path, before, after, tokens, seconds, resumed_at)


def _checkpointing(model: torch.nn.Module, on: bool) -> None:
    """Turn transformers' activation (gradient) checkpointing on or off, by its current name or its older one."""
    verb = "enable" if on else "disable"
    switch = getattr(model, f"activation_checkpointing_{verb}", None) or getattr(model, f"gradient_checkpointing_{verb}")
    switch()


def _teacher(reference: str, student: Pretrained) -> torch.nn.Module:
    """The teacher model ``reference`` names, checked to speak the student's vocabulary."""
    teacher = load(reference, student.dtype)
    sizes = [m.get_input_embeddings().num_embeddings for m in (teacher.model, student.model)]
    if sizes[0] != sizes[1] or teacher.tokenizer.get_vocab() != student.tokenizer.get_vocab():
        raise ConfigError(f"the teacher {reference} does not share the model's tokenizer (vocabularies of "
                          f"{len(teacher.tokenizer.get_vocab())} and {len(student.tokenizer.get_vocab())} tokens, "
                          f"embeddings of {sizes[0]} and {sizes[1]}): distillation compares logits token by token")
    teacher.model.config.use_cache = False
    return teacher.model
