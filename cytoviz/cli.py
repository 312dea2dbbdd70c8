"""The ``cytoviz`` command line.

Each feature area registers its subcommands from a private ``_cli`` module with a
``register(subparsers)`` function; heavy imports happen inside the command handlers so that
``cytoviz --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cytoviz import __version__

__all__ = ["main"]

#: Modules that contribute subcommands, in help order.
_COMMAND_MODULES: tuple[str, ...] = (
    "cytoviz.data._cli",
    "cytoviz.diffusion._cli",
    "cytoviz.diffusion._classify_cli",
    "cytoviz.diffusion._generate_cli",
    "cytoviz.psychometric._cli",
    "cytoviz.evaluation._cli",
    "cytoviz.figures",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="cytoviz",
        description="CytoDiffusion for blood-cell morphology: data, training, classification, "
        "heatmaps, psychometric uncertainty, evaluation and paper figures.",
    )
    parser.add_argument("--version", action="version", version=f"cytoviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cytoviz`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("cytoviz: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        # Expected, user-facing errors: one clear line, no traceback.
        print(f"cytoviz {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
