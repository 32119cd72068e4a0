"""The ``prunekit`` command line: argument parsing only; the work is done by the library.

Run ``prunekit --help`` or ``prunekit COMMAND --help``.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from .._version import __version__
from ..errors import PrunekitError
from ..plugins import load_plugins
from . import (bench, compact, compress, convert, drop_blocks, drop_experts, export, info, listing, perplexity, prune, sensitivity,
               sweep, train)

COMMAND_MODULES = (train, prune, drop_blocks, drop_experts, perplexity, convert, info, sweep, sensitivity, compact, compress, export, bench, listing)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prunekit",
        description="Train, prune, compress and measure neural networks (PyTorch).",
    )
    parser.add_argument("--version", action="version", version=f"prunekit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``prunekit`` console command; returns the exit status."""
    load_plugins()  # installed plug-ins' methods, criteria... are choices of the options built next
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except PrunekitError as exc:
        print(f"prunekit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file system error prunekit did not foresee: still no traceback
        print(f"prunekit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # sys.exit() in user code (a model's forward...) must not pass for success
        print(f"prunekit {args.command}: error: the command was ended by sys.exit({exc.code!r}) at "
              f"{exit_site(exc)}, before it finished; everything already written is kept", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prunekit {args.command}: interrupted; everything already written is kept", file=sys.stderr)
        return 130


def exit_site(exc: BaseException) -> str:
    """``file:line`` where ``exc`` was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "an unknown place"


if __name__ == "__main__":
    sys.exit(main())
