"""Prune a saved checkpoint with a schedule, evaluate it and save it with its mask.

Example:
    >>> import tempfile
    >>> from prunekit.training import TrainConfig
    >>> folder = tempfile.mkdtemp()
    >>> _ = train_model("lenet300", config=TrainConfig(epochs=0.05), out=folder + "/dense", progress=False)
    >>> from prunekit.prune import PruneSpec
    >>> result = prune_checkpoint(folder + "/dense", PruneSpec("weight"), 90.0, out=folder + "/w90", progress=False)
    >>> round(result.metrics["sparsity_actual"], 1), result.metrics["test_accuracy"] > 0.5
    (90.0, True)
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Mapping

import torch
from tqdm.auto import tqdm

from ..checkpoint import WEIGHTS_FILE, checkpoint_dataset_name, load_checkpoint, save_checkpoint
from ..data import Dataset, load_dataset
from ..schedules import Job, PruneSpec, Recovery, checkpoint_rewind, get_schedule, planned_epochs, run_schedule
from ..storage import check_output, file_digest, fingerprint
from ..plan import LatencyPlan, LatencyTarget, plan_for_latency, plan_reach, solver_structure, training_tail
from ..prune.report import describe_pruned
from ..structure import ModelStructure
from ..training import evaluate, resolve_device
from .prune_request import Target, check_request, request_from_keywords
from .points import tracing_batch
from .baseline import TrainResult, train_model  # noqa: F401  (train_model re-exported for the example)


def prune_checkpoint(checkpoint: str | Path, spec: PruneSpec | None = None, target: Target = None, *,
                     out: str | Path, schedule: str = "oneshot", recovery: Recovery | None = None,
                     data_dir: str | None = None, dataset: str | None = None, model_source: str | None = None,
                     device: str | None = None, progress: bool = True, **keywords) -> TrainResult:
    """Prune a saved model with a schedule, evaluate it on its dataset's test set and save it with its mask.

    The request is checked, then the output folder, before anything is loaded or trained. A chained
    schedule (``iterative``, ``lottery``) checkpoints every round in ``.<out>.chain`` beside ``out`` and
    resumes there after an interruption; that folder is removed once ``out`` is written.

    Args:
        checkpoint: the checkpoint folder (a pruned one keeps its pruned entries pruned).
        spec: what to prune and how (a :class:`~prunekit.prune.PruneSpec`; default weight magnitude).
        target: how much: a sparsity (percent of the pruned layers), a per-layer plan
            ``{layer pattern: percent}`` (``prunekit sensitivity`` writes one; the sparsity it reaches is
            recorded as the target), a :class:`~prunekit.plan.LatencyTarget` (a per-group plan whose
            compacted model measures at most that fraction of the dense latency on this machine, found by
            :func:`~prunekit.plan.plan_for_latency` on the last :data:`LATENCY_VALIDATION` training
            samples), or None when ``spec.pattern`` (N:M) is the target.
        out: the folder of the pruned checkpoint (not the input folder).
        schedule: a name in :data:`~prunekit.schedules.SCHEDULES`.
        recovery: the recovery recipe (default :class:`~prunekit.schedules.Recovery`).
        data_dir: where the dataset files are; ``dataset``: the dataset (default: the checkpoint's; a user
            dataset reference must be given again); ``model_source``: for a checkpoint of a user model,
            the same ``FILE.py:FUNCTION`` it records.
        device: where to train and evaluate (``auto``, ``cpu``, ``cuda[:N]``, ``mps``).
        progress: show progress (round, sparsity, accuracy, time left).
        keywords: the older form, still accepted: the spec's fields (``method``, ``scope``, ``layers``,
            ``criterion``, ``pattern``...) and the target's (``sparsity``, ``ratios``, ``target_latency``,
            ``latency_batch``, ``latency_align``, ``latency_bn_batches``); see :mod:`.prune_request`.

    Returns:
        A :class:`TrainResult`; ``metrics`` holds ``test_accuracy``, ``sparsity_actual`` (over the
        pruned layers), ``weight_sparsity_all`` (over all layers' weights), ``train_epochs``,
        ``train_seconds`` and ``rounds`` (sparsity and accuracy after every level).
    """
    recovery = recovery or Recovery()
    spec, target = request_from_keywords(spec, target, keywords)
    target = check_request(spec, target, schedule)
    out = check_output(out, inputs=[checkpoint])
    ckpt = load_checkpoint(checkpoint, model_source=model_source)
    data = load_dataset(checkpoint_dataset_name(ckpt.config, dataset, checkpoint), data_dir, progress=progress)
    structure = solver_structure(ckpt.model, tracing_batch(ckpt.model, spec.method, data))
    spec, sparsity, latency = _resolve_target(ckpt, data, spec, target, structure, progress)
    if device is not None:
        ckpt.model.to(resolve_device(device))
    job = _schedule_job(ckpt, data, schedule, spec, recovery, structure, progress)
    chain = out.parent / f".{out.name}.chain"
    run_id = fingerprint({"source": file_digest(ckpt.path / WEIGHTS_FILE, 64), "schedule": schedule,
                          "spec": asdict(spec), "recipe": recovery.to_dict(), "k": sparsity})
    test_data = data.split("test")
    level, rounds = _run_with_progress(schedule, job, sparsity, test_data, progress, chain, run_id)
    metrics = _metrics(ckpt, level, rounds, test_data, spec, target, latency)
    record = {**pruning_record(spec, sparsity, dict(spec.plan) if spec.plan else None), "source": str(checkpoint),
              "schedule": schedule, "recovery": recovery.to_dict()}
    path = save_pruned(out, ckpt, level.mask, metrics, record)
    shutil.rmtree(chain, ignore_errors=True)
    return TrainResult(ckpt.model, metrics, path)


def _resolve_target(ckpt, data: Dataset, spec: PruneSpec, target: Target, structure: ModelStructure,
                    progress: bool) -> tuple[PruneSpec, float, LatencyPlan | None]:
    """``(spec, sparsity, latency plan)``: a latency target solved to a plan, a plan put into the spec with
    the sparsity it reaches; a plain sparsity passes."""
    latency = None
    if isinstance(target, LatencyTarget):
        validation = training_tail(data, LATENCY_VALIDATION)
        latency = plan_for_latency(ckpt.model, target.ratio, validation, validation[0][:2], spec=spec,
                                   batch_size=target.batch, input_shape=data.input_shape, align=target.align,
                                   bn_batches=target.bn_batches, progress=progress)
        target = latency.plan
    if isinstance(target, Mapping):
        sparsity = plan_reach(ckpt.model, spec, dict(target), structure, ckpt.mask)
        return replace(spec, plan=tuple(target.items()), plan_sparsity=sparsity), sparsity, latency
    return spec, target, latency


def _metrics(ckpt, level, rounds, test_data, spec: PruneSpec, target: Target, latency) -> dict:
    test = evaluate(ckpt.model, test_data)
    counts = describe_pruned(ckpt.model, level.mask, spec.method)
    metrics = {"test_accuracy": test.get("accuracy"), "test_loss": test["loss"],
               "sparsity_actual": counts["sparsity_actual"], "weight_sparsity_all": counts["weight_sparsity_all"],
               "dense_test_accuracy": ckpt.metrics.get("test_accuracy"),
               "train_epochs": level.train_epochs, "train_seconds": level.train_seconds, "rounds": rounds}
    if latency is not None:
        metrics.update(latency_ratio_measured=latency.measured_ratio, latency_target=target.ratio,
                       latency_batch=target.batch, latency_align=target.align,
                       latency_plans_measured=[list(t) for t in latency.tried])
    return metrics


def pruning_record(spec: PruneSpec, sparsity: float, plan: dict[str, float] | None) -> dict:
    """What ``config.json`` records of the pruning request (``pruning``)."""
    fields = {k: v for k, v in asdict(spec).items() if k not in ("plan", "plan_sparsity")}
    return {**fields, "layers": list(spec.layers) if spec.layers else None, "sparsity": sparsity, "ratios": plan}


def save_pruned(out: Path, ckpt, mask, metrics: dict, record: dict) -> Path:
    """Save ``ckpt``'s (pruned) model with ``mask`` as a checkpoint like its source: the same model record
    (registry name or user code, architecture, compaction plans) and the source's other config fields."""
    meta = {k: v for k, v in ckpt.config.items() if k not in ("format_version", "model", "versions", "pruning")}
    model_spec = ckpt.config["model"]
    return save_checkpoint(out, ckpt.model, model_name=model_spec.get("name") or model_spec.get("source"),
                           model_args=model_spec.get("args"), metrics=metrics, mask=mask,
                           architecture=bool(model_spec.get("architecture")), plans=model_spec.get("plans") or (),
                           pruning=record, **meta)


LATENCY_VALIDATION = 2000
"""Training samples (the last ones) a latency target's sensitivity curves are measured on."""


def plan_sparsity(model, method: str, plan: dict[str, float], layers, example_inputs, mask=None, *,
                  spec: PruneSpec | None = None) -> float:
    """Deprecated: :func:`prunekit.plan.plan_reach` (one spec, one structure)."""
    spec = spec if spec is not None else PruneSpec(method, layers=tuple(layers) if layers else None)
    return plan_reach(model, spec, plan, solver_structure(model, example_inputs), mask)


def checkpoint_dataset(config: dict, dataset: str | None, checkpoint) -> str:
    """Deprecated name of :func:`prunekit.checkpoint.checkpoint_dataset_name`."""
    return checkpoint_dataset_name(config, dataset, checkpoint)


def _schedule_job(ckpt, data: Dataset, schedule: str, spec: PruneSpec, recovery: Recovery, structure: ModelStructure,
                  progress: bool) -> Job:
    trains = get_schedule(schedule).trains or spec.needs_data
    train_data = data.split("train") if trains else (torch.empty(0), torch.empty(0))
    rewind = checkpoint_rewind(ckpt.config, epoch=recovery.rewind_epoch, train_data=train_data, progress=progress)
    return Job(ckpt.model, train_data, spec, recovery, rewind=rewind, mask=ckpt.mask, progress=progress,
               structure=structure)


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
