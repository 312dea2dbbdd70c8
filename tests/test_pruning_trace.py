"""cytoviz.pl.pruning_trace: classes eliminated trial by trial, tested by figure structure."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from cytoviz import pl
from cytoviz.diffusion import ClassificationResult, ClassifyConfig

NAMES = ("basophil", "eosinophil", "neutrophil")


def _result(pruning: bool = True) -> ClassificationResult:
    # Image 0: 6 trials; neutrophil dropped after trial 2, eosinophil after trial 4.
    # Image 1: 2 trials, all classes in play.
    nan = np.nan
    errors = np.array([
        [1.0, 2.0, 4.0],
        [2.0, 1.0, 5.0],
        [1.0, 3.0, nan],
        [1.0, 2.0, nan],
        [2.0, nan, nan],
        [1.0, nan, nan],
        [5.0, 3.0, 4.0],
        [3.0, 1.0, 2.0],
    ], np.float32)
    return ClassificationResult(
        class_names=NAMES, config=ClassifyConfig(min_trials=2, max_trials=6, prune_every=2,
                                                 pruning=pruning, tta=False),
        trial_errors=errors, trial_timesteps=np.arange(8), trial_weights=np.ones(8),
        n_trials=np.array([6, 2]), n_evals=np.array([12, 6]),
        remaining=np.array([[True, False, False], [True, True, True]]), labels=np.array([0, 2]),
    )


def test_pruning_trace_lines_and_pruned_markers():
    r = _result()
    fig = pl.pruning_trace(r, 0)
    assert isinstance(fig, go.Figure)
    assert fig.layout.template.layout.font.family.startswith("Arial")  # the cytoviz template
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == list(NAMES)
    assert all(len(t.x) == 6 for t in lines)
    y = {t.name: np.asarray(t.y, dtype=float) for t in lines}
    # a pruned class's line stops after its last trial
    assert np.isnan(y["neutrophil"][2:]).all() and not np.isnan(y["neutrophil"][:2]).any()
    assert np.isnan(y["eosinophil"][4:]).all()
    # relative: each line ends at the class's mean error (the value that decides)
    ends = [y[n][~np.isnan(y[n])][-1] for n in NAMES]
    np.testing.assert_allclose(ends, r.mean_errors[0], rtol=1e-6)
    (marks,) = [t for t in fig.data if t.name == "pruned"]
    assert list(marks.text) == ["eosinophil", "neutrophil"]
    assert list(marks.x) == [4, 2]
    np.testing.assert_allclose(marks.y, [r.mean_errors[0, 1], r.mean_errors[0, 2]], rtol=1e-6)
    assert "predicted basophil" in fig.layout.title.text and "true basophil" in fig.layout.title.text
    assert fig.layout.shapes and fig.layout.shapes[0].x0 == 2  # first pruning test


def test_pruning_trace_raw_errors_and_no_pruning():
    r = _result()
    raw = pl.pruning_trace(r, 0, relative=False, title="raw")
    np.testing.assert_allclose(np.asarray(raw.data[0].y, float), np.cumsum([1, 2, 1, 1, 2, 1]) / np.arange(1, 7))
    assert raw.layout.title.text == "raw"
    full = pl.pruning_trace(r, -1)  # all classes in play: no markers
    assert [t.name for t in full.data] == list(NAMES)
    off = pl.pruning_trace(_result(pruning=False), 1)
    assert not off.layout.shapes
    with pytest.raises(IndexError, match="out of range"):
        pl.pruning_trace(r, 2)
