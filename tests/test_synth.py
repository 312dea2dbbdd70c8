"""The synthetic smear generator, the domain presets, write_dataset and the preview figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from cytoviz.classes import CANONICAL_CLASSES
from cytoviz.data import CellDataset
from cytoviz.data.domains import DOMAINS, DomainShift, apply_camera, get_domain, rotate_hue
from cytoviz.data.synth import (
    DEFAULT_SPLIT_COUNTS,
    NEIGHBOURS,
    SynthConfig,
    default_splits,
    synthesize,
    write_dataset,
)
from cytoviz.pl import data_preview, real_vs_synthetic
from cytoviz.pl.data import NO_REAL_TITLE

META_COLUMNS = {"id", "domain", "mix_class", "mix_weight", "ambiguity"}


@pytest.fixture(scope="module")
def small() -> CellDataset:
    return synthesize(4, config=SynthConfig(seed=1))


def test_same_seed_same_arrays_other_seed_differs():
    a = synthesize(2, seed=3)
    b = synthesize(2, seed=3)
    c = synthesize(2, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.meta, b.meta)
    assert not np.array_equal(a.images, c.images)


def test_shapes_dtypes_counts_and_meta(small):
    n = 4 * len(CANONICAL_CLASSES)
    assert small.images.shape == (n, 64, 64, 3) and small.images.dtype == np.uint8
    assert small.masks.shape == (n, 3, 64, 64) and small.masks.dtype == bool
    assert small.class_names == CANONICAL_CLASSES
    assert set(small.class_counts().values()) == {4}
    assert META_COLUMNS <= set(small.meta.columns)
    assert small.meta["id"].is_unique
    assert (small.meta["domain"] == "reference").all()
    # images are not constant: there is a cell on a background
    assert small.images.reshape(n, -1).std(axis=1).min() > 5


def test_image_size_and_class_subset_are_configurable():
    cfg = SynthConfig(image_size=32, classes=("lymphocyte", "neutrophil"))
    ds = synthesize({"ly": 2, "NEUTROPHIL": 3}, config=cfg)
    assert ds.images.shape == (5, 32, 32, 3)
    assert ds.class_counts() == {"lymphocyte": 2, "neutrophil": 3}


def test_masks_are_consistent_with_the_image(small):
    nucleus, cytoplasm, granules = small.masks[:, 0], small.masks[:, 1], small.masks[:, 2]
    cell = nucleus | cytoplasm
    assert not (nucleus & cytoplasm).any()
    assert cell.reshape(len(small), -1).sum(axis=1).min() > 0
    names = small.label_names
    nucleated = names != "platelet"
    assert (nucleus[nucleated].reshape(nucleated.sum(), -1).sum(axis=1) > 0).all()
    for cls in ("eosinophil", "basophil", "platelet"):
        assert (granules[names == cls].reshape((names == cls).sum(), -1).sum(axis=1) > 0).all()
    # the cell is centred: its centroid lies near the image centre
    yy, xx = np.mgrid[:64, :64]
    for m in cell[nucleated]:
        assert abs(xx[m].mean() - 31.5) < 10 and abs(yy[m].mean() - 31.5) < 10
    # masks sit on the right pixels: nuclei are darker than the cytoplasm and the background
    gray = small.images.mean(axis=-1)
    background = ~cell
    for i in np.flatnonzero(nucleated & (names != "artefact")):
        assert gray[i][nucleus[i]].mean() < gray[i][background[i]].mean() - 40


def test_blend_metadata():
    hard = synthesize(3, config=SynthConfig(hard_fraction=1.0, image_size=32), seed=2)
    meta = hard.meta
    assert (meta["mix_class"] != "").all()
    for cls, mix in zip(hard.label_names, meta["mix_class"], strict=True):
        assert mix in NEIGHBOURS[cls]
    lo, hi = SynthConfig().mix_weight_range
    assert meta["mix_weight"].between(lo, hi).all()
    np.testing.assert_allclose(meta["ambiguity"], 2 * meta["mix_weight"])
    assert meta["ambiguity"].between(0, 1).all()
    clear = synthesize(3, config=SynthConfig(hard_fraction=0.0, image_size=32), seed=2)
    assert (clear.meta["mix_class"] == "").all() and (clear.meta["mix_weight"] == 0).all()


def test_default_hard_fraction_is_realised():
    ds = synthesize(30, config=SynthConfig(image_size=16, supersample=1), seed=5)
    share = float((ds.meta["mix_class"] != "").mean())
    assert 0.12 < share < 0.25  # hard_fraction = 0.18, 300 images


def test_default_splits_keys_imbalance_and_domains():
    splits = default_splits(config=SynthConfig(image_size=16, supersample=1), scale=0.05)
    assert list(splits) == ["train", "val", "test", "test_mild", "test_strong"]
    counts = splits["train"].class_counts()
    expected = {c: max(1, round(n * 0.05)) for c, n in DEFAULT_SPLIT_COUNTS["train"].items()}
    assert counts == expected
    assert counts["neutrophil"] / counts["basophil"] >= 10
    assert len(set(splits["test"].class_counts().values())) == 1
    assert set(splits["test_strong"].meta["domain"]) == {"strong"}
    assert set(splits["test_mild"].meta["domain"]) == {"mild"}
    # every split comes from its own stream
    assert not np.array_equal(splits["test"].images[:3], splits["test_mild"].images[:3])


def test_domain_presets_change_colour_statistics_and_keep_masks_aligned():
    ref = synthesize(3, seed=7)
    mild = synthesize(3, seed=7, domain="mild")
    strong = synthesize(3, seed=7, domain="strong")
    # same seed: same labels and morphology, other rendering
    np.testing.assert_array_equal(ref.labels, strong.labels)
    diff_mild = np.abs(ref.images.astype(float) - mild.images).mean()
    diff_strong = np.abs(ref.images.astype(float) - strong.images).mean()
    assert 2 < diff_mild < diff_strong

    def bg_colour(ds: CellDataset) -> np.ndarray:
        cell = ds.masks[:, 0] | ds.masks[:, 1]
        return np.median(ds.images[~cell], axis=0)

    assert np.abs(bg_colour(ref) - bg_colour(strong)).max() > 8
    # magnification 0.85 shrinks the cells and their masks together
    area = lambda ds: (ds.masks[:, 0] | ds.masks[:, 1]).sum(axis=(1, 2)).mean()  # noqa: E731
    assert area(strong) / area(ref) < 0.85
    assert DOMAINS["strong"].scale < 1


def test_domain_shift_validation_and_lookup():
    with pytest.raises(ValueError, match="scale"):
        DomainShift(scale=5.0)
    with pytest.raises(ValueError, match="jpeg_quality"):
        DomainShift(jpeg_quality=0)
    with pytest.raises(ValueError, match="unknown domain 'lisc'"):
        get_domain("lisc")
    assert get_domain(None).name == "reference"
    custom = DomainShift(name="blue", hue_shift_deg=40)
    assert get_domain(custom) is custom
    assert synthesize(1, config=SynthConfig(image_size=16), domain=custom).meta["domain"][0] == "blue"


def test_rotate_hue_keeps_grey_projection_and_camera_keeps_shape(rng):
    v = np.array([0.2, 0.8, 0.4])
    w = rotate_hue(v, 30)
    assert np.isclose(w.sum(), v.sum()) and not np.allclose(w, v)
    np.testing.assert_allclose(rotate_hue(w, -30), v, atol=1e-12)
    img = rng.random((32, 32, 3))
    out = apply_camera(img, DOMAINS["strong"], np.random.default_rng(0))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    clean = apply_camera(img, DOMAINS["reference"], np.random.default_rng(0))
    np.testing.assert_array_equal(clean, np.round(img * 255).astype(np.uint8))


def test_config_and_counts_validation():
    with pytest.raises(ValueError, match="image_size"):
        SynthConfig(image_size=8)
    with pytest.raises(ValueError, match="mix_weight_range"):
        SynthConfig(mix_weight_range=(0.2, 0.7))
    with pytest.raises(ValueError, match="classes"):
        SynthConfig(classes=("lymphocyte", "dragon"))
    cfg = SynthConfig(classes=("lymphocyte",), image_size=16)
    with pytest.raises(ValueError, match="'neutrophil' is not among the configured classes"):
        synthesize({"neutrophil": 1}, config=cfg)
    with pytest.raises(ValueError, match="counts must be >= 0"):
        synthesize(-1)
    with pytest.raises(ValueError, match="scale"):
        default_splits(scale=0)


def test_synth_config_roundtrip(tmp_path):
    cfg = SynthConfig(image_size=96, seed=4, hard_fraction=0.2)
    assert SynthConfig.load(cfg.save(tmp_path / "c.json")) == cfg


def test_write_dataset_roundtrip(tmp_path, small):
    folder = write_dataset(small, tmp_path / "ds")
    manifest = pd.read_csv(folder / "manifest.csv", keep_default_na=False)
    assert len(manifest) == len(small)
    assert {"path", "label", "label_index", *META_COLUMNS} <= set(manifest.columns)
    for i, row in manifest.iterrows():
        assert row["path"].split("/")[0] == row["label"] == small.label_names[i]
        np.testing.assert_array_equal(np.asarray(Image.open(folder / row["path"])), small.images[i])
    np.testing.assert_allclose(manifest["mix_weight"], small.meta["mix_weight"])
    with np.load(folder / "masks.npz") as m:
        np.testing.assert_array_equal(m["masks"], small.masks)
        assert list(m["mask_names"]) == ["nucleus", "cytoplasm", "granules"]
    back = CellDataset.load(folder / "dataset.npz")
    np.testing.assert_array_equal(back.images, small.images)
    np.testing.assert_array_equal(back.masks, small.masks)
    with pytest.raises(FileExistsError, match=r"manifest\.csv exists"):
        write_dataset(small, folder)
    write_dataset(small.subset([0, 1]), folder, overwrite=True)
    assert len(pd.read_csv(folder / "manifest.csv")) == 2
    assert not list(folder.rglob(".*tmp-*"))


def test_preview_figures_structure(small):
    fig = data_preview(small, n_per_class=3)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1 and fig.data[0].type == "image"
    z = np.asarray(fig.data[0].z)
    assert z.shape[0] == 10 * 64 + 9 * 2 and z.shape[1] == 3 * 64 + 2 * 2
    texts = [a.text for a in fig.layout.annotations]
    assert texts == list(CANONICAL_CLASSES)
    assert fig.layout.template.layout.font.family.startswith("Arial")

    real = small.select_classes(["lymphocyte", "neutrophil"])
    fig2 = real_vs_synthetic(real, small, n_per_class=2, tile_size=32)
    texts = [a.text for a in fig2.layout.annotations]
    assert "<b>real (PBC)</b>" in texts and "<b>synthetic</b>" in texts
    z2 = np.asarray(fig2.data[0].z)
    assert z2.shape[0] == 10 * 32 + 9 * 2
    # classes missing from the real set show grey tiles, and say so (8 of 10 rows)
    assert (z2[:32, :32] == 235).all()
    assert texts.count("no image of this class") == 8
    only = real_vs_synthetic(None, small, n_per_class=2)
    assert "<b>real (PBC)</b>" not in [a.text for a in only.layout.annotations]
    assert only.layout.title.text == NO_REAL_TITLE  # the title says the real block is missing
    assert fig2.layout.title.text is None
    with pytest.raises(ValueError, match="n_per_class"):
        data_preview(small, n_per_class=0)


def test_colours_match_real_pbc_images(pbc_dir, small):
    """Background and nucleus colours of synthetic images are close to the real PBC ones."""
    real = []
    for folder in sorted(p for p in pbc_dir.iterdir() if p.is_dir()):
        for f in sorted(folder.glob("*.png"))[:3]:
            real.append(np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.LANCZOS)))
    real = np.stack(real).reshape(-1, 3).astype(float)
    syn = small.images.reshape(-1, 3).astype(float)

    def stats(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gray = px.mean(axis=1)
        bright = px[gray >= np.percentile(gray, 80)].mean(axis=0)
        dark = px[gray <= np.percentile(gray, 3)].mean(axis=0)
        return bright, dark

    (rb, rd), (sb, sd) = stats(real), stats(syn)
    assert np.abs(rb - sb).max() < 12, (rb, sb)
    assert np.abs(rd - sd).max() < 35, (rd, sd)


def test_default_splits_subset_is_identical():
    from cytoviz.data.synth import default_splits

    both = default_splits(scale=0.02, splits=["val", "test"])
    only = default_splits(scale=0.02, splits=["test"])
    assert list(only) == ["test"]
    np.testing.assert_array_equal(both["test"].images, only["test"].images)
    with pytest.raises(ValueError, match="unknown split"):
        default_splits(scale=0.02, splits=["tset"])
