"""Counterfactual heatmaps: mechanics on a tiny random model (no UNet pass after classify)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from cytoviz import heatmaps as hm
from cytoviz import pl
from cytoviz.data import CellDataset
from cytoviz.diffusion import ClassifyConfig, DiffusionModel, classify

CLASSES = ("basophil", "eosinophil", "neutrophil")


@pytest.fixture(scope="module")
def setup(tiny_model_config):
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8)
    ds = CellDataset(images, np.array([0, 1, 2, 0, 1, 2]), CLASSES)
    cfg = ClassifyConfig(min_trials=4, max_trials=8, pruning=False, batch_size=16, seed=0)
    result = classify(model, ds, config=cfg, progress=False)
    return model, ds, result


def test_heatmap_shapes_and_zero_diagonal(setup):
    model, ds, result = setup
    h = hm.counterfactual_heatmaps(result, model, ds, indices=[0, 1, 2])
    assert h.heatmaps.shape == (3, 3, 16, 16, 3)
    assert h.magnitude.shape == (3, 3, 16, 16)
    assert h.heatmaps.min() >= 0 and h.heatmaps.max() <= 1
    for i in range(3):
        # the transition to the predicted class is delta = 0: the decode of zero, no energy
        assert np.allclose(h.magnitude[i, h.predicted[i]], 0, atol=1e-5)
        others = [c for c in range(3) if c != h.predicted[i]]
        assert h.magnitude[i, others].max() > 1e-4  # other transitions decode to something


def test_gain_scales_the_decode(setup):
    model, ds, result = setup
    lo = hm.counterfactual_heatmaps(result, model, ds, indices=[0],
                                    config=hm.HeatmapConfig(gain=1.0))
    hi = hm.counterfactual_heatmaps(result, model, ds, indices=[0],
                                    config=hm.HeatmapConfig(gain=100.0))
    assert hi.magnitude.sum() > lo.magnitude.sum() * 5


def test_heatmaps_do_not_run_the_unet(setup, monkeypatch):
    model, ds, result = setup

    def boom(*a, **k):
        raise AssertionError("the UNet must not run for heatmaps")

    monkeypatch.setattr(model.unet, "forward", boom)
    hm.counterfactual_heatmaps(result, model, ds)


def test_overlay_threshold(setup):
    model, ds, result = setup
    h = hm.counterfactual_heatmaps(result, model, ds, indices=[0],
                                   config=hm.HeatmapConfig(gain=200.0))
    target = next(c for c in range(3) if c != h.predicted[0])
    strict = h.neutral(0, target, threshold_k=0.0).mean()
    loose = h.neutral(0, target, threshold_k=1e6).mean()
    assert loose == 1.0 and strict < loose
    # a fully neutral overlay is the original image
    assert np.array_equal(h.overlay(0, target, threshold_k=1e6), ds.images[0])
    assert not np.array_equal(h.overlay(0, target, threshold_k=0.0), ds.images[0])


def test_grid_sources_and_figures(setup):
    model, ds, result = setup
    src = hm.grid_sources(result, labels=ds.labels)
    assert src.shape == (3,) and all(ds.labels[s] == c for c, s in enumerate(src))
    h = hm.counterfactual_heatmaps(result, model, ds, indices=src)
    fig = pl.transition_grid(h, [0, 1, 2])
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 9 and all(t.type == "image" for t in fig.data)
    # diagonal cells show the source images
    diag = [t for t in fig.data if t.name.startswith("source")]
    assert len(diag) == 3
    assert np.array_equal(np.asarray(diag[1].z), ds.images[src[1]])
    panel = pl.heatmap_panel(h, 0)
    assert len(panel.data) == 6  # 2 target classes x (original, heatmap, overlay)


def test_energy_table(setup):
    model, ds, result = setup
    h = hm.counterfactual_heatmaps(result, model, ds, indices=[0, 1])
    masks = np.zeros((2, 3, 16, 16), dtype=bool)
    masks[:, 0, 6:10, 6:10] = True
    masks[:, 1, 4:12, 4:12] = True
    masks[:, 1, 6:10, 6:10] = False
    table = hm.heatmap_energy(h, masks)
    assert len(table) == 4 and set(table.columns) >= {"inside", "outside", "ratio", "cytoplasm_share"}
    share = table["cytoplasm_share"] + table["nucleus_share"]
    assert np.allclose(share, 1.0)


def test_errors(setup):
    model, ds, result = setup
    no_maps = classify(model, ds.subset([0]), config=ClassifyConfig(
        min_trials=2, max_trials=2, pruning=False, keep_error_maps=False), progress=False)
    with pytest.raises(ValueError, match="keep_error_maps"):
        hm.counterfactual_heatmaps(no_maps, model, ds.subset([0]))
    with pytest.raises(ValueError, match="images for a result"):
        hm.counterfactual_heatmaps(result, model, ds.subset([0, 1]))
    with pytest.raises(ValueError, match="gain"):
        hm.HeatmapConfig(gain=0)


def test_transition_explorer_callbacks(setup):
    from cytoviz.widgets import TransitionExplorer

    model, ds, result = setup
    ex = TransitionExplorer(result, ds, model)
    before = np.asarray(ex.grid.data[1].z).copy()
    ex.set_gain(500.0)
    assert not np.array_equal(np.asarray(ex.grid.data[1].z), before)
    ex.select_cell(2, 0)
    assert ex.selected == (2, 0)
    assert "predicted" in ex.readout()
    det = np.asarray(ex.detail.data[2].z).copy()
    ex.set_threshold(0.0)
    assert not np.array_equal(np.asarray(ex.detail.data[2].z), det)
    cands = ex.candidates(1)
    assert cands and all(ds.labels[c] == 1 for c in cands)
    ex.set_source(1, cands[-1])
    assert ex.sources[1] == cands[-1]
    controls = ex.controls()
    controls["gain"].value = 50.0  # the slider drives the same callback
    assert ex.config.gain == pytest.approx(50.0)
    with pytest.raises(ValueError, match="which"):
        ex.candidates(0, "bogus")


def test_transition_explorer_default_target_is_the_runner_up(setup):
    from cytoviz.widgets import TransitionExplorer

    model, ds, result = setup
    ex = TransitionExplorer(result, ds, model)
    for idx in range(len(result)):
        c = int(ds.labels[idx])
        pred = int(result.prediction[idx])
        # aim at the image's prediction first: the old behaviour kept this target
        ex.select_cell(c, pred)
        ex.set_source(c, idx)
        order = [k for k in np.argsort(result.scores[idx], kind="stable") if k != pred]
        assert ex.selected == (c, order[0])  # runner-up: second-lowest mean error
        assert ex.selected[1] != pred
        assert ex.default_target(c) == order[0]
        # the enlarged heatmap is not the empty transition to the prediction
        assert ex.heatmaps.magnitude[c, ex.selected[1]].max() > 1e-4
        assert np.array_equal(np.asarray(ex.detail.data[1].z), ex.heatmaps.heatmap_uint8(c, order[0]))
    # a click on the diagonal (the source image) enlarges the default target too
    ex.select_cell(0, 0)
    target = ex.default_target(0)
    assert np.array_equal(np.asarray(ex.detail.data[1].z), ex.heatmaps.heatmap_uint8(0, target))


def test_classify_for_heatmaps_gives_every_class_every_trial(setup):
    model, ds, _ = setup
    result = hm.classify_for_heatmaps(model, ds, trials=3, seed=1, batch_size=16, progress=False)
    assert result.config.pruning is False and result.config.keep_error_maps
    assert result.config.max_trials == 3 and result.config.seed == 1
    assert np.all(result.n_trials == 3)
    assert np.all(result.class_trials == 3)  # every class gets the same trials
    assert np.all(result.remaining)
    assert np.all(result.n_evals == 3 * len(CLASSES))
    assert result.error_maps is not None and result.error_maps.shape[:2] == (len(ds), len(CLASSES))
    mask = result.mask
    assert np.all(np.abs(result.error_maps[..., mask]).sum(axis=(-1, -2)) > 0)  # a map per class
    np.testing.assert_array_equal(result.labels, ds.labels)
    # the Figure 6 flow: one source per class, then decode
    src = hm.grid_sources(result)
    assert all(result.labels[s] == c for c, s in enumerate(src))
    h = hm.counterfactual_heatmaps(result, model, ds, indices=src)
    assert h.heatmaps.shape[:2] == (len(CLASSES), len(CLASSES))
    with pytest.raises(ValueError, match="pruning"):
        hm.classify_for_heatmaps(model, ds, trials=3, pruning=True)
    with pytest.raises(ValueError, match="trials"):
        hm.classify_for_heatmaps(model, ds, trials=1)
    with pytest.raises(ValueError, match="unknown field"):
        hm.classify_for_heatmaps(model, ds, trials=3, bogus=1)


def test_uniform_colour_shift_of_the_decode_is_not_energy(setup, monkeypatch):
    """A decoder that answers delta only with a colour shift of the whole image (as global
    normalisation does) gives zero magnitude; the raw |H - D(0)| keeps the shift."""
    from types import SimpleNamespace

    import torch

    model, ds, result = setup
    original = model.vae.decode

    def shifting(z, *args, **kwargs):
        base = original(torch.zeros_like(z), *args, **kwargs).sample
        shift = z.abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1) * torch.tensor([1.0, -0.5, 0.2]).view(1, 3, 1, 1)
        return SimpleNamespace(sample=base + shift)

    monkeypatch.setattr(model.vae, "decode", shifting)
    h = hm.counterfactual_heatmaps(result, model, ds, indices=[0, 1])
    assert h.magnitude_raw.max() > 1e-3
    assert np.allclose(h.magnitude, 0, atol=1e-5)
    others = [c for c in range(3) if c != h.predicted[0]]
    assert np.abs(h.background_shift[0, others]).sum() > 1e-3
    assert np.allclose(h.background_shift[0, h.predicted[0]], 0, atol=1e-6)


def test_local_change_keeps_its_energy_on_the_spot(setup, monkeypatch):
    """A decoder whose answer is local (a bright square in the middle) plus a uniform shift:
    the magnitude keeps the square and drops the shift."""
    from types import SimpleNamespace

    import torch

    model, ds, result = setup
    original = model.vae.decode

    def local(z, *args, **kwargs):
        base = original(torch.zeros_like(z), *args, **kwargs).sample
        amp = z.abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
        spot = torch.zeros_like(base)
        spot[:, :, 6:10, 6:10] = 1.0
        return SimpleNamespace(sample=base + amp * (spot + 0.3))

    monkeypatch.setattr(model.vae, "decode", local)
    h = hm.counterfactual_heatmaps(result, model, ds, indices=[0])
    c = next(c for c in range(3) if c != h.predicted[0])
    inside = h.magnitude[0, c, 6:10, 6:10].mean()
    outside = h.magnitude[0, c][h.background[0, c]].mean()
    assert outside < 1e-5 < inside
    assert h.magnitude_raw[0, c][h.background[0, c]].mean() > 0.1 * inside
