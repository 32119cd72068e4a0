"""Options several commands share, and small parsers for option values."""

from __future__ import annotations

import argparse
import json

from ..train import LR_SCHEDULES, OPTIMIZERS, TrainConfig

DEFAULTS = TrainConfig()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults beside every option and keeps the description's line breaks."""


def add_command(commands, name: str, help: str, description: str, run) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help, description=description, formatter_class=HelpFormatter)
    parser.set_defaults(run=run)
    return parser


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model NAME`` and repeatable ``--model-arg KEY=VALUE``."""
    parser.add_argument("--model", default="mlp", help="model name (see `prunekit models`)")
    parser.add_argument("--model-arg", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="a model builder argument, VALUE in JSON, e.g. hidden=[300,100]; repeatable")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default="mnist", help="dataset name: mnist or fashion-mnist")
    group.add_argument(
        "--data-dir", default=None,
        help="folder holding the dataset's IDX files (.gz or raw); default: $PRUNEKIT_DATA, "
        "then the user cache folder, downloading there if missing",
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def add_train_options(parser: argparse.ArgumentParser, *, epochs: float = DEFAULTS.epochs) -> None:
    group = parser.add_argument_group("training recipe")
    group.add_argument("--epochs", type=float, default=epochs, help="passes over the training set")
    group.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="samples per step")
    group.add_argument("--lr", type=float, default=DEFAULTS.lr, help="peak learning rate")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer, help="optimizer")
    group.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay, help="L2 penalty")
    group.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=DEFAULTS.lr_schedule,
                       help="learning-rate schedule")
    group.add_argument("--seed", type=int, default=DEFAULTS.seed,
                       help="seeds the initial weights and the batch order")


def train_config(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The TrainConfig the parsed training options describe."""
    values = dict(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        weight_decay=args.weight_decay, lr_schedule=args.lr_schedule, seed=args.seed,
    )
    values.update(overrides)
    return TrainConfig(**values)


def key_value(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE`` where VALUE is JSON (``hidden=[300,100]``) or a plain string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
