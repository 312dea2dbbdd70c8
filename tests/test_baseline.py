"""Tests for the CNN baseline: it learns, it is deterministic, it saves and loads exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cytoviz.augment import AugmentConfig
from cytoviz.data import CellDataset
from cytoviz.evaluation import BaselineClassifier, BaselineConfig, train_baseline

SIZE = 16
#: A small, fast config for tests (the default one has ~1.2 M parameters).
FAST = BaselineConfig(channels=(8, 16), norm_groups=4, stem_stride=1, epochs=6, batch_size=16,
                      lr=5e-3, dropout=0.0)


def _colour_dataset(
    n_per_class: int, seed: int, colours: dict[str, tuple[int, int, int]] | None = None
) -> CellDataset:
    """A toy problem: a disc of one colour per class on a noisy grey background."""
    colours = colours or {"basophil": (200, 40, 40), "lymphocyte": (40, 40, 200)}
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images, labels = [], []
    for k, rgb in enumerate(colours.values()):
        for _ in range(n_per_class):
            img = rng.normal(150, 25, size=(SIZE, SIZE, 3))
            cy, cx = rng.uniform(SIZE * 0.35, SIZE * 0.65, size=2)
            r = rng.uniform(SIZE * 0.2, SIZE * 0.35)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            img[disc] = np.asarray(rgb) + rng.normal(0, 25, size=(int(disc.sum()), 3))
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(k)
    return CellDataset(np.stack(images), np.asarray(labels), tuple(colours))


@pytest.fixture(scope="module")
def toy() -> tuple[CellDataset, CellDataset, CellDataset]:
    return _colour_dataset(24, 0), _colour_dataset(10, 1), _colour_dataset(20, 2)


@pytest.fixture(scope="module")
def trained(toy: tuple[CellDataset, CellDataset, CellDataset]) -> BaselineClassifier:
    torch.set_num_threads(1)
    train, val, _ = toy
    return train_baseline(train, val, FAST, progress=False)


def test_default_size_is_comparable_to_tiny_unet() -> None:
    from cytoviz.evaluation.baseline import _build_net

    n = sum(p.numel() for p in _build_net(BaselineConfig(), 8).parameters())
    assert 1_000_000 <= n <= 2_000_000


def test_learns_separable_toy_problem(
    trained: BaselineClassifier, toy: tuple[CellDataset, CellDataset, CellDataset]
) -> None:
    _, _, test = toy
    scores = trained.evaluate(test)
    assert scores["accuracy"] > 0.9, scores
    assert scores["balanced_accuracy"] > 0.9, scores
    assert scores["n_images"] == len(test)
    logits = trained.predict_logits(test)
    assert logits.shape == (len(test), 2) and logits.dtype == np.float32
    np.testing.assert_array_equal(trained.predict(test), logits.argmax(1))
    np.testing.assert_allclose(trained.predict_proba(test).sum(1), 1.0, rtol=1e-5)
    # batching does not change the result (group norm: no batch statistics)
    np.testing.assert_allclose(trained.predict_logits(test, batch_size=3), logits, rtol=1e-4, atol=1e-5)
    # raw uint8 arrays work as well as data sets
    np.testing.assert_allclose(trained.predict_logits(test.images), logits, rtol=1e-5, atol=1e-6)
    feats = trained.features(test)
    assert feats.shape == (len(test), FAST.channels[-1])
    assert np.isfinite(feats).all() and feats.std(axis=0).max() > 0


def test_history_and_best_checkpoint(trained: BaselineClassifier) -> None:
    hist = trained.history
    assert [h["epoch"] for h in hist] == list(range(1, FAST.epochs + 1))
    assert all("val_balanced_accuracy" in h for h in hist)
    best_epochs = [h for h in hist if h.get("best")]
    assert best_epochs
    kept = best_epochs[-1]["val_balanced_accuracy"]
    assert kept == max(h["val_balanced_accuracy"] for h in hist)
    # learning-rate schedule decays to near zero at the end (cosine)
    assert hist[-1]["lr"] < 0.05 * FAST.lr
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_training_is_deterministic_and_leaves_global_rng(
    toy: tuple[CellDataset, CellDataset, CellDataset],
) -> None:
    train, _, test = toy
    cfg = FAST.replace(epochs=2, dropout=0.2)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = train_baseline(train, None, cfg, progress=False)
    assert torch.equal(torch.rand(1), expected_next)
    b = train_baseline(train, None, cfg, progress=False)
    c = train_baseline(train, None, cfg.replace(seed=1), progress=False)
    np.testing.assert_array_equal(a.predict_logits(test), b.predict_logits(test))
    assert not np.allclose(a.predict_logits(test), c.predict_logits(test))


def test_save_load_identical_logits(
    trained: BaselineClassifier, toy: tuple[CellDataset, CellDataset, CellDataset], tmp_path
) -> None:
    _, _, test = toy
    folder = trained.save(tmp_path / "baseline")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((folder / "config.json").read_text())
    assert meta["class_names"] == list(trained.class_names)
    loaded = BaselineClassifier.load(folder)
    np.testing.assert_array_equal(loaded.predict_logits(test), trained.predict_logits(test))
    assert loaded.config == trained.config
    assert loaded.history == json.loads(json.dumps(trained.history))
    assert loaded.class_names == trained.class_names
    BaselineClassifier.load(folder, class_names=trained.class_names)
    with pytest.raises(ValueError, match="model's classes are"):
        BaselineClassifier.load(folder, class_names=("lymphocyte", "basophil"))
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        BaselineClassifier.load(tmp_path / "nowhere")


def test_class_name_mismatch_and_reordering(
    trained: BaselineClassifier, toy: tuple[CellDataset, CellDataset, CellDataset]
) -> None:
    _, _, test = toy
    renamed = CellDataset(test.images, test.labels, ("basophil", "monocyte"))
    with pytest.raises(ValueError, match="monocyte"):
        trained.evaluate(renamed)
    # the same classes in another order are matched by name, not by index
    flipped = CellDataset(test.images, 1 - test.labels, ("lymphocyte", "basophil"))
    assert trained.evaluate(flipped) == trained.evaluate(test)
    # a subset of the classes works
    only = test.select_classes(["lymphocyte"])
    assert trained.evaluate(only)["n_images"] == len(only)


def test_wrong_image_size_is_rejected(trained: BaselineClassifier) -> None:
    with pytest.raises(ValueError, match="expects 16x16"):
        trained.predict(np.zeros((2, 20, 20, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        trained.predict(np.zeros((2, 16, 16, 3), dtype=np.float32))


def test_time_budget_stops_training(toy: tuple[CellDataset, CellDataset, CellDataset]) -> None:
    train, val, _ = toy
    clf = train_baseline(train, val, FAST.replace(epochs=50, max_minutes=1e-6), progress=False)
    assert len(clf.history) == 1
    assert "time budget" in clf.history[-1]["stopped"]
    assert "val_balanced_accuracy" in clf.history[-1]


def test_fine_tune_adapts_to_new_domain(
    trained: BaselineClassifier, toy: tuple[CellDataset, CellDataset, CellDataset]
) -> None:
    # The target domain: the two classes now have other colours.
    target = {"basophil": (40, 200, 40), "lymphocyte": (200, 200, 40)}
    shots = _colour_dataset(8, 10, target)
    target_test = _colour_dataset(20, 11, target)
    before = trained.evaluate(target_test)["accuracy"]
    logits_before = trained.predict_logits(target_test)
    tuned = trained.fine_tune(shots, epochs=15, lr=3e-3, progress=False,
                              augment=AugmentConfig(color_jitter=(0.1, 0.1, 0.1, 0.0)))
    after = tuned.evaluate(target_test)["accuracy"]
    assert after > 0.9, (before, after)
    assert after > before + 0.3  # the domain shift was real and fine-tuning fixed it
    # the original classifier is unchanged
    np.testing.assert_array_equal(trained.predict_logits(target_test), logits_before)
    assert any(h.get("stage") == "fine_tune" for h in tuned.history)


def test_config_validation(tmp_path) -> None:
    with pytest.raises(ValueError, match="norm_groups"):
        BaselineConfig(channels=(12, 16), norm_groups=8)
    with pytest.raises(ValueError, match="lr"):
        BaselineConfig(lr=0)
    with pytest.raises(ValueError, match="max_minutes"):
        BaselineConfig(max_minutes=0)
    cfg = BaselineConfig(augment=AugmentConfig(rotation90=True))
    loaded = BaselineConfig.load(cfg.save(tmp_path / "c.json"))
    assert loaded == cfg and isinstance(loaded.augment, AugmentConfig)
