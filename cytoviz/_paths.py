"""Where cytoviz finds its shipped files: the one place for paths (private).

The default model, the CNN baseline and the measured result tables ship inside the package
(``cytoviz/_shipped/``, package data found with :func:`importlib.resources.files`), so a wheel or
a non-editable ``pip install .`` finds them as an editable install does. Each location has exactly one environment override:

=====================  ============================  ===============================
location               function                      environment variable
=====================  ============================  ===============================
default model          :func:`default_model_dir`     ``CYTOVIZ_DEFAULT_MODEL``
default CNN baseline   :func:`default_baseline_dir`  ``CYTOVIZ_DEFAULT_BASELINE``
stored result tables   :func:`results_dir`           ``CYTOVIZ_RESULTS``
=====================  ============================  ===============================

cytoviz never looks for the shared PBC example images (``../shared``) on its own: they are
passed explicitly (``--real PATH``, ``real=PATH``) or through ``CYTOVIZ_PBC_EXAMPLE``
(:func:`pbc_example_dir`, which returns ``None`` when it is unset).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = [
    "BASELINE_ENV",
    "DATA_ROOT",
    "MODEL_ENV",
    "PBC_ENV",
    "RESULTS_ENV",
    "default_baseline_dir",
    "default_model_dir",
    "model_dir",
    "pbc_example_dir",
    "results_dir",
]


def _shipped_root() -> Path:
    """``cytoviz/_shipped`` as a folder on disk (the package is installed as files, not zipped)."""
    root = resources.files("cytoviz") / "_shipped"
    return root if isinstance(root, Path) else Path(str(root))


#: Folder of the files shipped with cytoviz (default model, baseline, result tables):
#: ``cytoviz/_shipped`` in the installed package.
DATA_ROOT = _shipped_root()

MODEL_ENV = "CYTOVIZ_DEFAULT_MODEL"
BASELINE_ENV = "CYTOVIZ_DEFAULT_BASELINE"
RESULTS_ENV = "CYTOVIZ_RESULTS"
PBC_ENV = "CYTOVIZ_PBC_EXAMPLE"


def _from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def default_model_dir() -> Path:
    """Folder of the shipped default diffusion model (``CYTOVIZ_DEFAULT_MODEL`` overrides)."""
    return _from_env(MODEL_ENV, DATA_ROOT / "default_model")


def default_baseline_dir() -> Path:
    """Folder of the shipped CNN baseline (``CYTOVIZ_DEFAULT_BASELINE`` overrides)."""
    return _from_env(BASELINE_ENV, DATA_ROOT / "default_baseline")


def results_dir() -> Path:
    """Folder of the measured protocol tables (``CYTOVIZ_RESULTS`` overrides)."""
    return _from_env(RESULTS_ENV, DATA_ROOT / "results")


def pbc_example_dir() -> Path | None:
    """The PBC example images named by ``CYTOVIZ_PBC_EXAMPLE``, or ``None`` when unset."""
    value = os.environ.get(PBC_ENV, "").strip()
    return Path(value).expanduser() if value else None


def model_dir(spec: str | os.PathLike[str]) -> Path:
    """A model folder from the command line: ``"default"`` is :func:`default_model_dir`.

    Parameters
    ----------
    spec
        ``"default"`` (the shipped model, also in an installed package) or a folder path.
    """
    return default_model_dir() if str(spec) == "default" else Path(spec)
