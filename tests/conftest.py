"""Shared fixtures. Tests are fast by design: tiny models, seeded data, one torch thread."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("CYTOVIZ_FAST", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PYTENSOR_FLAGS", "compiledir=" + str(Path.home() / ".cache" / "cytoviz-pytensor"))

REPO = Path(__file__).resolve().parents[1]
PBC_DIR = REPO.parent / "shared" / "data" / "pbc_example"
PSIGNIFIT_REF = REPO.parent / "shared" / "reference" / "psignifit"


def pytest_configure(config: pytest.Config) -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="session")
def pbc_dir() -> Path:
    """The 160 real PBC example images; skips where ../shared is absent (as on a user's machine)."""
    if not PBC_DIR.is_dir():
        pytest.skip(f"real PBC example images not found at {PBC_DIR} (only in the dev workspace)")
    return PBC_DIR


@pytest.fixture(scope="session")
def psignifit_ref_dir() -> Path:
    """psignifit 4.3's reference fits; skips where ../shared is absent."""
    if not PSIGNIFIT_REF.is_dir():
        pytest.skip(f"psignifit reference data not found at {PSIGNIFIT_REF}")
    return PSIGNIFIT_REF


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
