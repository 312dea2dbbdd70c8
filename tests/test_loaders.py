"""Tests for the real-data loaders, on tiny files made here and on the PBC example images."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cytoviz.classes import CANONICAL_CLASSES, UnknownClassError
from cytoviz.data import (
    CellDataset,
    ImageLoadError,
    load_bloodmnist,
    load_folder,
    load_manifest,
    prepare_image,
)
from cytoviz.data.loaders import BLOODMNIST_CLASSES


def _rgb(rng: np.random.Generator, h: int = 20, w: int = 30) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _save(img: Image.Image, path: Path, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def _tree(root: Path, folders: dict[str, int], rng: np.random.Generator, ext: str = ".png") -> Path:
    for name, n in folders.items():
        for i in range(n):
            _save(Image.fromarray(_rgb(rng)), root / name / f"img_{i}{ext}")
    return root


# --------------------------------------------------------------------------------------------
# prepare_image


def test_prepare_image_modes(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = _rgb(rng, 40, 60)
    grey = rng.integers(0, 256, size=(40, 60), dtype=np.uint8)
    files = {
        "rgb.png": Image.fromarray(rgb),
        "rgb.jpg": Image.fromarray(rgb),
        "rgb.tif": Image.fromarray(rgb),
        "grey.png": Image.fromarray(grey),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "bw.png": Image.fromarray(grey > 128),
        "grey16.png": Image.fromarray(grey.astype(np.uint16) * 257),
        "grey16.tif": Image.fromarray(grey.astype(np.uint16) * 257),
        "grey32.tif": Image.fromarray(grey.astype(np.int32) * 257),
        "float.tif": Image.fromarray(grey.astype(np.float32) / 255.0),
    }
    for name, img in files.items():
        out = prepare_image(_save(img, tmp_path / name), 16)
        assert out.shape == (16, 16, 3) and out.dtype == np.uint8, name
        assert out.std() > 10, f"{name}: image content lost"
    # 16-bit images are scaled to 8-bit, not clipped: they match the 8-bit original
    ref = prepare_image(tmp_path / "grey.png", 16).astype(int)
    for name in ("grey16.png", "grey16.tif", "grey32.tif", "float.tif"):
        assert np.abs(prepare_image(tmp_path / name, 16).astype(int) - ref).max() <= 1, name


def test_prepare_image_alpha_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:, :5, 3] = 0  # left half transparent
    rgba[:, 5:, 3] = 255
    out = prepare_image(_save(Image.fromarray(rgba), tmp_path / "a.png"), 10)
    np.testing.assert_array_equal(out[:, :5], 255)  # white
    assert np.all(out[:, 5:] == [255, 0, 0])
    # the same from a numpy array, and from greyscale + alpha
    np.testing.assert_array_equal(prepare_image(rgba, 10), out)
    la = Image.fromarray(rgba[..., [1, 3]])
    np.testing.assert_array_equal(prepare_image(la, 10)[:, :5], 255)


def test_prepare_image_centre_crop_and_exact_size(rng: np.random.Generator) -> None:
    img = np.zeros((20, 60, 3), dtype=np.uint8)
    img[:, 20:40] = 200  # the centre square is bright, the sides dark
    out = prepare_image(img, 10)
    assert out.shape == (10, 10, 3)
    assert out[2:-2, 2:-2].min() > 190  # only the centre square survives
    squashed = prepare_image(img, 10, crop="none")
    assert squashed[:, 0].max() < 20  # the dark sides are kept
    same = _rgb(rng, 12, 12)
    np.testing.assert_array_equal(prepare_image(same, 12), same)


def test_prepare_image_tiny_images() -> None:
    one = Image.new("RGB", (1, 1), (10, 120, 250))
    np.testing.assert_array_equal(prepare_image(one, 8), np.broadcast_to([10, 120, 250], (8, 8, 3)))
    line = prepare_image(np.full((1, 500), 77, dtype=np.uint8), 8)
    assert line.shape == (8, 8, 3) and np.all(line == 77)
    with pytest.raises(ImageLoadError, match="empty"):
        prepare_image(np.zeros((0, 5, 3), dtype=np.uint8), 8)


def test_bad_files_are_named(tmp_path: Path, rng: np.random.Generator) -> None:
    good = _save(Image.fromarray(_rgb(rng, 64, 64)), tmp_path / "good.png")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    jpg = _save(Image.fromarray(_rgb(rng, 64, 64)), tmp_path / "good.jpg")
    trunc_jpg = tmp_path / "truncated.jpg"
    trunc_jpg.write_bytes(jpg.read_bytes()[:200])
    for bad, why in [(truncated, "truncated"), (text, "not a readable image"), (empty, "empty"),
                     (trunc_jpg, "truncated"), (tmp_path / "missing.png", "no such file"),
                     (tmp_path, "folder")]:
        with pytest.raises(ImageLoadError, match=why) as info:
            prepare_image(bad, 16)
        assert str(bad) in str(info.value)


def test_decompression_bomb_protection_stays_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match="too large") as info:
        prepare_image(path, 16)
    assert "big.png" in str(info.value) and "MAX_IMAGE_PIXELS" in str(info.value)
    # twice the limit is PIL's hard error; between 1x and 2x its warning, also an error here
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)
    with pytest.raises(ImageLoadError, match="too large"):
        prepare_image(path, 16)


_MODES = st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "I;16", "I", "F", "1", "CMYK"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 80), w=st.integers(1, 80), mode=_MODES, size=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_prepare_image_property(h: int, w: int, mode: str, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, size=(h, w), dtype=np.uint16))
    elif mode == "I":
        img = Image.fromarray(rng.integers(0, 65536, size=(h, w)).astype(np.int32))
    elif mode == "F":
        img = Image.fromarray(rng.random((h, w)).astype(np.float32))
    else:
        img = base.convert(mode)
    out = prepare_image(img, size)
    assert out.shape == (size, size, 3)
    assert out.dtype == np.uint8


# --------------------------------------------------------------------------------------------
# load_folder


def test_load_folder_aliases_and_order(tmp_path: Path, rng: np.random.Generator) -> None:
    root = _tree(tmp_path / "data", {"NEUTROPHIL": 2, "SNE": 1, "ig": 2, "Basophil": 1,
                                     "smudge cell": 1}, rng)
    ds = load_folder(root, image_size=8)
    assert isinstance(ds, CellDataset)
    assert ds.class_names == tuple(c for c in CANONICAL_CLASSES
                                   if c in {"neutrophil", "immature granulocyte", "basophil", "artefact"})
    assert ds.class_counts() == {"basophil": 1, "neutrophil": 3, "immature granulocyte": 2, "artefact": 1}
    assert ds.images.shape == (7, 8, 8, 3)
    assert set(ds.meta.columns) >= {"path", "source_class"}
    assert all(Path(p).is_file() for p in ds.meta["path"])
    # labels follow the files: every neutrophil comes from NEUTROPHIL/ or SNE/
    assert set(ds.meta["source_class"][ds.label_names == "neutrophil"]) == {"NEUTROPHIL", "SNE"}


def test_load_folder_explicit_classes_and_class_map(tmp_path: Path, rng: np.random.Generator) -> None:
    root = _tree(tmp_path, {"eo": 2, "mystery cells": 1, "lym": 1}, rng)
    with pytest.raises(UnknownClassError, match="mystery cells") as info:
        load_folder(root, image_size=8)
    assert "class_map" in str(info.value)
    ds = load_folder(root, image_size=8, class_map={"mystery cells": None})
    assert ds.class_names == ("lymphocyte", "eosinophil") and len(ds) == 3
    model_classes = ("eosinophil", "basophil", "lymphocyte", "blast")
    ds = load_folder(root, image_size=8, classes=model_classes, class_map={"mystery cells": "blast"})
    assert ds.class_names == model_classes
    assert ds.class_counts() == {"eosinophil": 2, "basophil": 0, "lymphocyte": 1, "blast": 1}
    with pytest.raises(UnknownClassError, match="lym"):
        load_folder(root, image_size=8, classes=("eosinophil",), class_map={"mystery cells": None})


def test_load_folder_splits(tmp_path: Path, rng: np.random.Generator) -> None:
    _tree(tmp_path / "Train", {"Basophil": 2, "Lymphocyte": 1}, rng, ext=".jpg")
    _tree(tmp_path / "Test", {"Basophil": 1, "Lymphocyte": 1}, rng, ext=".JPG")
    with pytest.raises(ValueError, match="split="):
        load_folder(tmp_path, image_size=8)
    train = load_folder(tmp_path, split="train", image_size=8)
    test = load_folder(tmp_path, split="test", image_size=8)
    assert (len(train), len(test)) == (3, 2)
    with pytest.raises(FileNotFoundError, match="Test"):
        load_folder(tmp_path, split="validation")


def test_load_folder_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_folder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_folder(tmp_path / "empty")
    (tmp_path / "empty_classes" / "basophil").mkdir(parents=True)
    with pytest.raises(ValueError, match="no image files"):
        load_folder(tmp_path / "empty_classes")
    flat = tmp_path / "flat"
    _save(Image.fromarray(_rgb(rng)), flat / "a.png")
    with pytest.raises(ValueError, match="one folder per class"):
        load_folder(flat)
    with pytest.raises(ValueError, match="on_error"):
        load_folder(flat, on_error="ignore")  # type: ignore[arg-type]


def test_load_folder_bad_file_raise_or_skip(tmp_path: Path, rng: np.random.Generator) -> None:
    root = _tree(tmp_path, {"monocyte": 3}, rng)
    bad = root / "monocyte" / "zz_broken.png"
    bad.write_text("not a png")
    (root / "monocyte" / "readme.txt").write_text("ignored: not an image ending")
    with pytest.raises(ImageLoadError, match=r"zz_broken\.png"):
        load_folder(root, image_size=8)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable.*zz_broken\.png"):
        ds = load_folder(root, image_size=8, on_error="skip")
    assert len(ds) == 3 and len(ds.meta) == 3
    assert not any("zz_broken" in p for p in ds.meta["path"])


def test_load_folder_real_pbc(pbc_dir: Path) -> None:
    ds = load_folder(pbc_dir, image_size=64)
    assert len(ds) == 160
    assert ds.images.shape == (160, 64, 64, 3)
    expected = tuple(c for c in CANONICAL_CLASSES if (pbc_dir / c).is_dir())
    assert len(expected) == 8 and ds.class_names == expected
    assert set(ds.class_counts().values()) == {20}
    # real smears: a light background and darker stained cells, not blank images
    assert ds.images.mean() > 100 and ds.images.std() > 20
    # every image came from the folder of its class
    for path, name in zip(ds.meta["path"], ds.label_names, strict=True):
        assert Path(path).parent.name == name


# --------------------------------------------------------------------------------------------
# load_manifest


def _manifest(tmp_path: Path, rng: np.random.Generator, rows: list[str], header: str) -> Path:
    for i in range(3):
        _save(Image.fromarray(_rgb(rng)), tmp_path / "imgs" / f"c{i}.png")
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    return csv


def test_load_manifest(tmp_path: Path, rng: np.random.Generator) -> None:
    csv = _manifest(tmp_path, rng, [
        "imgs/c0.png,NEUTROPHIL,A,High,x",
        "imgs/c1.png,ig,B,0.5,y",
        "imgs/c0.png,SNE,B,Low,z",
        f"{tmp_path / 'imgs' / 'c2.png'},lymphocyte,C,,w",
    ], "path,label,expert,confidence,note")
    ds = load_manifest(csv, image_size=8)
    assert ds.class_names == ("lymphocyte", "neutrophil", "immature granulocyte")
    assert list(ds.label_names) == ["neutrophil", "immature granulocyte", "neutrophil", "lymphocyte"]
    np.testing.assert_array_equal(ds.images[0], ds.images[2])  # same file, same image
    np.testing.assert_allclose(ds.meta["confidence"].to_numpy()[:3], [1.0, 0.5, 1 / 3])
    assert np.isnan(ds.meta["confidence"].iloc[3])
    assert list(ds.meta["expert"]) == ["A", "B", "B", "C"]
    assert list(ds.meta["note"]) == ["x", "y", "z", "w"]
    assert all(Path(p).is_file() for p in ds.meta["path"])


def test_load_manifest_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv.*empty"):
        load_manifest(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("path,label\n")
    with pytest.raises(ValueError, match="no rows"):
        load_manifest(header_only)
    csv = _manifest(tmp_path, rng, ["imgs/c0.png,basophil"], "file,label")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['path'\]"):
        load_manifest(csv)
    assert len(load_manifest(csv, path_column="file", image_size=4)) == 1
    csv = _manifest(tmp_path, rng, ["imgs/c0.png,basophil", "imgs/c1.png,"], "path,label")
    with pytest.raises(ValueError, match=r"line 3, column 'label'"):
        load_manifest(csv)
    csv = _manifest(tmp_path, rng, ["imgs/c0.png,basophil", "imgs/nope.png,basophil"], "path,label")
    with pytest.raises(FileNotFoundError, match=r"labels\.csv, line 3, column 'path'.*nope\.png"):
        load_manifest(csv)
    with pytest.warns(UserWarning, match="nope.png"):
        assert len(load_manifest(csv, on_error="skip", image_size=4)) == 1
    csv = _manifest(tmp_path, rng, ["imgs/c0.png,basophil,Maybe"], "path,label,confidence")
    with pytest.raises(ValueError, match=r"line 2, column 'confidence'.*Maybe"):
        load_manifest(csv)
    csv = _manifest(tmp_path, rng, ["imgs/c0.png,martian"], "path,label")
    with pytest.raises(UnknownClassError, match="martian"):
        load_manifest(csv)


# --------------------------------------------------------------------------------------------
# BloodMNIST


def test_load_bloodmnist(tmp_path: Path, rng: np.random.Generator) -> None:
    n = 16
    labels = (np.arange(n) % 8).reshape(-1, 1)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = labels
    path = tmp_path / "bloodmnist.npz"
    np.savez(path, **arrays)
    ds = load_bloodmnist(path, "val", image_size=None)
    assert ds.images.shape == (n, 28, 28, 3)
    np.testing.assert_array_equal(ds.images, arrays["val_images"])
    assert ds.class_names == tuple(c for c in CANONICAL_CLASSES if c in BLOODMNIST_CLASSES)
    # MedMNIST's label k is BLOODMNIST_CLASSES[k]
    assert list(ds.label_names) == [BLOODMNIST_CLASSES[k] for k in labels[:, 0]]
    big = load_bloodmnist(path, image_size=32)
    assert big.images.shape == (n, 32, 32, 3) and big.meta["path"][0].endswith("test[0]")
    with pytest.raises(ValueError, match="split"):
        load_bloodmnist(path, "dev")  # type: ignore[arg-type]
    bad = tmp_path / "other.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match=r"test_images.*missing"):
        load_bloodmnist(bad)


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, cytoviz.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_global_pil_state_changed() -> None:
    from PIL import ImageFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
        assert Image.MAX_IMAGE_PIXELS is not None
