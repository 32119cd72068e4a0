"""Zero-shot accuracy with the lm-evaluation-harness (the optional ``lm-eval`` extra), on a model in memory.

The model (pruned or not, its mask applied) goes to lm-eval's own ``HFLM`` wrapper, so scores are computed
exactly as the harness computes them for a model it loads itself. Everything is offline: built-in tasks
whose data sits in the local ``datasets`` cache, or local task files (``--task-dir``: YAML files whose
``dataset_path: json`` reads local JSON lines). Task files may not name Python code (``!function``) or
remote code: prunekit never runs code from a file it is handed.

Example (a task of one file, written here):
    >>> import json, pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "rows.jsonl").write_text(json.dumps({"q": "1+1 =", "choices": [" 2", " 3"], "a": 0}))
    >>> _ = (folder / "sums.yaml").write_text(
    ...     f"task: sums\\ndataset_path: json\\ndataset_kwargs:\\n  data_files:\\n    test: {folder}/rows.jsonl\\n"
    ...     "test_split: test\\noutput_type: multiple_choice\\ndoc_to_text: '{{q}}'\\ndoc_to_choice: '{{choices}}'\\n"
    ...     "doc_to_target: '{{a}}'\\nmetric_list:\\n  - metric: acc\\n")
    >>> check_task_dir(folder)  # no code named: accepted
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from torch import nn

from ..errors import ConfigError

CODE_IN_TASK = re.compile(r"!function|trust_remote_code\s*:\s*(true|yes|1)", re.IGNORECASE)


def zero_shot(model: nn.Module, tokenizer: Any, tasks: Sequence[str], *, task_dir: Optional[str] = None,
              limit: Optional[int] = None, batch_size: int = 8, seed: int = 0) -> dict[str, dict[str, float]]:
    """Accuracy (and the task's other metrics) of ``model`` on lm-eval ``tasks``, zero-shot.

    Args:
        tasks: task names: built-in ones, or ones defined by the YAML files of ``task_dir``.
        limit: at most this many documents per task (``None``: all).

    Returns:
        ``{task: {metric: value}}`` with lm-eval's metric names (``acc``, ``acc_norm``, ``acc_stderr``...).

    Raises:
        ConfigError: lm-eval not installed, an unknown task, a task file that names code, data not available
            offline.
    """
    lm_eval, hflm, _ = _harness()
    manager = check_tasks(tasks, task_dir)
    device = str(next(model.parameters()).device)
    wrapped = hflm(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    try:
        out = lm_eval.simple_evaluate(model=wrapped, tasks=list(tasks), task_manager=manager, limit=limit,
                                      random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                      fewshot_random_seed=seed, num_fewshot=0, log_samples=False,
                                      bootstrap_iters=0)
    except (ConnectionError, OSError, ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"lm-eval could not run {', '.join(tasks)} ({type(exc).__name__}: {str(exc)[:300]}); "
                          f"its data must be on this machine (prunekit runs offline)") from None
    return {task: {_metric(k): float(v) for k, v in values.items() if isinstance(v, (int, float)) and
                   not isinstance(v, bool)} for task, values in out["results"].items()}


def check_tasks(tasks: Sequence[str], task_dir: Optional[str | os.PathLike] = None) -> Any:
    """lm-eval's task manager once every name of ``tasks`` is known to it (built in or in ``task_dir``)."""
    if task_dir is not None:
        check_task_dir(task_dir)
    folder = str(Path(task_dir).resolve()) if task_dir else None
    manager = _manager(folder, False) if folder else None  # the folder's own tasks: no index of the built-ins
    if manager is None or any(t not in manager.all_tasks for t in tasks):
        manager = _manager(folder, True)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        where = f" or in the task files of {task_dir}" if task_dir else " (give --task-dir for local task files)"
        raise ConfigError(f"unknown lm-eval task {', '.join(map(repr, unknown))}: not built into lm-eval{where}")
    return manager


@functools.lru_cache(maxsize=4)
def _manager(task_dir: Optional[str], built_in: bool) -> Any:
    return _harness()[2](include_path=task_dir, include_defaults=built_in)


def check_task_dir(task_dir: str | os.PathLike) -> None:
    """Refuse a task folder whose YAML files name Python code or remote code (lm-eval would import it)."""
    folder = Path(task_dir)
    if not folder.is_dir():
        raise ConfigError(f"--task-dir {folder}: not a folder (expected lm-eval task YAML files)")
    files = sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml"))
    if not files:
        raise ConfigError(f"--task-dir {folder}: no task files (*.yaml) there")
    for file in files:
        match = CODE_IN_TASK.search(file.read_text(encoding="utf-8", errors="replace"))
        if match:
            raise ConfigError(f"{file}: names code ({match.group(0)!r}); prunekit never runs code from a file it is "
                              f"handed. Write the task with templates only (doc_to_text, doc_to_choice, doc_to_target)")


def _metric(key: str) -> str:
    return key.split(",")[0] if key.endswith(",none") else key


def _harness():
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise ConfigError(f"zero-shot tasks need the lm-evaluation-harness and what its Hugging Face wrapper "
                          f"imports ({exc}): pip install 'prunekit[eval]'") from None
    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return lm_eval, HFLM, TaskManager
