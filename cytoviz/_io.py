"""Atomic file writing and small serialisation helpers (private).

Every file cytoviz writes goes through :func:`atomic_path`: the data is written to a temporary
file in the destination folder and renamed over the target only once it is complete, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_VERSION", "atomic_path", "inside", "load_json", "load_npz", "save_csv", "save_json",
    "save_npz", "sha256_files", "writable_folder",
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name ends with the real suffix so that writers which infer the format
        # from the name (numpy, kaleido, safetensors) behave as for the destination.
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.stem}.tmp-", suffix=suffix if suffix is not None else path.suffix,
            dir=path.parent,
        )
    except OSError as exc:
        raise _naming(exc, path) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; use the usual mode
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp_path), tmp_path):
            # a write that failed (a full disk ...): name the destination, not the temporary
            raise _naming(exc, path) from exc
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file name (same class, errno and reason), when it has an errno.

    A write that fails mid-way (``ENOSPC``) names no file; the command line prints the
    file name and the reason (:func:`cytoviz.cli.main`).
    """
    if exc.errno is None or exc.filename == str(path):
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def writable_folder(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and its parents) if needed and check that files can be written there.

    Commands call this on their output folder before any heavy work, so that a read-only
    folder, a read-only file system or an output path below a file fails at once.

    Parameters
    ----------
    path
        The output folder.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NotADirectoryError
        When ``path``, or a folder above it, is a file.
    OSError
        When the folder cannot be created or written (``PermissionError``, ``EROFS`` ...),
        naming the folder.
    """
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                kind = "broken symbolic link" if not parent.exists() else "file"
                what = f"is a {kind}" if parent == path else f"lies below the {kind} {parent}"
                raise NotADirectoryError(
                    errno.ENOTDIR, f"not a folder: it {what}; choose another output folder",
                    str(path),
                )
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cytoviz-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _naming(exc, path) from exc
    return path


def inside(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``folder / path``, checked to stay inside ``folder`` once ``..`` and symlinks are resolved.

    Every writer that builds a file name from a name it did not choose (a class name, an image
    id, a cache key) passes it through here, so that no name can write outside its folder.

    Parameters
    ----------
    folder
        The output folder (it need not exist yet).
    path
        A path relative to ``folder`` (an absolute one is checked as it is).

    Returns
    -------
    Path
        ``folder / path`` (not resolved).

    Raises
    ------
    ValueError
        When the resolved path lies outside the resolved ``folder``.
    """
    target = Path(folder) / path
    root = Path(folder).resolve()
    real = target.resolve()
    if real != root and root not in real.parents:
        raise ValueError(
            f"{target} resolves to {real}, outside the output folder {root}; refusing to write "
            "there (a name with '..', '/' or a symlink out of the folder)"
        )
    return target


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
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        what = "is empty" if not magic else "is not an npz/zip file"
        raise ValueError(f"{path}: {what}; expected an .npz written by cytoviz (numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        raise ValueError(
            f"{path}: contains pickled objects or is not an npz written by cytoviz ({exc})"
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: unreadable npz file ({exc}); it may be truncated") from exc


def sha256_files(folder: str | os.PathLike[str]) -> str:
    """SHA-256 over the relative names and contents of every file below ``folder``.

    The provenance of a model folder in ``cytoviz figures`` and ``scripts/`` (result tables).

    Parameters
    ----------
    folder
        The folder to hash (files in sorted order of their relative paths).

    Returns
    -------
    str
        The hex digest.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()
