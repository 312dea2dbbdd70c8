"""``cytoviz.data.resolve`` / ``resolve_one``: every kind of data spec and every refusal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cytoviz.data import CellDataset, resolve, resolve_one
from cytoviz.data._resolve import SINGLE, SPLIT_NAMES

TINY = {"scale": 0.02, "image_size": 16}


def _cells(n: int = 4, seed: int = 0, classes=("lymphocyte", "neutrophil")) -> CellDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    return CellDataset(images, np.arange(n) % len(classes), classes)


def _class_folders(root, classes=("lymphocyte", "neutrophil"), per_class: int = 2, seed: int = 0):
    """``root/<class>/<i>.png``: tiny 20 px PNGs (resized to ``image_size`` on reading)."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"{i}.png")
    return root


# --------------------------------------------------------------------------------------------
# "synthetic"


def test_synthetic_generates_only_the_requested_splits():
    sets = resolve("synthetic", splits=["val", "test_strong"], seed=1, **TINY)
    assert list(sets) == ["val", "test_strong"]
    assert all(ds.image_size == 16 for ds in sets.values())
    assert set(sets["test_strong"].meta["domain"]) == {"strong"}
    again = resolve("synthetic", splits=["val"], seed=1, **TINY)["val"]
    np.testing.assert_array_equal(again.images, sets["val"].images)


def test_synthetic_without_splits_gives_all_five():
    assert tuple(resolve("synthetic", **TINY)) == SPLIT_NAMES


def test_synthetic_resolve_one_defaults_to_test():
    one = resolve_one("synthetic", **TINY)
    test = resolve("synthetic", splits=["test"], **TINY)["test"]
    np.testing.assert_array_equal(one.images, test.images)
    assert resolve_one("synthetic", "train", **TINY).images.shape[1] == 16


def test_synthetic_refuses_an_unknown_split():
    with pytest.raises(ValueError, match=r"unknown split\(s\) \['holdout'\] of 'synthetic'"):
        resolve("synthetic", splits=["holdout"], **TINY)


# --------------------------------------------------------------------------------------------
# objects: a CellDataset, a mapping


def test_a_dataset_is_the_single_set():
    ds = _cells()
    assert resolve(ds) == {SINGLE: ds} and SINGLE == "all"
    assert resolve_one(ds) is ds
    with pytest.raises(ValueError, match=r"one data set with no splits, so split\(s\) \['test'\]"):
        resolve(ds, splits=["test"])


def test_a_mapping_is_used_as_it_is():
    train, test = _cells(seed=1), _cells(seed=2)
    sets = resolve({"train": train, "test": test})
    assert sets == {"train": train, "test": test}
    assert resolve({"train": train, "test": test}, splits=["test"]) == {"test": test}
    assert resolve_one({"train": train, "test": test}) is test  # several: the test split
    assert resolve_one({"train": train, "test": test}, "train") is train
    with pytest.raises(ValueError, match=r"the mapping: no split\(s\) \['val'\]; it has "
                                         r"\['train', 'test'\]"):
        resolve({"train": train, "test": test}, splits=["val"])


def test_a_mapping_without_test_needs_a_split_name():
    sets = {"train": _cells(seed=1), "val": _cells(seed=2)}
    with pytest.raises(ValueError, match=r"holds the splits \['train', 'val'\]; name the one"):
        resolve_one(sets)


def test_a_mapping_of_other_things_is_refused():
    with pytest.raises(TypeError, match=r"maps split names to CellDataset, got \{'train': "
                                        r"'ndarray'\}"):
        resolve({"train": np.zeros((2, 16, 16, 3), np.uint8)})


def test_other_types_are_refused():
    with pytest.raises(TypeError, match="a data spec is 'synthetic', a path, a CellDataset"):
        resolve(42)


# --------------------------------------------------------------------------------------------
# files: .npz, manifest .csv


def test_an_npz_file(tmp_path):
    ds = _cells()
    path = ds.save(tmp_path / "cells.npz")
    sets = resolve(path)
    assert list(sets) == [SINGLE]
    np.testing.assert_array_equal(sets[SINGLE].images, ds.images)
    np.testing.assert_array_equal(resolve_one(str(path)).labels, ds.labels)
    with pytest.raises(ValueError, match="one data set with no splits"):
        resolve(path, splits=["train"])


def test_a_manifest_csv(tmp_path):
    _class_folders(tmp_path / "img")
    rows = [{"path": f"img/{c}/{i}.png", "label": c} for c in ("neutrophil", "lymphocyte")
            for i in range(2)]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    ds = resolve_one(tmp_path / "manifest.csv", image_size=16)
    assert len(ds) == 4 and ds.image_size == 16
    assert list(ds.label_names) == ["neutrophil"] * 2 + ["lymphocyte"] * 2


def test_another_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes.txt: not a CellDataset .npz or a manifest .csv"):
        resolve(tmp_path / "notes.txt")


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such file or folder; pass "
                                                "'synthetic', a folder of class folders"):
        resolve(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------
# folders


def test_a_folder_of_split_npz_files(tmp_path):
    train, test = _cells(seed=1), _cells(seed=2)
    train.save(tmp_path / "train.npz")
    test.save(tmp_path / "test.npz")
    (tmp_path / "notes.npz").write_bytes(b"")  # not a split name: ignored
    sets = resolve(tmp_path)
    assert sorted(sets) == ["test", "train"]
    np.testing.assert_array_equal(sets["test"].images, test.images)
    assert list(resolve(tmp_path, splits=["train"])) == ["train"]
    np.testing.assert_array_equal(resolve_one(tmp_path).images, test.images)
    with pytest.raises(ValueError, match=r"no split\(s\) \['val'\]; it has \['test', 'train'\]"):
        resolve(tmp_path, splits=["val"])


def test_a_folder_of_split_folders(tmp_path):
    _class_folders(tmp_path / "Train", per_class=3, seed=1)  # split names match in any case
    _class_folders(tmp_path / "test", per_class=1, seed=2)
    sets = resolve(tmp_path, image_size=16)
    assert list(sets) == ["train", "test"]  # in cytoviz's split order
    assert len(sets["train"]) == 6 and len(sets["test"]) == 2
    assert sets["train"].image_size == 16
    assert set(sets["test"].class_names) == {"lymphocyte", "neutrophil"}
    assert len(resolve_one(tmp_path, "train", image_size=16)) == 6
    with pytest.raises(ValueError, match=r"no split\(s\) \['val'\]; it has \['train', 'test'\]"):
        resolve(tmp_path, splits=["val"], image_size=16)


def test_a_folder_of_class_folders(tmp_path):
    _class_folders(tmp_path)
    sets = resolve(tmp_path, image_size=16)
    assert list(sets) == [SINGLE] and len(sets[SINGLE]) == 4
    assert sets[SINGLE].image_size == 16
    assert len(resolve_one(tmp_path, image_size=16)) == 4
    with pytest.raises(ValueError, match=r"a folder of class folders has no splits, so "
                                         r"split\(s\) \['test'\] cannot be read"):
        resolve(tmp_path, splits=["test"], image_size=16)
    with pytest.raises(ValueError, match="omit the split"):
        resolve_one(tmp_path, "test", image_size=16)
