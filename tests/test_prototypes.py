"""IMPROVE prototypes, prototype conditioning, Frechet distance, and the CytoDiff augmentation curve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from cytoviz.data import CellDataset, SynthConfig, synthesize
from cytoviz.diffusion.generate import GenerateConfig
from cytoviz.diffusion.model import DiffusionModel, ModelConfig
from cytoviz.evaluation.prototypes import (
    PrototypeConditioning,
    PrototypeConfig,
    PrototypeGenerator,
    Prototypes,
    embed,
    frechet_distance,
    learn_prototypes,
    prototype_conditioning,
    prototype_loss,
    train_prototype_conditioned,
)

CLASSES = ("basophil", "blast", "lymphocyte")


@pytest.fixture(scope="module")
def model() -> DiffusionModel:
    cfg = ModelConfig.tiny(image_size=16, vae_channels=(8, 8), unet_channels=(8, 16),
                           token_dim=8, norm_num_groups=4, attention_head_dim=4)
    return DiffusionModel.build(CLASSES, cfg, seed=0).eval()


@pytest.fixture(scope="module")
def cells() -> CellDataset:
    return synthesize(4, config=SynthConfig(image_size=16, seed=0, classes=CLASSES))


def toy_clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[6.0, 0, 0, 0], [0, 6.0, 0, 0], [0, 0, 6.0, 0]])
    y = np.repeat(np.arange(3), 60)
    return centres[y] + 0.5 * rng.standard_normal((180, 4)), y, centres


# ---------------------------------------------------------------------------- prototype learning


def test_prototype_loss_by_hand() -> None:
    f = torch.tensor([[0.0, 0.0]])
    protos = torch.tensor([[[1.0, 0.0], [3.0, 0.0]], [[0.0, 2.0], [0.0, 1.0]]])  # K=2, M=2
    total, dce, pl = prototype_loss(f, torch.tensor([0]), protos, gamma=0.5, lam=0.1)
    d = np.array([1.0, 9.0, 4.0, 1.0])
    p = np.exp(-0.5 * d) / np.exp(-0.5 * d).sum()
    assert dce.item() == pytest.approx(-np.log(p[0] + p[1]), rel=1e-6)
    assert pl.item() == pytest.approx(1.0)  # nearest prototype of class 0
    assert total.item() == pytest.approx(dce.item() + 0.1, rel=1e-6)


def test_loss_decreases_and_prototypes_separate_clusters() -> None:
    x, y, centres = toy_clusters()
    cfg = PrototypeConfig(init="random", epochs=60, n_prototypes=2, batch_size=64, lr=0.05)
    p = learn_prototypes(x, y, ["a", "b", "c"], config=cfg)
    assert p.history.shape == (60, 3)
    assert p.history[-1, 0] < 0.2 * p.history[0, 0]  # total loss falls
    assert p.history[-1, 1] < p.history[0, 1]  # DCE falls
    # every class's nearest prototype sits on its cluster centre
    for c in range(3):
        nearest = np.linalg.norm(p.prototypes[c] - centres[c], axis=1).min()
        assert nearest < 0.5
    assert (p.predict(x) == y).mean() == 1.0
    x2, y2, _ = toy_clusters(seed=1)
    assert (p.predict(x2) == y2).mean() > 0.98


def test_prototypes_save_load(tmp_path) -> None:
    x, y, _ = toy_clusters()
    p = learn_prototypes(x, y, ["a", "b", "c"], config=PrototypeConfig(epochs=3))
    p.save(tmp_path / "p.npz")
    back = Prototypes.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.prototypes, p.prototypes)
    assert back.config == p.config and back.class_names == ("a", "b", "c")
    with pytest.raises(ValueError, match="missing"):
        learn_prototypes(x[y < 2], y[y < 2], ["a", "b", "c"])


def test_embed_both_sources(model: DiffusionModel, cells: CellDataset) -> None:
    f = embed(cells, model=model)
    assert f.shape == (len(cells), 4 * 8 * 8)
    f2 = embed(cells, model=model, batch_size=5)
    np.testing.assert_allclose(f, f2, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        embed(cells)


# ---------------------------------------------------------------------------- conditioning


def test_prototype_conditioning_rows(model: DiffusionModel, cells: CellDataset) -> None:
    f = embed(cells, model=model)
    p = learn_prototypes(f, cells.labels, CLASSES, config=PrototypeConfig(epochs=5))
    for method, kw in (("orthogonal", {}), ("pca", {"features": f})):
        cond = prototype_conditioning(p, model, method=method, **kw)
        assert cond.rows.shape == (3, model.token_dim)
        np.testing.assert_allclose(np.linalg.norm(cond.rows, axis=1), 1.0, rtol=1e-5)
        out = cond(torch.tensor([0, 2, -1]))
        assert out.shape == (3, model.n_tokens, model.token_dim)
        torch.testing.assert_close(out[0, 0], torch.from_numpy(cond.rows[0]))
        torch.testing.assert_close(out[0, 1], out[0, 0])  # repeated over tokens
        assert float(out[2].abs().sum()) == 0.0  # null condition
        soft = cond(torch.tensor([[0.5, 0.5, 0.0]]))
        torch.testing.assert_close(soft[0, 0], torch.from_numpy(0.5 * (cond.rows[0] + cond.rows[1])))
    # the orthogonal projection (D=256 >= 8) preserves the geometry up to the projection:
    # distinct prototypes give distinct rows
    rows = prototype_conditioning(p, model).rows
    assert np.linalg.norm(rows[0] - rows[1]) > 1e-3
    with pytest.raises(ValueError, match="features"):
        prototype_conditioning(p, model, method="pca")


def test_orthogonal_projection_isometric_for_narrow_embeddings(model: DiffusionModel) -> None:
    x, y, _ = toy_clusters()  # D = 4 < token_dim = 8
    p = learn_prototypes(x, y, CLASSES, config=PrototypeConfig(epochs=5))
    cond = prototype_conditioning(p, model, seed=3)
    e = (p.class_embeddings - p.mean) / p.scale
    e = e - e.mean(0)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    # pairwise geometry of the (centred, normalised) prototypes is kept exactly
    np.testing.assert_allclose(cond.rows @ cond.rows.T, e @ e.T, atol=1e-5)


def test_fine_tune_and_generate(model: DiffusionModel, cells: CellDataset, tmp_path) -> None:
    f = embed(cells, model=model)
    p = learn_prototypes(f, cells.labels, CLASSES, config=PrototypeConfig(epochs=5))
    cond = prototype_conditioning(p, model)
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    gen = train_prototype_conditioned(model, cells, cond, steps=3, batch_size=4, progress=False)
    assert len(gen.history) == 3 and all(np.isfinite(gen.history))
    # the input model is untouched; the copy moved
    for k, v in model.unet.state_dict().items():
        torch.testing.assert_close(v, before[k])
    moved = any(not torch.equal(v, before[k]) for k, v in gen.model.unet.state_dict().items())
    assert moved
    cfg = GenerateConfig(num_inference_steps=2)
    ds = gen.generate("all", 2, cfg, progress=False)
    assert ds.images.shape == (6, 16, 16, 3)
    gen.save(tmp_path / "gen")
    back = PrototypeGenerator.load(tmp_path / "gen")
    assert isinstance(back.conditioning, PrototypeConditioning)
    np.testing.assert_array_equal(back.generate("all", 2, cfg, progress=False).images, ds.images)
    control = train_prototype_conditioned(model, cells, None, steps=2, batch_size=4, progress=False)
    assert control.conditioning is None
    with pytest.raises(ValueError, match="select_classes"):
        train_prototype_conditioned(model, cells.select_classes(CLASSES[:2]), cond, steps=1,
                                    progress=False)


@pytest.mark.slow
def test_fine_tuning_lowers_loss(model: DiffusionModel, cells: CellDataset) -> None:
    """Same batches, same noise: the loss over the first steps is higher than over the last."""
    f = embed(cells, model=model)
    p = learn_prototypes(f, cells.labels, CLASSES, config=PrototypeConfig(epochs=5))
    gen = train_prototype_conditioned(model, cells, prototype_conditioning(p, model), steps=40,
                                      batch_size=12, lr=2e-3, progress=False)
    h = np.asarray(gen.history)
    assert h[-10:].mean() < h[:10].mean()


# ---------------------------------------------------------------------------- Frechet distance


def _with_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    """Samples whose sample mean and (n-1) covariance are exactly ``mean`` and ``cov``."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, mean.size))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whiten
    return z @ np.linalg.cholesky(cov).T + mean


def test_frechet_zero_for_identical_and_mean_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    # same covariance, mean shifted: the distance is exactly ||shift||^2
    assert frechet_distance(a, a + shift) == pytest.approx(shift @ shift, rel=1e-8)
    # it grows with the shift
    ds = [frechet_distance(a, a + s * shift) for s in (0.5, 1.0, 2.0)]
    assert ds[0] < ds[1] < ds[2]


def test_frechet_matches_gaussian_closed_form() -> None:
    rng = np.random.default_rng(1)
    m = rng.standard_normal((4, 4))
    cov_a = m @ m.T + 0.5 * np.eye(4)
    cov_b = np.diag([1.0, 2.0, 0.5, 3.0])
    mu_a, mu_b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, -1.0])
    a = _with_moments(300, mu_a, cov_a, 2)
    b = _with_moments(250, mu_b, cov_b, 3)
    closed = (np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
              - 2 * np.trace(np.real(sqrtm(cov_a @ cov_b))))
    assert frechet_distance(a, b) == pytest.approx(closed, rel=1e-8)
    # diagonal covariances: sum of (sqrt(a_i) - sqrt(b_i))^2
    da, db = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    x = _with_moments(100, np.zeros(3), np.diag(da), 4)
    z = _with_moments(100, np.zeros(3), np.diag(db), 5)
    assert frechet_distance(x, z) == pytest.approx(np.sum((np.sqrt(da) - np.sqrt(db)) ** 2),
                                                   rel=1e-8)


def test_frechet_errors_and_singular() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(rng.standard_normal((5, 3)), rng.standard_normal((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(rng.standard_normal((1, 3)), rng.standard_normal((5, 3)))
    few = rng.standard_normal((4, 10))  # singular covariances (N < D)
    assert np.isfinite(frechet_distance(few, rng.standard_normal((4, 10))))


# ---------------------------------------------------------------------------- CytoDiff curve


def test_augmentation_curve_structure() -> None:
    from cytoviz.evaluation.augmentation import augmentation_curve
    from cytoviz.evaluation.baseline import BaselineConfig

    cfg = SynthConfig(image_size=16, classes=CLASSES, seed=0)
    small = synthesize(3, config=cfg)
    test = synthesize(6, config=cfg, seed=1)
    pool = synthesize(8, config=cfg, seed=2)
    base = BaselineConfig(channels=(8, 16), norm_groups=4, epochs=2, batch_size=16)
    table = augmentation_curve(None, small, test, ks=(0, 2, 5), generated=pool,
                               baseline_config=base, repeats=2, progress=False)
    assert list(table["k"]) == [0, 2, 5, 0, 2, 5]
    assert list(table["n_synthetic"]) == [0, 6, 15] * 2
    assert (table["n_real"] == 9).all()
    for col in ("accuracy", "balanced_accuracy", "macro_f1", "auc_ovr"):
        assert table[col].between(0, 1).all()
    again = augmentation_curve(None, small, test, ks=(0, 2, 5), generated=pool,
                               baseline_config=base, repeats=2, progress=False)
    np.testing.assert_array_equal(again["accuracy"], table["accuracy"])
    with pytest.raises(ValueError, match="fewer than max"):
        augmentation_curve(None, small, test, ks=(0, 20), generated=pool, baseline_config=base,
                           progress=False)

    from cytoviz import pl

    fig = pl.augmentation_curve(table)
    assert len(fig.data) == 3 and list(fig.data[0].x) == [0, 2, 5]
    assert fig.data[0].error_y.visible in (True, False)
    assert fig.layout.template.layout.font.family is not None


def test_augmentation_curve_generates_from_model(model: DiffusionModel) -> None:
    from cytoviz.evaluation.augmentation import augmentation_curve
    from cytoviz.evaluation.baseline import BaselineConfig

    cfg = SynthConfig(image_size=16, classes=CLASSES, seed=0)
    base = BaselineConfig(channels=(8, 16), norm_groups=4, epochs=1, batch_size=16)
    table = augmentation_curve(model, synthesize(2, config=cfg), synthesize(3, config=cfg, seed=1),
                               ks=(0, 2), generate_config=GenerateConfig(num_inference_steps=2),
                               baseline_config=base, progress=False)
    assert list(table["n_synthetic"]) == [0, 6]
