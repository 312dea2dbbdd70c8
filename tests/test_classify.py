"""The diffusion classifier: mask, pruning, decision rule, batched engine, result object, CLI."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch
from scipy.stats import ttest_rel

from cytoviz.data import CellDataset
from cytoviz.diffusion import (
    ClassificationResult,
    ClassifyConfig,
    DiffusionModel,
    ModelConfig,
    classify,
)
from cytoviz.diffusion.classify import prune
from cytoviz.diffusion.classify_config import default_mask_radius, latent_mask

NAMES = ("a", "b", "c")
TINY = ModelConfig.smallest(n_tokens=2)  # two token rows: the conditioning test compares them


@pytest.fixture(scope="module")
def model() -> DiffusionModel:
    return DiffusionModel.build(NAMES, TINY, seed=0).eval()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------- the mask
def test_mask_radius_scales_with_the_latent() -> None:
    assert default_mask_radius(45) == 20
    assert default_mask_radius(16) == 7  # round(20 / 45 * 16) = round(7.11)
    assert default_mask_radius(28) == 12
    assert ClassifyConfig().mask_radius is None


def test_mask_pixel_count_and_symmetry() -> None:
    for size, r in ((45, 20), (16, 7), (28, 8)):
        m = latent_mask(size, r)
        c = (size - 1) / 2
        count = sum((y - c) ** 2 + (x - c) ** 2 <= r * r for y in range(size) for x in range(size))
        assert m.sum() == count
        assert abs(m.sum() - np.pi * r * r) < 2 * np.pi * r  # a disc, up to its rim
        assert np.array_equal(m, np.rot90(m)) and np.array_equal(m, m[::-1])
    assert latent_mask(45, 20).sum() == 1257
    assert latent_mask(8, 20).all()


# --------------------------------------------------------------------------------- pruning
def test_prune_matches_scipy(rng: np.random.Generator) -> None:
    e = rng.normal(size=(25, 4)) + np.array([0.0, 0.5, 0.05, 1.5])
    remaining = np.ones(4, bool)
    out = prune(e, remaining, 0.05)
    best = int(np.argmin(e.mean(0)))
    expect = remaining.copy()
    for c in range(4):
        if c != best:
            p = ttest_rel(e[:, c], e[:, best]).pvalue
            expect[c] = not (p < 0.05 and e[:, c].mean() > e[:, best].mean())
    np.testing.assert_array_equal(out, expect)
    assert out[best] and not out[3]


def test_paired_t_pvalues_equal_scipy_ttest_rel(rng: np.random.Generator) -> None:
    """The pruning test's own t-test gives scipy's p-values, edge cases included."""
    from cytoviz.diffusion.classify import paired_t_pvalues

    for n in (2, 3, 5, 20, 100):
        a = rng.random((n, 9)).astype(np.float32).astype(np.float64)
        b = rng.random((n, 1))
        expect = ttest_rel(a, np.broadcast_to(b, a.shape), axis=0).pvalue
        np.testing.assert_allclose(paired_t_pvalues(a - b), expect, rtol=1e-12, atol=0)
    with np.errstate(all="ignore"):
        # constant differences: p = 0 (t infinite); all-zero differences: NaN
        ones, zeros = np.ones((5, 2)), np.zeros((5, 2))
        for d in (ones, zeros):
            expect = ttest_rel(d, np.zeros_like(d), axis=0).pvalue
            np.testing.assert_array_equal(paired_t_pvalues(d), expect)


def test_prune_drops_a_clearly_worse_class_but_not_equal_ones(rng: np.random.Generator) -> None:
    n = 20  # min_trials
    shared = rng.normal(size=(n, 1))  # trial-to-trial variation common to all classes
    e = shared + 0.1 * rng.normal(size=(n, 3))
    e[:, 2] += 1.0
    assert prune(e, np.ones(3, bool), 2e-3).tolist() == [True, True, False]
    # A dropped class stays dropped; a class no longer in play is ignored (NaN column).
    e2 = e.copy()
    e2[:, 2] = np.nan
    assert prune(e2, np.array([True, True, False]), 2e-3).tolist() == [True, True, False]
    # Identical columns: p is NaN, nothing is dropped.
    assert prune(np.repeat(e[:, :1], 3, axis=1), np.ones(3, bool)).all()


# --------------------------------------------------------------------------------- decision rule
class _FakeVAE(torch.nn.Module):
    """Encodes every image to the zero latent, so that the true eps is z_t / sqrt(1 - abar_t)."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.shape = (channels, size, size)
        self.config = types.SimpleNamespace(scaling_factor=1.0)
        self.dtype = torch.float32

    def encode(self, x: torch.Tensor) -> types.SimpleNamespace:
        z = torch.zeros(x.shape[0], *self.shape)
        return types.SimpleNamespace(latent_dist=types.SimpleNamespace(mean=z, std=z))


class _OracleUNet(torch.nn.Module):
    """Predicts the true noise plus noise scaled per class (read from the one-hot conditioning)."""

    def __init__(self, real: torch.nn.Module, abar: torch.Tensor, scales: list[float]) -> None:
        super().__init__()
        self.real = real  # for .config, .dtype and parameters()
        self.config = real.config
        self.abar = abar
        self.scales = torch.tensor(scales)
        self.k = len(scales)
        self.conds: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(123)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor) -> types.SimpleNamespace:
        self.conds.append(encoder_hidden_states.clone())
        cls = encoder_hidden_states[:, 0, : self.k].argmax(1)
        eps = sample / torch.sqrt(1 - self.abar[timestep]).view(-1, 1, 1, 1)
        noise = torch.randn(sample.shape, generator=self.gen)
        return types.SimpleNamespace(sample=eps + self.scales[cls].view(-1, 1, 1, 1) * noise)


def _oracle_model(scales: list[float]) -> DiffusionModel:
    real = DiffusionModel.build(NAMES, TINY, seed=0)
    unet = _OracleUNet(real.unet, real.scheduler.alphas_cumprod, scales)
    vae = _FakeVAE(TINY.latent_channels, TINY.latent_size)
    return DiffusionModel(vae, unet, real.scheduler, NAMES, TINY)


def test_the_worse_class_loses_and_is_pruned(images: np.ndarray) -> None:
    m = _oracle_model([0.0, 0.3, 1.0])
    cfg = ClassifyConfig(max_trials=200, tta=False, batch_size=8, seed=3)
    r = classify(m, images[:3], cfg, progress=False)
    assert (r.prediction == 0).all()
    assert r.remaining[:, 0].all() and not r.remaining[:, 1:].any()
    assert (r.n_trials < 200).all() and (r.n_trials >= cfg.min_trials).all()
    # Each trial costs one evaluation per class in play.
    np.testing.assert_array_equal(r.n_evals, r.class_trials.sum(1))
    assert (r.class_trials[:, 0] == r.n_trials).all()
    assert (r.scores[:, 2] > r.scores[:, 1]).all() and (r.scores[:, 1] > r.scores[:, 0]).all()
    # Error maps: zero for the perfect class and outside the mask, nonzero for the noisy one.
    mask = latent_mask(TINY.latent_size, default_mask_radius(TINY.latent_size))
    assert np.abs(r.error_maps[:, 0]).max() < 1e-5
    assert np.abs(r.error_maps[..., ~mask]).max() == 0
    assert np.abs(r.error_maps[:, 2][..., mask]).mean() > 0.01
    # The conditioning layout: one-hot in the first K entries, zeros after, same for every token.
    cond = torch.cat(m.unet.conds)
    assert cond.shape[1:] == (TINY.n_tokens, TINY.token_dim)
    assert torch.equal(cond[:, 0], cond[:, 1])
    assert torch.all(cond[:, 0, :3].sum(1) == 1) and torch.all(cond[:, 0, 3:] == 0)


def test_unpruned_run_gives_every_class_every_trial(images: np.ndarray) -> None:
    m = _oracle_model([0.5, 0.5, 2.0])
    cfg = ClassifyConfig(max_trials=30, pruning=False, tta=False, batch_size=16)
    r = classify(m, images, cfg, progress=False)
    assert (r.n_trials == 30).all() and (r.n_evals == 90).all() and r.remaining.all()
    assert np.isin(r.prediction, [0, 1]).all()
    assert (np.argmax(r.scores, axis=1) == 2).all()


@pytest.mark.parametrize("weighting", ["uniform", "snr", "exp", "normalise", "ranking"])
def test_weightings_run(images: np.ndarray, weighting: str) -> None:
    m = _oracle_model([0.0, 0.3, 1.0])
    r = classify(m, images[:2], ClassifyConfig(max_trials=40, tta=False, weighting=weighting),
                 progress=False)
    assert (r.prediction == 0).all()


# --------------------------------------------------------------------------------- engine
def test_batched_engine_matches_batch_size_one(model: DiffusionModel, images: np.ndarray) -> None:
    cfg = ClassifyConfig(max_trials=16, min_trials=6, p_threshold=0.2, seed=5, batch_size=1)
    r1 = classify(model, images[:4], cfg, progress=False)
    r7 = classify(model, images[:4], cfg.replace(batch_size=7), progress=False)
    np.testing.assert_array_equal(r1.n_trials, r7.n_trials)
    np.testing.assert_array_equal(r1.remaining, r7.remaining)
    np.testing.assert_array_equal(r1.prediction, r7.prediction)
    np.testing.assert_allclose(r1.trial_errors, r7.trial_errors, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r1.error_maps, r7.error_maps, rtol=1e-3, atol=1e-5)
    # The generous p threshold prunes some classes, so images finish at different times.
    assert r1.n_evals.sum() < 16 * 3 * 4


def test_same_seed_same_result_other_seed_differs(model: DiffusionModel, images: np.ndarray) -> None:
    cfg = ClassifyConfig(max_trials=8, min_trials=4, batch_size=6, seed=0)
    a = classify(model, images[:3], cfg, progress=False)
    b = classify(model, images[:3], cfg, progress=False)
    c = classify(model, images[:3], cfg.replace(seed=1), progress=False)
    np.testing.assert_array_equal(a.trial_errors, b.trial_errors)
    np.testing.assert_array_equal(a.prediction, b.prediction)
    assert not np.allclose(a.trial_errors, c.trial_errors)
    # The stratified grid: 8 distinct timesteps covering [1, 999], shared by all images.
    t = a.image_timesteps(0)
    assert sorted(t) == sorted(np.rint(np.linspace(1, 999, 8)).astype(int))
    np.testing.assert_array_equal(t, a.image_timesteps(2))


def test_input_validation(model: DiffusionModel, images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="16x16"):
        classify(model, np.zeros((1, 32, 32, 3), np.uint8), progress=False)
    with pytest.raises(ValueError, match="uint8"):
        classify(model, images.astype(float), progress=False)
    ds = CellDataset(images, np.zeros(len(images), int), ("x", "y", "z"))
    with pytest.raises(ValueError, match="select_classes"):
        classify(model, ds, progress=False)
    with pytest.raises(ValueError, match="max_trials"):
        ClassifyConfig(min_trials=30, max_trials=20)


# --------------------------------------------------------------------------------- result
def _hand_result() -> ClassificationResult:
    # Image 0: 3 trials; class c dropped after the first. Image 1: 2 trials, all classes.
    errors = np.array([
        [1.0, 2.0, 4.0],
        [2.0, 1.0, np.nan],
        [1.0, 3.0, np.nan],
        [5.0, 3.0, 4.0],
        [3.0, 1.0, 2.0],
    ], np.float32)
    return ClassificationResult(
        class_names=NAMES, config=ClassifyConfig(tta=False), trial_errors=errors,
        trial_timesteps=np.array([10, 20, 30, 10, 20]), trial_weights=np.ones(5),
        n_trials=np.array([3, 2]), n_evals=np.array([7, 6]),
        remaining=np.array([[True, True, False], [True, True, True]]), labels=np.array([0, 2]),
    )


def test_result_views_by_hand() -> None:
    r = _hand_result()
    # Min-subtracted rows: [0, 1, 3], [1, 0, -], [0, 2, -] -> means [1/3, 1, 3];
    # image 1: [2, 0, 1], [2, 0, 1] -> [2, 0, 1].
    np.testing.assert_allclose(r.mean_errors, [[1 / 3, 1, 3], [2, 0, 1]], rtol=1e-6)
    np.testing.assert_allclose(r.scores[0], np.array([1 / 3, 1, 3]) / (13 / 9), rtol=1e-6)
    np.testing.assert_allclose(r.scores[1], [2, 0, 1], rtol=1e-6)
    np.testing.assert_array_equal(r.prediction, [0, 1])
    assert list(r.prediction_names) == ["a", "b"]
    assert r.accuracy == 0.5 and r.balanced_accuracy == 0.5
    np.testing.assert_array_equal(r.class_trials, [[3, 3, 1], [2, 2, 2]])
    margins = [(1 - 1 / 3) / (13 / 9), 1.0]
    np.testing.assert_allclose(r.margin, margins, rtol=1e-6)
    np.testing.assert_allclose(r.confidence, [0, 1])
    assert r.errors.shape == (2, 3, 3) and np.isnan(r.errors[1, 2]).all()
    np.testing.assert_array_equal(r.timesteps[1], [10, 20, -1])
    df = r.to_frame()
    assert list(df["predicted"]) == ["a", "b"] and list(df["true"]) == ["a", "c"]
    assert {"confidence", "zeta", "n_trials", "n_evals", "score_a", "score_c"} <= set(df.columns)
    np.testing.assert_allclose(df["zeta"], r.zeta)
    sub = r.subset([1])
    np.testing.assert_allclose(sub.scores, r.scores[[1]])
    assert sub.n_trials.tolist() == [2] and sub.labels.tolist() == [2]


def test_save_load_round_trip(tmp_path, model: DiffusionModel, images: np.ndarray) -> None:
    r = classify(model, images[:3], ClassifyConfig(max_trials=6, min_trials=3, batch_size=9),
                 labels=np.array([0, 1, 2]), progress=False)
    path = r.save(tmp_path / "r.npz")
    s = ClassificationResult.load(path)
    assert s.config == r.config and s.class_names == r.class_names
    for name in ("trial_errors", "trial_timesteps", "trial_weights", "n_trials", "n_evals",
                 "remaining", "labels", "error_maps"):
        np.testing.assert_array_equal(getattr(s, name), getattr(r, name))
    np.testing.assert_array_equal(s.prediction, r.prediction)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
        arrays = {k: data[k] for k in data.files}
    arrays["format_version"] = np.asarray(999)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(ValueError, match="version 999"):
        ClassificationResult.load(tmp_path / "old.npz")


class _PatternVAE(torch.nn.Module):
    """Encodes an image to its 2x2-pooled bright/dark pattern (equivariant under flips and
    rotations by 90 degrees, and unchanged by colour jitter on black-and-white images)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.config = types.SimpleNamespace(scaling_factor=1.0)
        self.dtype = torch.float32
        self.last: torch.Tensor | None = None

    def encode(self, x: torch.Tensor) -> types.SimpleNamespace:
        bright = (x[:, :1] > x.mean(dim=(1, 2, 3), keepdim=True)).float()
        z = torch.nn.functional.avg_pool2d(bright, 2).repeat(1, self.channels, 1, 1)
        self.last = z
        return types.SimpleNamespace(latent_dist=types.SimpleNamespace(mean=z, std=0 * z))


class _PatternUNet(_OracleUNet):
    """eps - eps_theta = scale_c * z0 exactly (one image in flight at a time)."""

    def __init__(self, real: torch.nn.Module, abar: torch.Tensor, scales: list[float],
                 vae: _PatternVAE) -> None:
        super().__init__(real, abar, scales)
        self.vae = vae

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor) -> types.SimpleNamespace:
        assert self.vae.last is not None and self.vae.last.shape[0] == 1
        z0 = self.vae.last
        cls = encoder_hidden_states[:, 0, : self.k].argmax(1)
        a = torch.sqrt(self.abar[timestep]).view(-1, 1, 1, 1)
        b = torch.sqrt(1 - self.abar[timestep]).view(-1, 1, 1, 1)
        eps = (sample - a * z0) / b
        return types.SimpleNamespace(sample=eps - self.scales[cls].view(-1, 1, 1, 1) * z0)


def test_tta_error_maps_are_rotated_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # An asymmetric black-and-white pattern of 2x2 blocks: its latent rotates with the image.
    blocks = np.zeros((8, 8), np.uint8)
    blocks[1:4, 1:3] = 255
    blocks[2, 5:7] = 255
    blocks[5:7, 4] = 255
    img = np.repeat(np.repeat(blocks, 2, 0), 2, 1)[None, :, :, None].repeat(3, -1)
    real = DiffusionModel.build(NAMES, TINY, seed=0)
    vae = _PatternVAE(TINY.latent_channels)
    unet = _PatternUNet(real.unet, real.scheduler.alphas_cumprod, [0.0, 1.0, 0.5], vae)
    m = DiffusionModel(vae, unet, real.scheduler, NAMES, TINY)
    cfg = ClassifyConfig(max_trials=12, min_trials=12, pruning=False, tta_rotation="right",
                         batch_size=3, seed=2)
    r = classify(m, img, cfg, progress=False)
    mask = latent_mask(TINY.latent_size, r.mask_radius)
    z0 = (blocks > 0).astype(np.float32) * mask
    np.testing.assert_allclose(r.error_maps[0, 0], 0, atol=1e-6)
    for c, scale in ((1, 1.0), (2, 0.5)):
        np.testing.assert_allclose(r.error_maps[0, c], scale * np.broadcast_to(z0, (4, 8, 8)),
                                   atol=1e-5)
    assert (r.prediction == 0).all()
    # The augmentations did happen: without undoing them the maps come out wrong.
    import cytoviz.augment

    monkeypatch.setattr(cytoviz.augment, "invert_geometry", lambda x, params: x)
    r_wrong = classify(m, img, cfg, progress=False)
    assert np.abs(r_wrong.error_maps[0, 1] - z0).max() > 0.5


# --------------------------------------------------------------------------------- CLI
def test_cli_classify_and_refit(tmp_path, model: DiffusionModel, images: np.ndarray) -> None:
    import pandas as pd

    from cytoviz._io import load_json
    from cytoviz.cli import main

    model.save_pretrained(tmp_path / "model")
    CellDataset(images, np.array([0, 1, 2, 0, 1]), NAMES).save(tmp_path / "test.npz")
    out = tmp_path / "out"
    rc = main(["classify", "--model", str(tmp_path / "model"), "--data", str(tmp_path),
               "--split", "test", "--out", str(out), "--max-trials", "12", "--min-trials", "5",
               "--no-pruning", "--no-tta", "--batch-size", "8", "--limit", "4", "--quiet"])
    assert rc == 0
    df = pd.read_csv(out / "predictions.csv")
    assert len(df) == 4 and set(df["true"]) <= set(NAMES)
    r = ClassificationResult.load(out / "result.npz")
    assert not r.config.tta and not r.config.pruning and (r.n_trials == 12).all()
    assert list(df["predicted"]) == list(r.prediction_names)
    rc = main(["refit-weighting", "--result", str(out / "result.npz"), "--out",
               str(tmp_path / "w.json"), "--degree", "2"])
    assert rc == 0
    w = load_json(tmp_path / "w.json")
    assert w["weighting"] == "polynomial" and len(w["poly_coeffs"]) == 3
    rc = main(["classify", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "test.npz"),
               "--out", str(out), "--overwrite", "--max-trials", "6", "--min-trials", "3", "--no-tta",
               "--weighting-file", str(tmp_path / "w.json"), "--quiet", "--mask-radius", "2",
               "--encode-precision", "bfloat16"])
    assert rc == 0
    r = ClassificationResult.load(out / "result.npz")
    assert r.config.poly_coeffs == tuple(w["poly_coeffs"])
    assert r.mask_radius == 2 and r.config.encode_precision == "bfloat16"
    assert main(["classify", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "test.npz"),
                 "--out", str(out), "--mask-radius", "0", "--quiet"]) == 2
    assert main(["classify", "--model", str(tmp_path / "nope"), "--data", "x.npz",
                 "--out", str(out)]) == 2


# --------------------------------------------------------------------------------- chunks, resume
def test_chunks_with_first_index_match_one_call(model: DiffusionModel, images: np.ndarray) -> None:
    cfg = ClassifyConfig(max_trials=8, min_trials=4, p_threshold=0.3, batch_size=5, seed=3)
    whole = classify(model, images, cfg, progress=False)
    parts = [classify(model, images[lo:hi], cfg, progress=False, first_index=lo)
             for lo, hi in ((0, 2), (2, 5))]
    joined = ClassificationResult.concat(parts)
    np.testing.assert_array_equal(joined.n_trials, whole.n_trials)
    np.testing.assert_array_equal(joined.remaining, whole.remaining)
    np.testing.assert_array_equal(joined.prediction, whole.prediction)
    np.testing.assert_array_equal(joined.trial_timesteps, whole.trial_timesteps)
    # Other images share the UNet batches, so the errors agree up to float32 rounding.
    np.testing.assert_allclose(joined.trial_errors, whole.trial_errors, rtol=1e-5, atol=1e-7)
    # Without first_index the second chunk replays images 0.. streams: different draws.
    wrong = classify(model, images[2:5], cfg, progress=False)
    assert not np.allclose(wrong.trial_errors[:4], whole.image_errors(2)[:4], equal_nan=True)
    seen: list[int] = []
    classify(model, images[:3], cfg, progress=False, image_callback=seen.append)
    assert sorted(seen) == [0, 1, 2]
    with pytest.raises(ValueError, match="first_index"):
        classify(model, images, cfg, progress=False, first_index=-1)


def test_concat_inverts_subset() -> None:
    r = _hand_result()
    joined = ClassificationResult.concat([r.subset([0]), r.subset([1]), r.subset([0, 1])])
    assert len(joined) == 4
    for name in ("trial_errors", "trial_timesteps", "n_trials", "n_evals", "remaining", "labels"):
        np.testing.assert_array_equal(getattr(joined, name),
                                      getattr(r.subset([0, 1, 0, 1]), name))
    np.testing.assert_allclose(joined.scores[:2], r.scores)
    np.testing.assert_array_equal(ClassificationResult.concat([r]).trial_errors, r.trial_errors)
    with pytest.raises(ValueError, match="at least one"):
        ClassificationResult.concat([])
    other = dataclasses.replace(r, config=r.config.replace(seed=9))
    with pytest.raises(ValueError, match=r"results\[1\] differs .* config"):
        ClassificationResult.concat([r, other])
    with pytest.raises(ValueError, match="labels"):
        ClassificationResult.concat([r, dataclasses.replace(r, labels=None)])


def _classify_argv(model_dir, data, out, *extra: str) -> list[str]:
    return ["classify", "--model", str(model_dir), "--data", str(data), "--out", str(out),
            "--max-trials", "6", "--min-trials", "3", "--p-threshold", "0.2", "--batch-size", "6",
            "--seed", "4", "--chunk-size", "2", "--quiet", *extra]


def test_cli_classify_resumes_after_sigkill(tmp_path, model: DiffusionModel,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Kill `cytoviz classify` after its first chunk; the rerun finishes with the same result."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    from cytoviz.cli import build_parser, main
    from cytoviz.diffusion._classify_cli import _run_classify
    from cytoviz.diffusion.resumable import PARTIAL_DIR

    model.save_pretrained(tmp_path / "model")
    imgs = np.random.default_rng(7).integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
    data = tmp_path / "cells.npz"
    CellDataset(imgs, np.arange(8) % 3, NAMES).save(data)

    # The reference: an uninterrupted run of the same command.
    assert main(_classify_argv(tmp_path / "model", data, tmp_path / "ref")) == 0
    ref = ClassificationResult.load(tmp_path / "ref" / "result.npz")
    assert not (tmp_path / "ref" / PARTIAL_DIR).exists()

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cytoviz.cli", *_classify_argv(tmp_path / "model", data, out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = out / PARTIAL_DIR / "chunk-00000.npz"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), proc.stdout.read().decode() if proc.stdout else ""
    assert proc.returncode == -signal.SIGKILL
    chunks = sorted((out / PARTIAL_DIR).glob("chunk-*.npz"))
    assert 1 <= len(chunks) < 4 and not (out / "result.npz").exists()

    # Other settings or other input are refused, naming what differs; nothing is touched.
    argv = _classify_argv(tmp_path / "model", data, out)
    argv[argv.index("--max-trials") + 1] = "9"
    with pytest.raises(ValueError, match=r"max_trials 6 then, 9 now.*Delete .*result\.partial"):
        _run_classify(build_parser().parse_args(argv))
    with pytest.raises(ValueError, match="the input images differ"):
        _run_classify(build_parser().parse_args(
            _classify_argv(tmp_path / "model", data, out, "--limit", "7")))
    assert sorted((out / PARTIAL_DIR).glob("chunk-*.npz")) == chunks

    # The same command again (in this process, also on one thread) resumes and finishes.
    assert main(_classify_argv(tmp_path / "model", data, out)) == 0
    assert f"{len(chunks)} of 4 chunks done" in capsys.readouterr().out
    assert not (out / PARTIAL_DIR).exists()
    r = ClassificationResult.load(out / "result.npz")
    # Same chunks, same batches, same thread count: bit-identical, not just close.
    for name in ("trial_errors", "trial_timesteps", "trial_weights", "n_trials", "n_evals",
                 "remaining", "labels", "error_maps"):
        np.testing.assert_array_equal(getattr(r, name), getattr(ref, name), err_msg=name)
    np.testing.assert_array_equal(r.prediction, ref.prediction)
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"),
                                  pd.read_csv(tmp_path / "ref" / "predictions.csv"))


def test_classify_to_folder_resumes_a_partial_run(tmp_path, model: DiffusionModel,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The library function: a run stopped after its first chunk, resumed, equals one run."""
    import cytoviz.diffusion.resumable as resumable
    from cytoviz.diffusion import classify_to_folder

    imgs = np.random.default_rng(8).integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    data = CellDataset(imgs, np.arange(5) % 3, NAMES)
    cfg = ClassifyConfig(max_trials=6, min_trials=3, p_threshold=0.2, batch_size=6, seed=4)
    ref = classify_to_folder(model, data, tmp_path / "ref", config=cfg, chunk_size=2,
                             progress=False)
    assert (tmp_path / "ref" / "result.npz").is_file()
    assert not (tmp_path / "ref" / resumable.PARTIAL_DIR).exists()

    calls = []
    real = resumable.classify

    def interrupted(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # killed while classifying the second chunk
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(resumable, "classify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        classify_to_folder(model, data, tmp_path / "out", config=cfg, chunk_size=2,
                           progress=False)
    partial = tmp_path / "out" / resumable.PARTIAL_DIR
    assert [p.name for p in sorted(partial.glob("chunk-*.npz"))] == ["chunk-00000.npz"]
    with pytest.raises(ValueError, match="seed 4 then, 5 now"):
        classify_to_folder(model, data, tmp_path / "out", config=cfg.replace(seed=5),
                           chunk_size=2, progress=False)

    monkeypatch.setattr(resumable, "classify", real)
    r = classify_to_folder(model, data, tmp_path / "out", config=cfg, chunk_size=2,
                           progress=False)
    assert "1 of 3 chunks done" in capsys.readouterr().out
    assert not partial.exists()
    for name in ("trial_errors", "trial_timesteps", "n_trials", "n_evals", "remaining", "labels",
                 "error_maps"):
        np.testing.assert_array_equal(getattr(r, name), getattr(ref, name), err_msg=name)
    saved = ClassificationResult.load(tmp_path / "out" / "result.npz")
    np.testing.assert_array_equal(saved.trial_errors, r.trial_errors)
    # One classify call over all images draws the same randomness (first_index per chunk).
    whole = classify(model, data, cfg, progress=False)
    np.testing.assert_array_equal(r.n_trials, whole.n_trials)
    np.testing.assert_allclose(r.trial_errors, whole.trial_errors, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- encode precision
def test_encode_precision_resolution_and_validation(model: DiffusionModel,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from cytoviz.diffusion.classify_config import resolve_encode_precision

    with pytest.raises(ValueError, match="encode_precision"):
        ClassifyConfig(encode_precision="half")
    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda n=native: n)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert resolve_encode_precision("auto", "cpu", torch.float32) == expected
        assert ClassifyConfig(encode_precision="auto").resolved(model).encode_precision == expected
        # The default is the reference code's float32 encode on any machine.
        assert ClassifyConfig().resolved(model).encode_precision == "float32"
    # An explicit choice is kept; a half-precision VAE or a GPU is never autocast by "auto".
    assert resolve_encode_precision("float32", "cpu", torch.float32) == "float32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_encode_precision("auto", "cpu", torch.float16) == "float32"
    assert resolve_encode_precision("auto", "cuda", torch.float32) == "float32"


def test_bfloat16_encode_is_close_to_float32(model: DiffusionModel, images: np.ndarray) -> None:
    cfg = ClassifyConfig(max_trials=12, min_trials=12, pruning=False, seed=2)
    a = classify(model, images, cfg.replace(encode_precision="float32"), progress=False)
    b = classify(model, images, cfg.replace(encode_precision="bfloat16"), progress=False)
    # The result records the resolved precision, so saved runs say what they used.
    assert a.config.encode_precision == "float32" and b.config.encode_precision == "bfloat16"
    # Same noise, timesteps and augmentation; only the encode's rounding differs.
    assert not np.array_equal(a.trial_errors, b.trial_errors)
    np.testing.assert_allclose(a.trial_errors, b.trial_errors, rtol=0.05, atol=1e-3)
    assert np.corrcoef(a.trial_errors.ravel(), b.trial_errors.ravel())[0, 1] > 0.999
