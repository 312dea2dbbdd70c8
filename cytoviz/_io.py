"""Atomic file writing and small serialisation helpers (private).

Every file cytoviz writes goes through :func:`atomic_path`: the data is written to a temporary
file in the destination folder and renamed over the target only once it is complete, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_VERSION", "atomic_path", "load_json", "load_npz", "save_csv", "save_json", "save_npz",
]

#: Version of cytoviz's on-disk formats (result files, model folders, data sets).
FORMAT_VERSION = 1

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path
        Final destination. Its parent folder is created if needed.
    suffix
        Suffix of the temporary file (defaults to the destination's), for writers that
        infer the format from the file name.

    Notes
    -----
    On an exception the temporary file is removed and the destination is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name ends with the real suffix so that writers which infer the format
    # from the name (numpy, kaleido, safetensors) behave as for the destination.
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.tmp-", suffix=suffix if suffix is not None else path.suffix,
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; use the usual mode
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def save_json(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    return path


def save_csv(frame: Any, path: str | os.PathLike[str], *, index: bool = False) -> Path:
    """Write a pandas table as CSV, atomically (the one CSV writer of cytoviz).

    Parameters
    ----------
    frame
        A :class:`pandas.DataFrame`.
    path
        Destination; its folder is created if needed.
    index
        Also write the index (off by default: cytoviz tables keep their keys in columns).
    """
    path = Path(path)
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=index)
    return path


def load_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON file, with an error that names the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); the file may be truncated") from exc


def save_npz(path: str | os.PathLike[str], /, **arrays: np.ndarray) -> Path:
    """Write arrays to a compressed ``.npz`` atomically; object arrays are refused."""
    path = Path(path)
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; cytoviz never writes pickles")
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``.npz`` written by :func:`save_npz` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        raise ValueError(
            f"{path}: contains pickled objects or is not an npz written by cytoviz ({exc})"
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: unreadable npz file ({exc}); it may be truncated") from exc
