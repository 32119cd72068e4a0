"""``prunekit models``, ``prunekit datasets``, ``prunekit criteria``, ``prunekit schedules``: what is registered."""

from __future__ import annotations

import argparse

from ..data import DATASETS
from ..models import list_models
from ..prune import CRITERIA, METHODS
from ..schedules import SCHEDULES
from .common import add_command


def register(commands) -> None:
    add_command(commands, "models", help="list the available models",
                description="List the registered models with their default arguments.", run=run_models)
    add_command(commands, "datasets", help="list the available datasets",
                description="List the registered datasets.", run=run_datasets)
    add_command(commands, "criteria", help="list the pruning methods and criteria",
                description="List the registered pruning methods, criteria and schedules.", run=run_criteria)


def run_models(args: argparse.Namespace) -> int:
    for info in list_models():
        print(f"{info.name:10s} {info.description}")
        print(f"{'':10s} arguments: {info.default_args()}")
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    for name in sorted(DATASETS.names()):
        print(f"{name:16s} {DATASETS.describe(name)}")
    return 0


def run_criteria(args: argparse.Namespace) -> int:
    for title, registry in (("methods", METHODS), ("criteria", CRITERIA), ("schedules", SCHEDULES)):
        print(f"{title}:")
        for name in registry.names():
            print(f"  {name:12s} {registry.describe(name)}")
    return 0
