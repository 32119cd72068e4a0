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

import copy
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import WEIGHTS_FILE, checkpoint_dataset_name, load_checkpoint, save_checkpoint
from ..data import Dataset, load_dataset
from ..schedules import Job, PruneSpec, Recovery, checkpoint_rewind, get_schedule, planned_epochs, run_schedule
from ..storage import check_output, file_digest, fingerprint
from ..errors import ConfigError
from ..prune.nm import parse_pattern, pattern_sparsity
from ..prune import Pruner
from ..prune.select import check_layer_sparsities
from ..training import evaluate, resolve_device
from .config import ONE_STEP_SCHEDULES
from .points import describe_pruned, tracing_batch
from .baseline import TrainResult, train_model  # noqa: F401  (train_model re-exported for the example)


def prune_checkpoint(
    checkpoint: str | Path,
    spec: PruneSpec | None = None,
    *,
    method: str | None = None,
    sparsity: float | None = None,
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
    ratios: dict[str, float] | None = None,
    target_latency: float | None = None,
    latency_batch: int = 256,
    latency_align: int | None = None,
    latency_bn_batches: int = 8,
    pattern: str | None = None,
    reconstruct: bool = False,
) -> TrainResult:
    """Prune a saved model with a schedule, evaluate it on its dataset's test set and save it with its mask.

    The output folder is checked before anything is loaded or trained. A chained schedule
    (``iterative``, ``lottery``) checkpoints every round in ``.<out>.chain`` beside ``out`` and
    resumes there after an interruption; that folder is removed once ``out`` is written.

    Args:
        checkpoint: the checkpoint folder (a pruned one keeps its pruned entries pruned).
        spec: what to prune and how (a :class:`~prunekit.prune.PruneSpec`); the older keywords ``method``,
            ``scope``, ``layers``, ``include_output``, ``criterion``, ``calibration_batches``, ``pattern`` and
            ``reconstruct`` build one when it is not given.
        sparsity: as for :func:`~prunekit.prune.prune_model`.
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
        ratios: instead of ``sparsity``, a plan ``{layer pattern: percent}`` (``prunekit sensitivity``
            writes one); the sparsity it reaches over the pruned layers is recorded as the target.
        target_latency: instead of ``sparsity`` (unit pruning): the fraction of the dense latency at
            ``latency_batch`` the compacted model must measure on this machine; a per-group plan is
            found by :func:`~prunekit.study.latency_budget.plan_for_latency` (validation: the last
            :data:`LATENCY_VALIDATION` training samples) and its measured ratio is recorded as ``latency_ratio_measured``.
        latency_align: with ``target_latency``, keep only group widths that are multiples of it.
        latency_bn_batches: with ``target_latency``, the batches BatchNorm statistics are re-estimated on
            before each evaluation of the sensitivity curves (0: off).
        pattern: instead of ``sparsity`` (weight pruning, oneshot or finetune): an N:M pattern such as ``"2:4"``.
        reconstruct: re-solve each layer's remaining weights on ``calibration_batches`` training batches.

    Returns:
        A :class:`TrainResult`; ``metrics`` holds ``test_accuracy``, ``sparsity_actual`` (over the
        pruned layers), ``weight_sparsity_all`` (over all layers' weights), ``train_epochs``,
        ``train_seconds`` and ``rounds`` (sparsity and accuracy after every level).
    """
    recovery = recovery or Recovery()
    if spec is None:
        spec = PruneSpec(method or "weight", scope, tuple(layers) if layers else None, include_output, criterion,
                         calibration_batches, pattern=pattern, reconstruct=reconstruct)
    elif method is not None:
        raise ConfigError("give the pruning request as a PruneSpec or as keywords (method=...), not both")
    sparsity, plan = _check_targets(spec, sparsity, ratios, target_latency, latency_align, schedule)
    out = check_output(out, inputs=[checkpoint])
    ckpt = load_checkpoint(checkpoint, model_source=model_source)
    data = load_dataset(checkpoint_dataset_name(ckpt.config, dataset, checkpoint), data_dir, progress=progress)
    latency = None
    if target_latency is not None:
        latency = _latency_plan(ckpt, data, target_latency, latency_batch, latency_align, latency_bn_batches,
                                spec.criterion, spec.layers, progress)
        plan = latency.plan
    if plan is not None:
        sparsity = plan_sparsity(ckpt.model, spec.method, plan, spec.layers,
                                 tracing_batch(ckpt.model, spec.method, data), ckpt.mask, spec=spec)
        spec = replace(spec, plan=tuple(plan.items()), plan_sparsity=sparsity)
    test_data = data.split("test")
    if device is not None:
        ckpt.model.to(resolve_device(device))
    job = _schedule_job(ckpt, data, schedule, spec, recovery, progress)
    chain = out.parent / f".{out.name}.chain"
    run_id = fingerprint({"source": file_digest(ckpt.path / WEIGHTS_FILE, 64), "schedule": schedule,
                          "spec": asdict(spec), "recipe": recovery.to_dict(), "k": sparsity})
    level, rounds = _run_with_progress(schedule, job, sparsity, test_data, progress, chain, run_id)
    test = evaluate(ckpt.model, test_data)
    counts = describe_pruned(ckpt.model, level.mask, spec.method)
    metrics = {"test_accuracy": test.get("accuracy"), "test_loss": test["loss"],
               "sparsity_actual": counts["sparsity_actual"], "weight_sparsity_all": counts["weight_sparsity_all"],
               "dense_test_accuracy": ckpt.metrics.get("test_accuracy"),
               "train_epochs": level.train_epochs, "train_seconds": level.train_seconds, "rounds": rounds}
    if latency is not None:
        metrics.update(latency_ratio_measured=latency.measured_ratio, latency_target=target_latency,
                       latency_batch=latency_batch, latency_align=latency_align,
                       latency_plans_measured=[list(t) for t in latency.tried])
    record = {**pruning_record(spec, sparsity, plan), "source": str(checkpoint), "schedule": schedule,
              "recovery": recovery.to_dict()}
    path = save_pruned(out, ckpt, level.mask, metrics, record)
    shutil.rmtree(chain, ignore_errors=True)
    return TrainResult(ckpt.model, metrics, path)


def _check_targets(spec: PruneSpec, sparsity, ratios, target_latency, latency_align, schedule: str):
    """``(sparsity, plan)`` of a prune_checkpoint call, its one target checked before anything is loaded."""
    if sum(x is not None for x in (sparsity, ratios, target_latency, spec.pattern)) != 1:
        raise ConfigError("give exactly one of a sparsity, per-layer ratios, a latency target or an N:M pattern "
                          "(--sparsity, --ratios, --target-latency, --pattern)")
    if spec.pattern is not None:
        sparsity = pattern_sparsity(*parse_pattern(spec.pattern))
        if schedule not in ONE_STEP_SCHEDULES:
            raise ConfigError(f"an N:M pattern prunes in one step: use --schedule oneshot or finetune, not {schedule!r}")
    if latency_align is not None and target_latency is None:
        raise ConfigError("channel alignment (--align-channels) applies to a latency target (--target-latency)")
    if spec.criterion is not None and not isinstance(spec.criterion, str):
        raise ConfigError("a pruned checkpoint records its request in config.json: give the criterion by a registered "
                          "name (register yours in prunekit.prune.CRITERIA), not a function")
    if target_latency is not None and not spec.removes_units:
        raise ConfigError("a latency target removes whole units: use method 'unit'")
    get_schedule(schedule)
    return sparsity, check_layer_sparsities(ratios) if ratios is not None else None


def pruning_record(spec: PruneSpec, sparsity: float, plan: dict[str, float] | None) -> dict:
    """What ``config.json`` records of the pruning request (``pruning``)."""
    return {"method": spec.method, "sparsity": sparsity, "ratios": plan, "pattern": spec.pattern,
            "reconstruct": spec.reconstruct, "scope": spec.scope, "layers": list(spec.layers) if spec.layers else None,
            "criterion": spec.criterion, "include_output": spec.include_output,
            "include_inexact": spec.include_inexact, "calibration_batches": spec.calibration_batches}


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


def _latency_plan(ckpt, data: Dataset, target: float, batch_size: int, align, bn_batches: int, criterion, layers,
                  progress: bool):
    from .latency_budget import plan_for_latency
    from .sensitivity import training_tail

    validation = training_tail(data, LATENCY_VALIDATION)
    return plan_for_latency(ckpt.model, target, validation, validation[0][:2], batch_size=batch_size,
                            criterion=criterion, input_shape=data.input_shape, layers=layers, align=align,
                            bn_batches=bn_batches, progress=progress)


def plan_sparsity(model, method: str, plan: dict[str, float], layers, example_inputs, mask=None, *,
                  spec: PruneSpec | None = None) -> float:
    """The sparsity a per-layer plan reaches over the pruned layers (pruned on a copy of ``model``), as
    ``spec`` prunes (its include_output, criterion...; default: ``method`` on ``layers``)."""
    spec = replace(spec, plan=None, plan_sparsity=None) if spec is not None else \
        PruneSpec(method, layers=tuple(layers) if layers else None)
    work = copy.deepcopy(model)
    pruned = Pruner(work, spec, example_inputs).prune(plan, mask=mask)
    return round(describe_pruned(work, pruned, spec.method)["sparsity_actual"], 4)


def checkpoint_dataset(config: dict, dataset: str | None, checkpoint) -> str:
    """Deprecated name of :func:`prunekit.checkpoint.checkpoint_dataset_name`."""
    return checkpoint_dataset_name(config, dataset, checkpoint)


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
