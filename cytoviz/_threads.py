"""``--threads N`` of the heavy commands: the one place that sets the thread count (private).

``cytoviz train``, ``classify``, ``evaluate``, ``generate`` and ``baseline train|predict`` add the
option with :func:`add_threads_option`; :func:`cytoviz.cli.main` calls :func:`set_threads` with
its value before the command's handler starts, so the work of every command runs with it. Without
the option torch keeps its own default (all cores, or ``$OMP_NUM_THREADS``).
"""

from __future__ import annotations

import argparse
import os

__all__ = ["THREAD_ENV_VARS", "add_threads_option", "set_threads", "thread_count"]

#: Environment variables set to N as well, so that subprocesses (and libraries that read them
#: when they start) use the same count.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def thread_count(text: str) -> int:
    """The value of ``--threads``: an integer of at least 1 (argparse ``type=``).

    Parameters
    ----------
    text
        The text given on the command line.

    Raises
    ------
    argparse.ArgumentTypeError
        For anything but a positive integer (argparse then exits with status 2 and one line).
    """
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer (torch threads, e.g. 4), got {text!r}")
    return n


def add_threads_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--threads N`` to a command (see the module docstring).

    Parameters
    ----------
    parser
        The command's parser or one of its argument groups.
    """
    parser.add_argument("--threads", type=thread_count, metavar="N",
                        help="torch threads for the work (torch.set_num_threads; also sets "
                        f"{' and '.join(THREAD_ENV_VARS)} for subprocesses); default: torch's, "
                        "all cores or $OMP_NUM_THREADS")


def set_threads(n: int | None) -> int | None:
    """Use ``n`` torch threads in this process and its future subprocesses.

    Parameters
    ----------
    n
        The thread count, at least 1; ``None`` changes nothing.

    Returns
    -------
    int or None
        ``n``.

    Raises
    ------
    ValueError
        When ``n`` is not a positive integer.
    """
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--threads must be a positive integer, got {n!r}")
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(n)
    import torch

    torch.set_num_threads(n)
    return n
