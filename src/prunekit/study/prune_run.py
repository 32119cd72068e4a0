"""Prune a saved checkpoint with a schedule, evaluate it and save it with its mask.

Example:
    >>> import tempfile
    >>> from prunekit.training import TrainConfig
    >>> folder = tempfile.mkdtemp()
    >>> _ = train_model("lenet300", config=TrainConfig(epochs=0.05), out=folder + "/dense", progress=False)
    >>> result = prune_checkpoint(folder + "/dense", method="weight", sparsity=90, out=folder + "/w90",
    ...                           progress=False)
    >>> round(result.metrics["sparsity_actual"], 1), result.metrics["test_accuracy"] > 0.5
    (90.0, True)
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from ..data import Dataset, load_dataset
from ..schedules import Job, PruneSpec, Recovery, checkpoint_rewind, get_schedule, planned_epochs, run_schedule
from ..storage import check_output, file_digest, fingerprint
from ..errors import ConfigError
from ..references import is_reference
from ..training import evaluate, resolve_device
from .points import describe_pruned, tracing_batch
from .baseline import TrainResult, train_model  # noqa: F401  (train_model re-exported for the example)


def prune_checkpoint(
    checkpoint: str | Path,
    *,
    method: str,
    sparsity: float,
    scope: str = "layer",
    layers: list[str] | None = None,
    include_output: bool = False,
    out: str | Path,
    data_dir: str | None = None,
    progress: bool = True,
    schedule: str = "oneshot",
    recovery: Recovery | None = None,
    model_source: str | None = None,
    dataset: str | None = None,
    device: str | None = None,
    criterion: str | None = None,
    calibration_batches: int = 32,
) -> TrainResult:
    """Prune a saved model with a schedule, evaluate it on its dataset's test set and save it with its mask.

    The output folder is checked before anything is loaded or trained. A chained schedule
    (``iterative``, ``lottery``) checkpoints every round in ``.<out>.chain`` beside ``out`` and
    resumes there after an interruption; that folder is removed once ``out`` is written.

    Args:
        checkpoint: the checkpoint folder (a pruned one keeps its pruned entries pruned).
        method, sparsity, scope, layers, include_output: as for :func:`~prunekit.prune.prune_model`.
        out: the folder of the pruned checkpoint (not the input folder).
        data_dir: where the dataset files are.
        progress: show progress (round, sparsity, accuracy, time left).
        schedule: a name in :data:`~prunekit.schedules.SCHEDULES`.
        recovery: the recovery recipe (default :class:`~prunekit.schedules.Recovery`).
        model_source: for a checkpoint of a user model, the same ``FILE.py:FUNCTION`` it records.
        dataset: the dataset (default: the checkpoint's; a user dataset reference must be given again).
        device: where to train and evaluate (``auto``, ``cpu``, ``cuda[:N]``, ``mps``).
        criterion: a name in :data:`~prunekit.prune.CRITERIA` (default: the method's); ``taylor``
            reads ``calibration_batches`` batches of the training set at every pruning step.

    Returns:
        A :class:`TrainResult`; ``metrics`` holds ``test_accuracy``, ``sparsity_actual`` (over the
        pruned layers), ``weight_sparsity_all`` (over all layers' weights), ``train_epochs``,
        ``train_seconds`` and ``rounds`` (sparsity and accuracy after every level).
    """
    recovery = recovery or Recovery()
    spec = PruneSpec(method, scope, tuple(layers) if layers else None, include_output, criterion, calibration_batches)
    get_schedule(schedule)  # fail before loading anything
    out = check_output(out, inputs=[checkpoint])
    ckpt = load_checkpoint(checkpoint, model_source=model_source)
    data = load_dataset(checkpoint_dataset(ckpt.config, dataset, checkpoint), data_dir, progress=progress)
    test_data = data.split("test")
    if device is not None:
        ckpt.model.to(resolve_device(device))
    job = _schedule_job(ckpt, data, schedule, spec, recovery, progress)
    chain = out.parent / f".{out.name}.chain"
    run_id = fingerprint({"source": file_digest(ckpt.path / WEIGHTS_FILE, 64), "schedule": schedule,
                          "spec": asdict(spec), "recipe": recovery.to_dict(), "k": sparsity})
    level, rounds = _run_with_progress(schedule, job, sparsity, test_data, progress, chain, run_id)
    test = evaluate(ckpt.model, test_data)
    pruning = {"method": method, "sparsity": sparsity, "scope": scope, "layers": layers, "criterion": criterion,
               "include_output": include_output, "source": str(checkpoint), "schedule": schedule,
               "recovery": recovery.to_dict()}
    counts = describe_pruned(ckpt.model, level.mask, method)
    metrics = {"test_accuracy": test.get("accuracy"), "test_loss": test["loss"],
               "sparsity_actual": counts["sparsity_actual"], "weight_sparsity_all": counts["weight_sparsity_all"],
               "dense_test_accuracy": ckpt.metrics.get("test_accuracy"),
               "train_epochs": level.train_epochs, "train_seconds": level.train_seconds, "rounds": rounds}
    meta = {k: v for k, v in ckpt.config.items() if k not in ("format_version", "model", "versions", "pruning")}
    model_spec = ckpt.config["model"]
    path = save_checkpoint(out, ckpt.model, model_name=model_spec.get("name") or model_spec.get("source"),
                           model_args=model_spec.get("args"), metrics=metrics, mask=level.mask,
                           pruning=pruning, **meta)
    shutil.rmtree(chain, ignore_errors=True)
    return TrainResult(ckpt.model, metrics, path)


def checkpoint_dataset(config: dict, dataset: str | None, checkpoint) -> str:
    """The dataset to use with a checkpoint: the one it records, or ``dataset`` (which must match a recorded
    user dataset: a reference inside a checkpoint is never imported on its own)."""
    recorded = config.get("dataset") if isinstance(config.get("dataset"), str) else "mnist"
    if is_reference(recorded) and dataset is None:
        raise ConfigError(f"{checkpoint} was trained on the user dataset {recorded}; pass it again "
                          f"(--dataset {recorded}) to use it")
    if dataset is not None and recorded != dataset and is_reference(recorded):
        raise ConfigError(f"{checkpoint} was trained on {recorded}, not {dataset}")
    return dataset or recorded


def _schedule_job(ckpt, data: Dataset, schedule: str, spec: PruneSpec, recovery: Recovery, progress: bool) -> Job:
    trains = get_schedule(schedule).trains or spec.needs_data
    train_data = data.split("train") if trains else (torch.empty(0), torch.empty(0))
    rewind = checkpoint_rewind(ckpt.config, epoch=recovery.rewind_epoch, train_data=train_data, progress=progress)
    return Job(ckpt.model, train_data, spec, recovery, rewind=rewind, mask=ckpt.mask, progress=progress,
               example_inputs=tracing_batch(ckpt.model, spec.method, data))


def _run_with_progress(schedule: str, job: Job, sparsity: float, test_data, progress: bool, chain: Path, run_id: str):
    """Run the schedule to ``sparsity``; a bar counts epochs and shows round, sparsity, accuracy.
    A chained schedule checkpoints every round in ``chain`` and resumes from there (the rounds
    listed then start at the resumed one)."""
    total = planned_epochs(schedule, job.recipe, [sparsity])
    bar = tqdm(total=total, desc=schedule, unit="epoch", disable=None if progress or total == 0 else True)
    level, rounds = None, []
    try:
        for level in run_schedule(schedule, job, [sparsity], chain_dir=chain, fingerprint=run_id):
            accuracy = evaluate(job.model, test_data).get("accuracy", float("nan"))
            rounds.append({"round": level.index, "sparsity": level.sparsity, "test_accuracy": accuracy,
                           "train_epochs": level.train_epochs})
            bar.update(level.train_epochs - bar.n)
            bar.set_postfix(round=level.index, sparsity=f"{level.sparsity:.2f}", acc=f"{accuracy:.4f}")
    finally:
        bar.close()
    return level, rounds
