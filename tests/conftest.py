"""Shared fixtures. Tests are fast by design: tiny models, seeded data, one torch thread."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cytoviz.diffusion.model import DiffusionModel, ModelConfig

os.environ.setdefault("CYTOVIZ_FAST", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PYTENSOR_FLAGS", "compiledir=" + str(Path.home() / ".cache" / "cytoviz-pytensor"))

REPO = Path(__file__).resolve().parents[1]
PBC_DIR = REPO.parent / "shared" / "data" / "pbc_example"
PSIGNIFIT_REF = REPO.parent / "shared" / "reference" / "psignifit"
#: Class names of the saved models that :func:`tiny_model_dir` builds.
TINY_CLASSES = ("a", "b")


def pytest_configure(config: pytest.Config) -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``gpu`` where torch sees no CUDA device."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
        for item in gpu:
            item.add_marker(skip)


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


@pytest.fixture(scope="session")
def tiny_model_config() -> ModelConfig:
    """The tiny test architecture, :meth:`ModelConfig.smallest` (16 px, one 16-wide token).

    Tests that need a variant call ``ModelConfig.smallest(**changes)`` themselves.
    """
    return ModelConfig.smallest()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory,
                   tiny_model_config: ModelConfig) -> Callable[..., Path]:
    """``tiny_model_dir(seed=0)``: the folder of a saved random :func:`tiny_model_config` model of
    the classes :data:`TINY_CLASSES`, built once a session for each seed. Read-only: a test
    that changes a model folder builds its own."""
    made: dict[int, Path] = {}

    def folder(seed: int = 0) -> Path:
        if seed not in made:
            model = DiffusionModel.build(TINY_CLASSES, tiny_model_config, seed=seed)
            made[seed] = model.save_pretrained(tmp_path_factory.mktemp(f"tiny_model_seed{seed}"))
        return made[seed]

    return folder
