"""A sweep of a pretrained language model (``prunekit sweep --model hf:DIR``): every series (a schedule
with a criterion, optionally OWL) at every level (a sparsity or an N:M pattern), each point pruned from a
fresh copy of the dense model and measured by its held-out perplexity.

The folder gets ``results.json`` (the setup, the dense perplexity and one row per point, written after
every point, so a rerun resumes), ``results.csv``, ``perplexity_vs_sparsity.png`` and ``REPORT.md``.
Points write no model: ``prunekit prune --model hf:DIR`` writes the one chosen.

Example (a tiny random Llama, built and saved here):
    >>> import tempfile
    >>> from prunekit.hf.tiny import tiny_folder
    >>> from prunekit.prune import PruneSpec
    >>> folder = tiny_folder(tempfile.mkdtemp(), "llama")
    >>> series = [LMSeries(PruneSpec("weight")), LMSeries(PruneSpec("weight", criterion="wanda", calibration_batches=4))]
    >>> result = sweep_pretrained("hf:" + folder, series, [50.0, "2:4"], out=folder + "-sweep", seqlen=64,
    ...                           held_out=1024, progress=False)
    >>> [(p["series"], p["level"]) for p in result.points]
    [('oneshot@magnitude', '50%'), ('oneshot@wanda', '50%'), ('oneshot@magnitude', '2:4'), ('oneshot@wanda', '2:4')]
    >>> sweep_pretrained("hf:" + folder, series, [50.0], out=folder + "-sweep", seqlen=64, held_out=1024,
    ...                  progress=False).points_run  # a rerun resumes: nothing left to do
    0
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..data.text import DEFAULT, token_splits
from ..errors import ConfigError, OutputError
from ..prune import PruneSpec
from ..schedules import Recovery
from ..storage import atomic_write_text, check_output, claim_output, jsonable, mark_output, read_json, write_json

from .load import load
from .perplexity import perplexity
from .prune import _spec_record, check_request, prune_loaded

SWEEP_FILES = ("results.json", "results.csv", "perplexity_vs_sparsity.png", "REPORT.md")
"""What a language-model sweep writes into its folder."""

Level = Union[float, str]


@dataclass(frozen=True)
class LMSeries:
    """One line of the sweep: ``spec`` (method, criterion, calibration...) under ``schedule``, with OWL
    per-block sparsities when ``owl`` (sparsity levels only; N:M levels are skipped)."""

    spec: PruneSpec
    schedule: str = "oneshot"
    owl: bool = False

    @property
    def label(self) -> str:
        return f"{self.schedule}@{self.spec.criterion or 'magnitude'}" + ("+owl" if self.owl else "")


@dataclass
class LMSweep:
    """What :func:`sweep_pretrained` measured: the dense perplexity, every point of the folder (earlier runs'
    included), how many this run pruned and the seconds they took."""

    out: Path
    dense_perplexity: float
    points: list[dict[str, Any]] = field(default_factory=list)
    points_run: int = 0
    seconds: float = 0.0


def level_name(level: Level) -> str:
    """``50.0`` -> ``"50%"``, ``"2:4"`` -> ``"2:4"``."""
    return level if isinstance(level, str) else f"{level:g}%"


def sweep_pretrained(reference: str, series: Sequence[LMSeries], levels: Sequence[Level], *,
                     out: str | os.PathLike, dataset: str = DEFAULT, dtype: str = "fp32", seqlen: int = 512,
                     held_out: int = 16384, recovery: Optional[Recovery] = None,
                     progress: bool = True) -> LMSweep:
    """Prune the model ``reference`` names (``hf:DIR``, ``hf:FILE.gguf``) for every series at every level
    and record each point's held-out perplexity in the folder ``out`` (see the module's docstring).

    ``levels``: sparsities (percent of the pruned layers' weights) and N:M patterns (``"2:4"``). Calibration
    and held-out text are split as in :func:`~.prune.prune_pretrained`; points already in ``out`` with the
    same request are kept, not rerun.

    Raises:
        ConfigError: for a request a point cannot do (checked for all before loading), no series or levels.
        OutputError: for a folder holding files the sweep did not write, or a sweep of another setup.
    """
    if not series or not levels:
        raise ConfigError("a sweep needs at least one series and one level (a sparsity or an N:M pattern)")
    todo = [(s, level) for level in levels for s in series if not (s.owl and isinstance(level, str))]
    if not todo:
        raise ConfigError("OWL series take sparsity levels, not N:M patterns: give --sparsities")
    recipes = {(s.label, level_name(level)): check_request(*_request(s, level), owl=s.owl, schedule=s.schedule,
                                                           recovery=recovery) for s, level in todo}
    out = check_output(out, inputs=[reference.removeprefix("hf:")], allow_other_files=True)
    claim_output(out, "sweep", SWEEP_FILES)
    pretrained = load(reference, dtype)
    setup = {"model": reference, "source_digest": pretrained.digest, "dtype": dtype, "dataset": dataset,
             "seqlen": seqlen, "held_out_tokens": held_out}
    done = _earlier_points(out, setup)
    splits = token_splits(dataset, pretrained.tokenizer, held_out, seqlen)
    dense = _dense(done) or perplexity(pretrained.model, splits.held_out, seqlen, progress)
    mark_output(out, "sweep")
    result = LMSweep(out, dense)
    kept = {(p["series"], p["level"]): p for p in done.get("points", [])}
    started = time.perf_counter()
    for s, level in todo:
        key = (s.label, level_name(level))
        spec, target = _request(s, level)
        request = as_json({"schedule": s.schedule, "owl": s.owl, "spec": _spec_record(spec),
                           "recovery": recipes[key].to_dict() if recipes[key] else None})
        if key in kept and kept[key].get("request") == request:
            continue
        model = copy.deepcopy(pretrained.model)
        point = prune_loaded(model, splits, spec, target, seqlen=seqlen, owl=s.owl, schedule=s.schedule,
                             recipe=recipes[key], progress=progress)
        ppl = perplexity(model, splits.held_out, seqlen, progress)
        kept[key] = {"series": key[0], "level": key[1], "criterion": spec.criterion or "magnitude",
                     "sparsity_target": None if isinstance(level, str) else level, "pattern": spec.pattern,
                     "sparsity_actual": point.mask.sparsity(), "perplexity": ppl, "perplexity_ratio": ppl / dense,
                     "prune_seconds": point.seconds, "train_tokens": point.cost.get("train_tokens", 0),
                     "request": request}
        del model
        result.points_run += 1
        _write_results(out, setup, dense, _ordered(kept, todo))
        if progress:
            print(f"  {key[0]} at {key[1]}: perplexity {ppl:.3f} ({ppl / dense:.2f}x dense), "
                  f"{point.seconds:.1f} s", flush=True)
    result.seconds = time.perf_counter() - started
    result.points = _ordered(kept, todo)
    _write_results(out, setup, dense, result.points)
    write_tables(result, setup)
    return result


def as_json(data: Any) -> Any:
    """``data`` as it reads back from ``results.json`` (tuples as lists, NaN as null), to compare requests."""
    return json.loads(json.dumps(jsonable(data)))


def _request(s: LMSeries, level: Level) -> tuple[PruneSpec, Optional[float]]:
    if isinstance(level, str):
        return replace(s.spec, pattern=level), None
    return replace(s.spec, pattern=None), level


def _earlier_points(out: Path, setup: dict[str, Any]) -> dict[str, Any]:
    path = out / "results.json"
    if not path.is_file():
        return {}
    earlier = read_json(path, error=OutputError)
    if not isinstance(earlier, dict) or earlier.get("setup") != setup:
        raise OutputError(f"{path} holds a sweep of another model, text or window ({earlier.get('setup') if isinstance(earlier, dict) else earlier!r}); "
                          f"give another --out, or remove the folder to start again")
    return earlier


def _dense(done: dict[str, Any]) -> Optional[float]:
    value = done.get("dense_perplexity")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _ordered(kept: dict[tuple[str, str], dict[str, Any]], todo) -> list[dict[str, Any]]:
    asked = [(s.label, level_name(level)) for s, level in todo]
    return [kept[k] for k in asked if k in kept] + [p for k, p in kept.items() if k not in asked]


def _write_results(out: Path, setup: dict[str, Any], dense: float, points: list[dict[str, Any]]) -> None:
    write_json(out / "results.json", {"setup": setup, "dense_perplexity": dense, "points": points})


COLUMNS = ("series", "level", "criterion", "sparsity_actual", "perplexity", "perplexity_ratio", "prune_seconds",
           "train_tokens")


def write_tables(result: LMSweep, setup: dict[str, Any]) -> list[Path]:
    """``results.csv``, ``perplexity_vs_sparsity.png`` and ``REPORT.md`` from the sweep's points."""
    from .report import plot_perplexity  # matplotlib only when a sweep writes

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.points)
    atomic_write_text(result.out / "results.csv", buffer.getvalue())
    png = plot_perplexity(result.points, result.out / "perplexity_vs_sparsity.png", dense=result.dense_perplexity,
                          title=f"{setup['model']}: held-out perplexity ({setup['dataset']}, windows of {setup['seqlen']})")
    lines = [f"# Sweep of {setup['model']}", "",
             f"Held-out perplexity on the first {setup['held_out_tokens']:,} tokens of {setup['dataset']} "
             f"(windows of {setup['seqlen']}; calibration and training text come after them); weights "
             f"{setup['dtype']}, source digest {setup['source_digest']}. Dense: **{result.dense_perplexity:.3f}**.", "",
             "| series | level | sparsity | perplexity | x dense | prune s | train tokens |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {p['series']} | {p['level']} | {p['sparsity_actual']:.2f}% | {_number(p['perplexity'], '.3f')} | "
              f"{_number(p['perplexity_ratio'], '.2f')} | {p['prune_seconds']:.1f} | {p['train_tokens']:,} |"
              for p in result.points]
    lines += ["", f"![perplexity vs sparsity]({png.name})", ""]
    atomic_write_text(result.out / "REPORT.md", "\n".join(lines))
    return [result.out / "results.csv", png, result.out / "REPORT.md"]


def _number(value: Optional[float], spec: str) -> str:
    """A measured figure; ``None`` (JSON's stand-in for an infinite perplexity) as ``inf``."""
    return "inf" if value is None or not math.isfinite(value) else format(value, spec)
