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
from cytoviz._threads import set_threads

__all__ = ["main"]

#: Modules that contribute subcommands, in help order.
_COMMAND_MODULES: tuple[str, ...] = (
    "cytoviz.data._cli",
    "cytoviz.diffusion._cli",
    "cytoviz.diffusion._classify_cli",
    "cytoviz.diffusion._generate_cli",
    "cytoviz.psychometric._cli",
    "cytoviz.evaluation._cli",
    "cytoviz.evaluation._baseline_cli",
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


#: OSErrors that say a path given on the command line is wrong (exit status 2, as for other
#: bad input); any other OSError is the system refusing (permissions, a read-only file system,
#: a full disk: exit status 1).
_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cytoviz`` command.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad input (a message names what is wrong), 1 when
        the system refused a file operation (the message names the path and the reason), 130
        when interrupted (the message says whether the same command resumes).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        set_threads(getattr(args, "threads", None))  # --threads of the heavy commands
        result = args.func(args)
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None)
        if callable(hint):
            hint = hint(args)
        print(f"cytoviz {args.command}: interrupted" + (f"; {hint}" if hint else ""),
              file=sys.stderr)
        return 130
    except (ValueError, RuntimeError) as exc:
        # Expected, user-facing errors: one clear line, no traceback.
        print(f"cytoviz {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cytoviz {args.command}: error: {_os_error_message(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, _PATH_ERRORS) else 1
    return int(result or 0)


def _os_error_message(exc: OSError) -> str:
    """One line for an ``OSError``: the path(s) and the reason, without the errno noise.

    Parameters
    ----------
    exc
        The error (``PermissionError``, ``OSError(ENOSPC)``, ...).

    Returns
    -------
    str
        ``"PATH: reason"`` (``"PATH -> PATH2: reason"`` for a rename), or the error's own text
        when it names no path.
    """
    if exc.filename is None or not exc.strerror:
        return str(exc)
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return f"{where}: {exc.strerror}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
