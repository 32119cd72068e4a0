"""Options several commands share, and small parsers for option values."""

from __future__ import annotations

import argparse
import json
import math
import re

from ..errors import ConfigError
from ..training import TrainConfig
from ..training.device import resolve_device
from .options import add_dataclass_options, dataclass_from_args

_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults beside every option and keeps the description's line breaks."""


def add_command(commands, name: str, help: str, description: str, run) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help, description=description, formatter_class=HelpFormatter)
    parser.set_defaults(run=run)
    return parser


def add_model_options(parser: argparse.ArgumentParser, *, default: str | None = "mlp") -> None:
    """``--model NAME`` and repeatable ``--model-arg KEY=VALUE``."""
    parser.add_argument("--model", default=default,
                        help="model name (see `prunekit models`), or your own: FILE.py:FUNCTION or "
                        "package.module:FUNCTION returning an nn.Module")
    parser.add_argument("--model-arg", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="a model builder argument, VALUE in JSON (e.g. hidden=[300,100], num_classes=10) "
                        "or a bare word taken as a string; repeatable")


def checked_device(spec: str) -> str:
    """Fail at parse time, before any data is read, for a device this machine does not have."""
    try:
        resolve_device(spec)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return spec


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda[:N]|mps``."""
    parser.add_argument("--device", default="auto", type=checked_device,
                        help="where to compute: auto (a GPU if there is one), cpu, cuda, cuda:N or mps")


def add_bn_batches_option(parser: argparse.ArgumentParser, *, when: str = "") -> None:
    """``--bn-batches N``: BatchNorm statistics re-estimated before each evaluation of the sensitivity curves."""
    parser.add_argument("--bn-batches", type=non_negative_int, default=8, metavar="N",
                        help=f"{when}re-estimate BatchNorm statistics on N batches of the validation slice before "
                        "evaluating each point of the sensitivity curves (adaptive BN; models without BatchNorm are "
                        "unaffected; 0: off)")


def add_user_model_option(parser: argparse.ArgumentParser) -> None:
    """``--model`` for commands that load a checkpoint of a user model (never imported from the checkpoint)."""
    parser.add_argument("--model", default=None, metavar="FILE.py:FUNCTION",
                        help="for a checkpoint of your own model: the same FILE.py:FUNCTION it was built with "
                        "(a checkpoint never imports code by itself)")


def add_data_options(parser: argparse.ArgumentParser, *, default: str | None = "mnist") -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default=default,
                       help="dataset name (see `prunekit datasets`), or your own: FILE.py:FUNCTION returning "
                       "(train, test) Datasets, DataLoaders or (x, y) tensors")
    group.add_argument(
        "--data-dir", default=None,
        help="folder holding the dataset's files; default: $PRUNEKIT_DATA, then the user cache folder, "
        "downloading there if missing")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def add_train_options(parser: argparse.ArgumentParser, *, epochs: float | None = None) -> None:
    """Every field of :class:`~prunekit.training.TrainConfig` as an option (``--epochs``, ``--momentum``...)."""
    defaults = TrainConfig() if epochs is None else TrainConfig(epochs=epochs)
    add_dataclass_options(parser, TrainConfig, defaults=defaults, title="training recipe")


def train_config(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The TrainConfig the parsed training options describe."""
    return dataclass_from_args(TrainConfig, args, **overrides)


def key_value(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE``: VALUE in JSON (``hidden=[300,100]``), or a bare word taken as a string.

    Example:
        >>> key_value("hidden=[300,100]"), key_value("act=relu")
        (('hidden', [300, 100]), ('act', 'relu'))
        >>> key_value("hidden=[300,100")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: --model-arg hidden=[300,100: the value is not valid JSON (Expecting ',' delimiter at character 8); write numbers, lists such as [300,100], true/false, or "quoted strings"
    """
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a name, got {text!r}")
    try:
        return key, json.loads(value)
    except (json.JSONDecodeError, RecursionError) as exc:
        if _BARE_WORD.match(value) and value not in ("true", "false", "null"):
            return key, value
        detail = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise argparse.ArgumentTypeError(
            f"--model-arg {text}: the value is not valid JSON ({detail}); write numbers, lists such as [300,100], "
            f"true/false, or \"quoted strings\"") from None


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (a batch size, a count of workers or repeats).

    Example:
        >>> positive_int("256")
        256
        >>> positive_int("-5")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: expected a positive integer, got '-5'
    """
    return _number(text, int, "a positive integer", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (a count where 0 turns something off)."""
    return _number(text, int, "a non-negative integer", lambda v: v >= 0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return _number(text, float, "a positive number", lambda v: v > 0)


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    return _number(text, float, "a non-negative number", lambda v: v >= 0)


def percentage(text: str) -> float:
    """An argparse type: a percentage in [0, 100), such as a sparsity (checked before any work is done).

    Example:
        >>> percentage("92.5")
        92.5
    """
    return _number(text, float, "a percentage in [0, 100), e.g. 92.5", lambda v: 0 <= v < 100)


def _number(text: str, kind: type, expected: str, ok) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _int_list(text: str, minimum: int, expected: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return values


def shape(text: str) -> tuple[int, ...]:
    """Parse ``"1,28,28"`` into ``(1, 28, 28)``."""
    return _int_list(text, 1, "comma-separated positive sizes such as 1,28,28")


def seed_list(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``: comma-separated non-negative integers."""
    return _int_list(text, 0, "comma-separated non-negative integers such as 0,1,2")


def float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())
