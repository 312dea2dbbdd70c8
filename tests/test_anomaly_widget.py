"""AnomalyExplorer: callbacks driven from code, no browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from cytoviz.evaluation.anomaly_detection import anomaly_table


def _table() -> pd.DataFrame:
    parts = []
    # normal certainties 1.0, 0.8, 0.6, 0.4 and abnormal 0.1, 0.3, 0.5 (already normalised)
    for model, shift in (("diffusion", 0.0), ("baseline", 0.2)):
        for held in ("blast", "erythroblast"):
            c = np.array([1.0, 0.8, 0.6, 0.4, 0.1, 0.3, 0.5]) - np.r_[np.zeros(4), np.full(3, -shift)]
            c = c / c.max()
            parts.append(anomaly_table(c, np.r_[np.zeros(4, bool), np.ones(3, bool)],
                                       model=model, held_out=held))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def explorer():
    from cytoviz.widgets import AnomalyExplorer

    images = np.zeros((7, 6, 6, 3), dtype=np.uint8)
    for i in range(7):
        images[i] = 30 * i
    return AnomalyExplorer(_table(), images=images, threshold=0.45)


def test_rates_readout_and_flagged(explorer):
    r = explorer.rates()
    assert r["tpr"] == pytest.approx(2 / 3) and r["fpr"] == pytest.approx(1 / 4)
    assert r["n_flagged"] == 3
    assert list(explorer.flagged()["image"]) == [4, 5, 3]  # least certain first
    assert "TPR 0.667" in explorer.readout() and "FPR 0.250" in explorer.readout()
    explorer.set_threshold(0.95)
    r = explorer.rates()
    assert r["tpr"] == 1.0 and r["fpr"] == pytest.approx(3 / 4)
    explorer.set_threshold(0.0)
    assert explorer.rates()["n_flagged"] == 0


def test_threshold_updates_figures(explorer):
    assert isinstance(explorer.figure, go.FigureWidget)
    line_x = explorer.figure.layout.shapes[0].x0
    z0 = np.asarray(explorer.thumbnails.data[0].z).shape
    assert z0[:2] == (6, 3 * 6 + 2 * 2)  # three flagged 6 px cells side by side, 2 px gaps
    explorer.set_threshold(0.95)
    assert explorer.figure.layout.shapes[0].x0 != line_x
    z1 = np.asarray(explorer.thumbnails.data[0].z).shape
    assert z1[1] > z0[1]
    assert "flagged cells: 6" in explorer.thumbnails.layout.title.text
    # the first thumbnail is the least certain cell (image 4, filled with 120)
    assert np.asarray(explorer.thumbnails.data[0].z)[0, 0, 0] == 120


def test_model_held_out_bandwidth_callbacks(explorer):
    y0 = np.asarray(explorer.figure.data[1].y).copy()
    explorer.set_model("baseline")
    assert explorer.figure.data[0].meta["model"] == "baseline"
    assert not np.allclose(np.asarray(explorer.figure.data[1].y), y0)
    assert explorer.rates()["tpr"] != pytest.approx(2 / 3) or explorer.rates()["fpr"] != 0.25
    explorer.set_held_out("erythroblast")
    assert explorer.figure.data[0].meta["held_out"] == "erythroblast"
    y1 = np.asarray(explorer.figure.data[0].y).copy()
    explorer.set_bandwidth(0.01)
    assert np.asarray(explorer.figure.data[0].y).max() > y1.max()
    with pytest.raises(ValueError, match="unknown model"):
        explorer.set_model("vit")
    with pytest.raises(ValueError, match="bandwidth"):
        explorer.set_bandwidth(-1)


def test_controls_are_wired(explorer):
    c = explorer.controls()
    c["threshold"].value = 0.95
    assert explorer.threshold == 0.95
    assert "TPR 1.000" in c["readout"].value
    c["model"].value = "baseline"
    assert explorer.model == "baseline"
    box = explorer.show()
    assert explorer.figure in box.children


def test_validation_errors():
    from cytoviz.widgets import AnomalyExplorer

    with pytest.raises(ValueError, match="lacks column"):
        AnomalyExplorer(pd.DataFrame({"model": ["x"]}))
    with pytest.raises(ValueError, match="refers to image 6"):
        AnomalyExplorer(_table(), images=np.zeros((3, 6, 6, 3), np.uint8))
    no_images = AnomalyExplorer(_table())
    no_images.set_threshold(0.9)
    assert np.asarray(no_images.thumbnails.data[0].z).shape == (8, 8, 3)
