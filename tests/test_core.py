"""Package plumbing: configs, atomic writes, class names, the data container, the env file."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytoviz as cv
from cytoviz._config import Config
from cytoviz._io import atomic_path, load_npz, save_npz
from cytoviz.classes import (
    CANONICAL_CLASSES,
    UnknownClassError,
    normalise_class_name,
    normalise_class_names,
)
from cytoviz.data import CellDataset

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class _Cfg(Config):
    a: int = 1
    b: tuple[int, ...] = (1, 2)

    def validate(self) -> None:
        if self.a < 0:
            raise ValueError(f"a must be >= 0, got {self.a}")


def test_config_roundtrip_and_validation(tmp_path):
    cfg = _Cfg(a=3, b=(4, 5))
    path = cfg.save(tmp_path / "cfg.json")
    assert _Cfg.load(path) == cfg
    with pytest.raises(ValueError, match="a must be >= 0"):
        _Cfg(a=-1)
    with pytest.raises(ValueError, match="unknown field"):
        _Cfg.from_dict({"a": 1, "zzz": 2})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.a = 2  # type: ignore[misc]


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_npz_refuses_objects_and_truncation(tmp_path):
    with pytest.raises(TypeError, match="object"):
        save_npz(tmp_path / "x.npz", a=np.array([{"a": 1}], dtype=object))
    path = save_npz(tmp_path / "y.npz", a=np.arange(1000))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match=r"y\.npz"):
        load_npz(path)


@pytest.mark.parametrize(
    ("raw", "canon"),
    [
        ("NEUTROPHIL", "neutrophil"),
        ("ig", "immature granulocyte"),
        ("Immature_Granulocyte", "immature granulocyte"),
        ("SNE", "neutrophil"),
        ("BNE", "neutrophil"),
        ("ERB", "erythroblast"),
        ("Platelets", "platelet"),
        ("artifact", "artefact"),
    ],
)
def test_class_name_normalisation(raw, canon):
    assert normalise_class_name(raw) == canon


def test_unknown_class_names_are_listed():
    with pytest.raises(UnknownClassError, match=r"\['giraffe', 'zebra'\]"):
        normalise_class_names(["neutrophil", "zebra", "giraffe"])


def test_cell_dataset_validation_and_roundtrip(tmp_path, rng):
    images = rng.integers(0, 255, size=(6, 8, 8, 3), dtype=np.uint8)
    masks = rng.random((6, 3, 8, 8)) > 0.5
    meta = pd.DataFrame({"path": [f"p{i}.png" for i in range(6)], "mix_weight": np.linspace(0, 1, 6)})
    ds = CellDataset(images, np.array([0, 1, 2, 0, 1, 2]), ("a", "b", "c"), meta=meta, masks=masks)
    back = CellDataset.load(ds.save(tmp_path / "ds.npz"))
    np.testing.assert_array_equal(back.images, ds.images)
    np.testing.assert_array_equal(back.masks, ds.masks)
    assert back.class_names == ds.class_names
    pd.testing.assert_frame_equal(back.meta, ds.meta)
    sub = ds.select_classes(["c", "a"])
    assert sub.class_names == ("c", "a") and sorted(sub.labels.tolist()) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        CellDataset(images, np.array([0, 1, 2, 0, 1, 3]), ("a", "b", "c"))
    with pytest.raises(ValueError, match="uint8"):
        CellDataset(images.astype(float), np.zeros(6, int), ("a",))


def test_environment_yml_names_every_runtime_dependency():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in deps}
    env = (REPO / "environment.yml").read_text().lower()
    conda_alias = {"kaleido": "python-kaleido"}
    missing = [n for n in names if not re.search(rf"(^|\s|-\s){re.escape(conda_alias.get(n, n))}\b", env, re.M)]
    assert not missing, f"environment.yml lacks {missing}"


def test_constraints_pin_cpu_torch():
    lines = (REPO / "requirements" / "constraints.txt").read_text().splitlines()
    assert "torch==2.13.0" in lines
    assert not [ln for ln in lines if ln.lower().startswith("nvidia-")]


def test_public_api_is_lazy_and_small():
    assert cv.CANONICAL_CLASSES == CANONICAL_CLASSES
    assert len(CANONICAL_CLASSES) == 10
    assert set(cv.__all__) >= {"data", "pl", "psychometric"}


def test_empty_subset(rng):
    ds = CellDataset(rng.integers(0, 255, size=(3, 4, 4, 3), dtype=np.uint8), np.array([0, 1, 0]), ("a", "b"))
    assert len(ds.subset([])) == 0


def test_save_figure_keeps_aspect_and_is_atomic(tmp_path):
    import shutil

    import plotly.graph_objects as go

    from cytoviz.pl import save_figure

    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]), layout=dict(width=400, height=800))
    with pytest.raises(ValueError, match="format"):
        save_figure(fig, tmp_path / "f", formats=["bmp"])
    if shutil.which("chromium") is None:
        pytest.skip("static export needs Debian chromium (scripts/setup.sh installs it)")
    (png,) = save_figure(fig, tmp_path / "f", formats=["png"], width="single", scale=1)
    from PIL import Image

    w, h = Image.open(png).size
    assert (w, h) == (350, 700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_hung_static_export_is_killed_and_retried(tmp_path, monkeypatch, capsys):
    """kaleido can wait forever on its headless browser: the watchdog kills the browser the
    call started (here a stand-in process named chromium) and tries once more."""
    import subprocess
    import sys

    import plotly.graph_objects as go

    from cytoviz.pl import save_figure

    calls, procs = [], []

    def fake_write_image(self, path, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the first export hangs on its "browser" until it is killed
            proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                     "chromium-stand-in"])
            procs.append(proc)
            proc.wait()
            raise RuntimeError("The browser seemed to close immediately after starting.")
        Path(path).write_bytes(b"\x89PNG fake")

    monkeypatch.setattr(go.Figure, "write_image", fake_write_image)
    monkeypatch.setenv("CYTOVIZ_EXPORT_TIMEOUT", "1")
    monkeypatch.setattr("cytoviz.pl._style._find_chromium", lambda: "/usr/bin/chromium")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]), layout=dict(width=400, height=300))
    (png,) = save_figure(fig, tmp_path / "f", formats=["png"])
    assert png.read_bytes() == b"\x89PNG fake" and len(calls) == 2
    assert procs[0].returncode == -9  # the stand-in browser was killed
    assert "hung" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_export_that_keeps_hanging_fails_with_the_file_name(tmp_path, monkeypatch):
    import time

    import plotly.graph_objects as go

    from cytoviz.pl import save_figure

    def slow(self, path, **kwargs):
        time.sleep(1.5)
        raise RuntimeError("never answered")

    monkeypatch.setattr(go.Figure, "write_image", slow)
    monkeypatch.setenv("CYTOVIZ_EXPORT_TIMEOUT", "0.3")
    monkeypatch.setattr("cytoviz.pl._style._find_chromium", lambda: "/usr/bin/chromium")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    with pytest.raises(RuntimeError, match=r"PNG export of .*g\.png hung"):
        save_figure(fig, tmp_path / "g", formats=["png"])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_model_default_names_the_shipped_model(monkeypatch, tmp_path):
    """``--model default`` is the shipped model (also from an installed wheel), or the override."""
    from cytoviz._paths import MODEL_ENV, default_model_dir
    from cytoviz.cli import build_parser

    parser = build_parser()
    for command in (["classify", "--data", "synthetic", "--out", "o"],
                    ["generate", "--class", "neutrophil", "--out", "o"]):
        args = parser.parse_args([command[0], "--model", "default", *command[1:]])
        assert args.model == default_model_dir()
        assert (args.model / "cytoviz.json").is_file()
        args = parser.parse_args([command[0], "--model", str(tmp_path), *command[1:]])
        assert args.model == tmp_path
    monkeypatch.setenv(MODEL_ENV, str(tmp_path))
    assert parser.parse_args(["classify", "--model", "default", "--data", "synthetic",
                              "--out", "o"]).model == tmp_path
