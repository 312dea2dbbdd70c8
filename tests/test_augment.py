"""Tests for cytoviz.augment: invertible geometry, determinism, value ranges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cytoviz.augment import (
    AugmentConfig,
    GeometryParams,
    apply_geometry,
    augment,
    augment_with_params,
    color_jitter,
    invert_geometry,
    random_zoom,
    sample_geometry,
    to_tensor,
    to_uint8,
)


def _smooth_images(n: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images (low-frequency), so that bilinear resampling is nearly lossless."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, 6, 6, generator=g) * 1.6 - 0.8
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return x.clamp(-1.0, 1.0)


def _disc(size: int, radius_fraction: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = (size - 1) / 2
    return ((yy - c) ** 2 + (xx - c) ** 2) <= (radius_fraction * size / 2) ** 2


def test_to_tensor_round_trip(rng: np.random.Generator) -> None:
    images = rng.integers(0, 256, size=(3, 10, 12, 3), dtype=np.uint8)
    x = to_tensor(images)
    assert x.shape == (3, 3, 10, 12)
    assert x.dtype == torch.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    np.testing.assert_array_equal(to_uint8(x), images)
    assert to_tensor(images[0]).shape == (1, 3, 10, 12)


def test_to_tensor_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(np.zeros((1, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_tensor(np.zeros((1, 4, 4, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="to_tensor"):
        augment(np.zeros((1, 4, 4, 3), dtype=np.uint8), AugmentConfig())  # type: ignore[arg-type]


def test_config_validation_and_round_trip(tmp_path) -> None:
    with pytest.raises(ValueError, match="flip_p"):
        AugmentConfig(flip_p=1.5)
    with pytest.raises(ValueError, match="rotation"):
        AugmentConfig(rotation=(10.0, 0.0))
    with pytest.raises(ValueError, match="hue"):
        AugmentConfig(color_jitter=(0.2, 0.2, 0.2, 0.7))
    with pytest.raises(ValueError, match="padding_mode"):
        AugmentConfig(padding_mode="wrap")
    cfg = AugmentConfig(rotation90=True, randaugment=True)
    assert AugmentConfig.load(cfg.save(tmp_path / "aug.json")) == cfg
    assert AugmentConfig.none().is_identity
    assert not AugmentConfig().is_identity


@pytest.mark.parametrize(("size", "max_ratio"), [(64, 0.05), (16, 0.2), (9, 0.4)])
def test_invert_geometry_recovers_central_disc(size: int, max_ratio: float) -> None:
    x = _smooth_images(12, 4, size, seed=size)
    g = torch.Generator().manual_seed(1)
    params = sample_geometry(12, AugmentConfig(), g)
    assert bool(params.hflip.any()) and bool((~params.hflip).any())
    y = apply_geometry(x, params)
    back = invert_geometry(y, params)
    disc = _disc(size, 0.7)
    # Error of not undoing the augmentation at all, measured on the same images.
    change = float((y - x).abs()[..., disc].mean())
    assert change > 0.1  # it really changed the images
    err = (back - x).abs()[..., disc]
    # Bilinear resampling twice loses detail only at the scale of a pixel, so the error
    # relative to the change shrinks as the image grows.
    assert float(err.mean()) < max_ratio * change, (float(err.mean()), change)
    if size >= 64:
        assert float(err.max()) < 0.05


def test_rotation90_and_flips_invert_exactly() -> None:
    x = torch.randn(16, 4, 7, 7)
    params = sample_geometry(16, AugmentConfig(rotation90=True), torch.Generator().manual_seed(3))
    assert set(params.angle.tolist()) <= {0.0, 90.0, 180.0, 270.0}
    assert len(set(params.angle.tolist())) > 1
    y = apply_geometry(x, params)
    torch.testing.assert_close(invert_geometry(y, params), x, rtol=0, atol=0)


def test_geometry_matches_numpy_conventions() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    one = GeometryParams.identity(1)
    hflip = GeometryParams(one.angle, torch.tensor([True]), one.vflip, one.transpose)
    np.testing.assert_array_equal(apply_geometry(x, hflip)[0, 0].numpy(), np.fliplr(x[0, 0].numpy()))
    rot = GeometryParams(torch.tensor([90.0]), one.hflip, one.vflip, one.transpose)
    # 90 degrees counter-clockwise, as numpy.rot90
    np.testing.assert_array_equal(apply_geometry(x, rot)[0, 0].numpy(), np.rot90(x[0, 0].numpy()))
    # a 90-degree angle through the interpolating path agrees with the exact path
    near = GeometryParams(torch.tensor([90.0 + 1e-4]), one.hflip, one.vflip, one.transpose)
    torch.testing.assert_close(apply_geometry(x, near), apply_geometry(x, rot), atol=1e-2, rtol=0)


def test_invert_on_latent_of_other_size() -> None:
    """Parameters drawn for images undo the same transform on smaller latents."""
    images = _smooth_images(6, 3, 32, seed=5)
    latents = torch.nn.functional.avg_pool2d(images, 4)  # a stand-in "encoder": 8 x 8
    params = sample_geometry(6, AugmentConfig(), torch.Generator().manual_seed(7))
    lat_of_aug = torch.nn.functional.avg_pool2d(apply_geometry(images, params), 4)
    back = invert_geometry(lat_of_aug, params)
    disc = _disc(8, 0.6)
    change = float((lat_of_aug - latents).abs()[..., disc].mean())
    err = float((back - latents).abs()[..., disc].mean())
    assert err < 0.3 * change, (err, change)


def test_augment_is_deterministic_by_seed_and_in_range() -> None:
    x = _smooth_images(5, 3, 32) * 1.2  # some values near the ends of the range
    x = x.clamp(-1, 1)
    cfg = AugmentConfig(randaugment=True)
    a = augment(x, cfg, generator=torch.Generator().manual_seed(11))
    b = augment(x, cfg, generator=torch.Generator().manual_seed(11))
    c = augment(x, cfg, generator=torch.Generator().manual_seed(12))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    assert a.shape == x.shape
    assert float(a.min()) >= -1.0 and float(a.max()) <= 1.0
    # the global torch RNG is not consumed or reseeded
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    augment(x, cfg, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(1), before)


def test_augment_with_identity_config_changes_nothing() -> None:
    x = _smooth_images(3, 3, 16)
    y, params = augment_with_params(x, AugmentConfig.none(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y, x.clamp(-1, 1), rtol=0, atol=1e-6)
    assert not bool(params.hflip.any()) and float(params.angle.abs().max()) == 0.0


def test_color_jitter_changes_colour_not_geometry() -> None:
    x = _smooth_images(8, 3, 16)
    g = torch.Generator().manual_seed(2)
    y = color_jitter(x, AugmentConfig(), g)
    assert y.shape == x.shape
    assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0
    per_image_change = (y - x).abs().mean(dim=(1, 2, 3))
    assert bool((per_image_change > 1e-3).all())
    only_b = AugmentConfig(color_jitter=(0.25, 0.0, 0.0, 0.0))
    yb = color_jitter(x, only_b, torch.Generator().manual_seed(2))
    # brightness is a per-image multiplicative factor on [0, 1] intensities
    x01, y01 = (x + 1) / 2, (yb + 1) / 2
    for i in range(8):
        keep = y01[i] < 0.999  # not clipped at white
        factor = float(y01[i][keep].sum() / x01[i][keep].sum())
        assert 0.75 - 1e-4 <= factor <= 1.25 + 1e-4
        torch.testing.assert_close(y01[i][keep], factor * x01[i][keep], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="RGB"):
        color_jitter(torch.zeros(1, 4, 8, 8), AugmentConfig(), g)


def test_color_jitter_probability() -> None:
    x = _smooth_images(20, 3, 8)
    y = color_jitter(x, AugmentConfig(color_jitter_p=0.5), torch.Generator().manual_seed(4))
    unchanged = torch.isclose(y, x, atol=1e-6).flatten(1).all(dim=1)
    assert 0 < int(unchanged.sum()) < 20


def test_params_indexing() -> None:
    params = sample_geometry(5, AugmentConfig(), torch.Generator().manual_seed(0))
    sub = params[1:3]
    assert len(sub) == 2 and len(params[4]) == 1
    torch.testing.assert_close(sub.angle, params.angle[1:3])
    with pytest.raises(ValueError, match="params are for"):
        apply_geometry(torch.zeros(3, 1, 4, 4), params)


def test_zoom_validation_and_switch() -> None:
    with pytest.raises(ValueError, match="zoom"):
        AugmentConfig(zoom=(1.2, 0.8))
    with pytest.raises(ValueError, match="zoom"):
        AugmentConfig(zoom=(0.3, 1.0))
    assert not AugmentConfig().zooms
    cfg = AugmentConfig.none()
    assert not cfg.replace(zoom=(0.9, 1.1)).is_identity


def test_random_zoom_scales_a_disc_about_the_centre() -> None:
    disc = _disc(33, 0.5).float()[None, None].expand(1, 3, 33, 33) * 2 - 1
    area = float((disc > 0).sum())
    for factor in (0.8, 1.25):
        out = random_zoom(disc, (factor, factor))
        # area scales with the square of the magnification (bilinear edges: a few per cent)
        assert float((out > 0).sum()) / area == pytest.approx(factor**2, rel=0.08)
        # the centre stays the centre
        assert float(out[0, 0, 16, 16]) == pytest.approx(1.0)
    np.testing.assert_allclose(random_zoom(disc, (1.0, 1.0)).numpy(), disc.numpy(), atol=1e-5)
    # log-uniform draws inside the range, one per image, reproducible by seed
    x = _disc(33, 0.5).float()[None, None].expand(64, 3, 33, 33) * 2 - 1
    a = random_zoom(x, (0.8, 1.25), generator=torch.Generator().manual_seed(3))
    b = random_zoom(x, (0.8, 1.25), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    ratios = (a > 0).flatten(1).sum(1).float() / area
    assert float(ratios.min()) > 0.8**2 * 0.9 and float(ratios.max()) < 1.25**2 * 1.1
    assert float(ratios.std()) > 0.05  # the factors differ between images


def test_zoom_leaves_the_other_augmentations_unchanged() -> None:
    """Switching zoom off keeps the earlier random stream: augment() with the default config is
    the output of augment_with_params(), and augment_with_params() refuses a zoom it could not
    undo."""
    x = _smooth_images(4, 3, 16)
    a = augment(x, AugmentConfig(), generator=torch.Generator().manual_seed(5))
    b, _ = augment_with_params(x, AugmentConfig(), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    z = augment(x, AugmentConfig(zoom=(0.8, 1.25)), generator=torch.Generator().manual_seed(5))
    assert z.shape == x.shape and not torch.equal(z, a)
    assert float(z.min()) >= -1.0 and float(z.max()) <= 1.0
    with pytest.raises(ValueError, match="zoom"):
        augment_with_params(x, AugmentConfig(zoom=(0.8, 1.25)))
