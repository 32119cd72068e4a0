"""Studies: train a baseline, prune checkpoints, sweep (schedule x method x sparsity), store results,
and report them (tables, findings computed from the data, PNG plots).

Example:
    >>> SweepConfig().sparsities
    (0.0, 25.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 97.5, 99.0)
"""

from .baseline import TrainResult, train_model
from .config import REFERENCE_SPARSITIES, SweepConfig, parse_scope, sweep_config_dict
from .executors import EXECUTORS, Executor, make_executor
from .prune_run import prune_checkpoint
from .report import write_report
from .results import ResultStore, point_key, read_results, write_tables
from .sweep import SweepResult, run_sweep

__all__ = ["EXECUTORS", "Executor", "REFERENCE_SPARSITIES", "ResultStore", "SweepConfig", "SweepResult", "TrainResult", "parse_scope",
           "point_key", "prune_checkpoint", "read_results", "run_sweep", "sweep_config_dict", "train_model",
           "make_executor", "write_report", "write_tables"]
