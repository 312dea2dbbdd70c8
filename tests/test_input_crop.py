"""ModelConfig.input_crop: a model that sees only the centre of its images, at every entry point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cytoviz.data import MASK_NAMES, CellDataset
from cytoviz.data.synth import SynthConfig, synthesize
from cytoviz.diffusion import ClassifyConfig, DiffusionModel, ModelConfig, classify
from cytoviz.diffusion.train import TrainConfig, train, validation_loss

NAMES = ("dark", "bright")
CROP = ModelConfig.smallest(image_size=24, input_crop=16)  # the tiny model on 24 px images
FAST = ClassifyConfig(min_trials=2, max_trials=4, batch_size=8)


@pytest.fixture(scope="module")
def model() -> DiffusionModel:
    return DiffusionModel.build(NAMES, CROP, seed=0).eval()


def _data(n: int = 8, size: int = 24, seed: int = 0) -> CellDataset:
    """Two classes that differ in the colour of a centred disc (inside the central 16 px)."""
    rng = np.random.default_rng(seed)
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - c) ** 2 + (xx - c) ** 2 < 25
    labels = np.arange(n) % 2
    images = np.full((n, size, size, 3), 220, dtype=np.uint8)
    for i, y in enumerate(labels):
        images[i][disc] = (60, 20, 90) if y == 0 else (240, 150, 200)
    images = np.clip(images.astype(int) + rng.integers(-8, 9, images.shape), 0, 255).astype(np.uint8)
    masks = np.broadcast_to(disc, (n, len(MASK_NAMES), size, size)).copy()
    return CellDataset(images, labels, NAMES, masks=masks)


# --------------------------------------------------------------------------------- data set
def test_centre_crop_takes_the_middle_pixels_and_masks() -> None:
    images = np.arange(3 * 8 * 8 * 3, dtype=np.uint8).reshape(3, 8, 8, 3)
    masks = np.zeros((3, 3, 8, 8), dtype=bool)
    masks[:, :, 3, 4] = True
    ds = CellDataset(images=images, labels=np.array([0, 1, 0]), class_names=("a", "b"), masks=masks)
    out = ds.centre_crop(4)
    assert out.images.shape == (3, 4, 4, 3)
    np.testing.assert_array_equal(out.images, ds.images[:, 2:6, 2:6])
    assert out.masks.shape == (3, 3, 4, 4)
    assert out.masks[:, :, 1, 2].all() and out.masks.sum() == 9
    np.testing.assert_array_equal(out.labels, ds.labels)
    assert ds.centre_crop(8) is ds
    with pytest.raises(ValueError, match=r"crop size 10 must lie in \[1, 8\]"):
        ds.centre_crop(10)


def test_first_per_class_is_deterministic_and_balanced() -> None:
    ds = CellDataset(images=np.arange(6, dtype=np.uint8).repeat(48).reshape(6, 4, 4, 3),
                     labels=np.array([1, 0, 1, 0, 1, 0]), class_names=("a", "b", "c"))
    sub = ds.first_per_class(2)
    np.testing.assert_array_equal(sub.labels, [1, 0, 1, 0])
    np.testing.assert_array_equal(sub.images[:, 0, 0, 0], [0, 1, 2, 3])
    assert len(ds.first_per_class(0)) == 0
    with pytest.raises(ValueError, match="non-negative"):
        ds.first_per_class(-1)


@pytest.mark.parametrize("domain", [None, "mild", "strong"])
def test_synthetic_cells_fit_in_the_32_px_crop(domain) -> None:
    """Why the default model may crop 64 px images to 32: synthetic cells of any class and domain
    lie in the central half (at most 2 % of a cell's pixels outside; the mild shift magnifies
    by 1.08, so its largest cells touch the edge)."""
    ds = synthesize(30, config=SynthConfig(image_size=64), domain=domain, seed=1)
    parts = [MASK_NAMES.index("nucleus"), MASK_NAMES.index("cytoplasm")]
    cell = ds.masks[:, parts].any(axis=1).sum(axis=(1, 2))
    assert cell.min() > 0
    kept = ds.centre_crop(32).masks[:, parts].any(axis=1).sum(axis=(1, 2))
    assert (1 - kept / cell).max() <= 0.02
    # and the check can fail: a 24 px crop cuts cells
    small = ds.centre_crop(24).masks[:, parts].any(axis=1).sum(axis=(1, 2))
    assert (1 - small / cell).max() > 0.02


# --------------------------------------------------------------------------------- config
def test_config_sizes_validation_and_round_trip(tmp_path) -> None:
    assert (CROP.vae_size, CROP.latent_size) == (16, 8)
    assert ModelConfig().vae_size == 64 and ModelConfig().input_crop is None
    with pytest.raises(ValueError, match="input_crop 32 must lie in"):
        ModelConfig(image_size=24, input_crop=32, vae_channels=(8, 16))
    with pytest.raises(ValueError, match="even margin"):
        ModelConfig(image_size=25, input_crop=16, vae_channels=(8, 16))
    with pytest.raises(ValueError, match="input_crop 18 must be >= 8 and divisible by 4"):
        ModelConfig(image_size=24, input_crop=18, vae_channels=(8, 16, 16))
    assert ModelConfig.from_dict(CROP.to_dict()) == CROP
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "input_crop"}
    assert ModelConfig.from_dict(old).input_crop is None  # model folders saved before the field


def test_build_save_load_keep_the_crop(tmp_path, model: DiffusionModel) -> None:
    assert model.vae.config.sample_size == 16 and model.unet.config.sample_size == 8
    assert "24px (centre 16px) -> latent 4x8x8" in repr(model)
    loaded = DiffusionModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert loaded.config == CROP


def test_crop_input_sizes_and_errors(model: DiffusionModel) -> None:
    ds = _data(3)
    arr = model.crop_input(ds.images)
    np.testing.assert_array_equal(arr, ds.images[:, 4:20, 4:20])
    assert model.crop_input(arr) is arr  # already what the model sees
    cropped = model.crop_input(ds)
    assert cropped.images.shape[1:3] == (16, 16) and cropped.masks.shape[2:] == (16, 16)
    with pytest.raises(ValueError, match=r"20x20 px but the model takes 24x24 px images \(it "
                       r"sees their centre 16 px\) or 16x16 px crops"):
        model.crop_input(np.zeros((1, 20, 20, 3), np.uint8))
    plain = DiffusionModel.build(NAMES, CROP.replace(input_crop=None), seed=0)
    assert plain.crop_input(ds.images) is ds.images
    with pytest.raises(ValueError, match="takes 24x24 px;"):
        plain.crop_input(arr)


# --------------------------------------------------------------------------------- classify
def test_classify_sees_only_the_crop(model: DiffusionModel) -> None:
    ds = _data(4)
    full = classify(model, ds, FAST, progress=False)
    pre = classify(model, model.crop_input(ds), FAST, progress=False)
    np.testing.assert_array_equal(full.trial_errors, pre.trial_errors)
    assert full.error_maps.shape[-1] == 8
    # pixels outside the crop change nothing; pixels inside do
    outside = ds.images.copy()
    outside[:, :3] = 0
    np.testing.assert_array_equal(classify(model, outside, FAST, progress=False).trial_errors,
                                  full.trial_errors)
    inside = ds.images.copy()
    inside[:, 10:12] = 0
    assert not np.array_equal(classify(model, inside, FAST, progress=False).trial_errors,
                              full.trial_errors)


def test_heatmaps_and_generation_are_crop_sized(model: DiffusionModel) -> None:
    from cytoviz.diffusion import GenerateConfig, generate
    from cytoviz.heatmaps import classify_for_heatmaps, counterfactual_heatmaps, heatmap_energy

    ds = _data(2)
    res = classify_for_heatmaps(model, ds, trials=2, progress=False)
    heat = counterfactual_heatmaps(res, model, ds)
    assert heat.heatmaps.shape == (2, 2, 16, 16, 3)
    np.testing.assert_array_equal(heat.images, ds.images[:, 4:20, 4:20])
    cropped = heatmap_energy(heat, model.crop_input(ds).masks)
    assert len(cropped) == 2
    # masks of the classified (uncropped) images are cropped the same way
    assert heatmap_energy(heat, ds.masks).equals(cropped)
    with pytest.raises(ValueError, match=r"masks must have shape \(2, 3, 16, 16\)"):
        heatmap_energy(heat, ds.masks[..., :20, :20][..., 1:, 1:])
    gen = generate(model, "bright", 2, config=GenerateConfig(num_inference_steps=2), progress=False)
    assert gen.images.shape == (2, 16, 16, 3)
    assert classify(model, gen, FAST, progress=False).n_trials.min() >= 2  # classifiable as is


# --------------------------------------------------------------------------------- training
def _train_config(**changes) -> TrainConfig:
    base = dict(steps=2, vae_steps=1, batch_size=4, vae_batch_size=4, warmup_steps=1,
                checkpoint_every=100, val_every=0, val_images=4, val_accuracy_images=2,
                val_accuracy_trials=2, log_every=1, augment=None)
    base.update(changes)
    return TrainConfig(**base)


def test_training_and_validation_loss_on_the_crop(tmp_path) -> None:
    data, val = _data(8), _data(4, seed=1)
    m = DiffusionModel.build(NAMES, CROP, seed=0)
    out = train(m, data, val, config=_train_config(), out_dir=tmp_path / "run", progress=False)
    hist = (tmp_path / "run" / "history.json").read_text()
    assert "val_accuracy" in hist  # the classifier ran on the (cropped) validation images
    loaded = DiffusionModel.from_pretrained(tmp_path / "run" / "model")
    assert loaded.config.input_crop == 16
    a = validation_loss(out, val, seed=0)
    assert a == pytest.approx(validation_loss(out, out.crop_input(val), seed=0), rel=1e-6)
    # the same run on pre-cropped images gives the same weights
    m2 = DiffusionModel.build(NAMES, CROP, seed=0)
    out2 = train(m2, out.crop_input(data), None, config=_train_config(val_accuracy_images=0),
                 out_dir=tmp_path / "run2", progress=False)
    for k, v in out.unet.state_dict().items():
        assert torch.equal(v, out2.unet.state_dict()[k]), k
    with pytest.raises(ValueError, match="the training data: images are 20x20 px"):
        train(m2, _data(4, size=20), None, config=_train_config(), out_dir=tmp_path / "bad")


def test_cli_input_crop_and_vae_channels(tmp_path, capsys) -> None:
    from cytoviz.cli import main

    path = _data(8).save(tmp_path / "cells.npz")
    args = ["train", "--data", str(path), "--out", str(tmp_path / "run"), "--steps", "1",
            "--vae-steps", "1", "--batch-size", "2", "--no-augment", "--quiet",
            "--val-accuracy-images", "0", "--val-fraction", "0.25"]
    assert main([*args, "--input-crop", "16", "--vae-channels", "8,16"]) == 0
    cfg = DiffusionModel.from_pretrained(tmp_path / "run" / "model").config
    assert (cfg.image_size, cfg.input_crop, cfg.vae_channels, cfg.latent_size) == (24, 16, (8, 16), 8)
    assert main([*args, "--vae-channels", "8,x"]) == 2
    assert "--vae-channels must be comma-separated integers" in capsys.readouterr().err
    assert main([*args, "--input-crop", "30"]) == 2
    assert "input_crop 30 must lie in" in capsys.readouterr().err


# --------------------------------------------------------------------------------- downstream
def test_real_and_generated_cells_must_match_in_size() -> None:
    from cytoviz.authenticity import build_quiz
    from cytoviz.evaluation.augmentation import augmentation_curve

    real, small = _data(4), _data(4).centre_crop(16)
    with pytest.raises(ValueError, match=r"model.crop_input\(real\)"):
        build_quiz(real, small, n_each=2)
    assert len(build_quiz(real.centre_crop(16), small, n_each=2).key) == 4
    with pytest.raises(ValueError, match=r"generated images are 16 px, the real ones 24 px"):
        augmentation_curve(None, real, real, ks=[1], generated=small)
