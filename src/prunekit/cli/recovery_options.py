"""Options that choose a pruning schedule's recovery recipe and distillation (``prune`` and ``sweep``)."""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

from ..distill import DistillConfig
from ..errors import ConfigError
from ..schedules import SCHEDULES, Recovery
from ..train import TrainConfig

DEFAULT = Recovery()
TRAINING = ("finetune", "iterative", "gradual", "lottery")
FINETUNING = ("finetune", "iterative", "gradual")


def schedule_help() -> str:
    return "; ".join(f"{name}: {s.description}" for name, s in SCHEDULES.items())


def add_recovery_options(parser: argparse.ArgumentParser) -> None:
    """The recovery-recipe options (defaults: :class:`~prunekit.schedules.Recovery`)."""
    group = parser.add_argument_group("recovery recipe (schedules that train)")
    for name in TRAINING:
        group.add_argument(f"--{name}-epochs", type=float, default=DEFAULT.train_config(name).epochs,
                           help=f"training epochs per level of {name}")
    group.add_argument("--recovery-lr", type=float, default=None,
                       help="peak learning rate of finetune, iterative and gradual; unset: each recipe's own ("
                       + ", ".join(f"{n} {DEFAULT.train_config(n).lr:g}" for n in FINETUNING) + ")")
    group.add_argument("--lottery-lr", type=float, default=DEFAULT.lottery.lr,
                       help="peak learning rate when a lottery ticket retrains from its rewound weights")
    group.add_argument("--recovery-set", action="append", default=[], metavar="SCHEDULE.FIELD=VALUE",
                       help="set any training field of one schedule's recipe, e.g. iterative.lr_schedule=constant "
                       f"or lottery.weight_decay=0 (fields: {', '.join(f.name for f in fields(TrainConfig))}); "
                       "repeatable")
    group.add_argument("--round-fraction", type=float, default=DEFAULT.round_fraction,
                       help="iterative and lottery prune at most this fraction of the remaining weights per "
                       "round (extra rounds are inserted between targets further apart)")
    group.add_argument("--gradual-end", type=float, default=DEFAULT.gradual_end,
                       help="gradual reaches the final sparsity at this fraction of its run, then fine-tunes")
    group.add_argument("--gradual-prunings", type=int, default=DEFAULT.gradual_prunings,
                       help="number of pruning steps n of the cubic schedule")
    group.add_argument("--rewind-epoch", type=float, default=DEFAULT.rewind_epoch,
                       help="lottery rewinds surviving weights to the baseline's weights after this many epochs "
                       "of its training (0: its initial weights)")
    kd = parser.add_argument_group("distillation (Hinton et al. 2015)")
    kd.add_argument("--distill", action="store_true",
                    help="recover against the dense model's soft targets (every schedule that trains)")
    kd.add_argument("--temperature", type=float, default=DistillConfig().temperature,
                    help="distillation temperature T")
    kd.add_argument("--distill-alpha", type=float, default=DistillConfig().alpha,
                    help="weight of the soft-target term (1 - alpha weighs the labels' cross-entropy)")


def recovery_from_args(args: argparse.Namespace) -> Recovery:
    """The :class:`Recovery` the parsed options describe."""
    configs = {}
    for name in TRAINING:
        changes = {"epochs": getattr(args, f"{name}_epochs")}
        if name == "lottery":
            changes["lr"] = args.lottery_lr
        elif args.recovery_lr is not None:
            changes["lr"] = args.recovery_lr
        configs[name] = replace(DEFAULT.train_config(name), **changes)
    for item in args.recovery_set:
        name, field_name, value = parse_setting(item)
        configs[name] = replace(configs[name], **{field_name: value})
    distill = DistillConfig(args.temperature, args.distill_alpha) if args.distill else None
    return Recovery(**configs, round_fraction=args.round_fraction, gradual_end=args.gradual_end,
                    gradual_prunings=args.gradual_prunings, rewind_epoch=args.rewind_epoch, distill=distill)


def parse_setting(text: str) -> tuple[str, str, object]:
    """``"iterative.lr=0.02"`` -> ``("iterative", "lr", 0.02)``, with the field's type."""
    key, sep, raw = text.partition("=")
    schedule, dot, field_name = key.partition(".")
    types = {f.name: f.type for f in fields(TrainConfig)}
    if not sep or not dot or schedule not in TRAINING or field_name not in types:
        raise ConfigError(f"--recovery-set expects SCHEDULE.FIELD=VALUE with SCHEDULE one of {', '.join(TRAINING)} "
                          f"and FIELD one of {', '.join(types)}; got {text!r}")
    kind = {"float": float, "int": int, "str": str}.get(str(types[field_name]), str)
    try:
        return schedule, field_name, kind(raw)
    except ValueError:
        raise ConfigError(f"--recovery-set {text!r}: {field_name} needs a {kind.__name__}") from None
