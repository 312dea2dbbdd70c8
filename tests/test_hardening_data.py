"""Issue 23, data side: bad inputs that used to be misread, or wrote outside the output folder.

Each test is one entry of the README's bad-input catalogue; all are tiny (16 px images, random
models of :meth:`ModelConfig.smallest`).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cytoviz._io import inside, load_npz
from cytoviz.authenticity import load_answers
from cytoviz.classes import UnknownClassError, check_class_names
from cytoviz.cli import main
from cytoviz.data import (
    CellDataset,
    ImageLoadError,
    load_folder,
    load_manifest,
    prepare_image,
    resolve,
    write_dataset,
)
from cytoviz.data._resolve import parse_class_map
from cytoviz.data.panel import load_panel
from cytoviz.diffusion.model import DiffusionModel


def _png(path: Path, seed: int = 0, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def _tiny(n: int = 2, names: tuple[str, ...] = ("a", "b"), meta: pd.DataFrame | None = None
          ) -> CellDataset:
    images = np.zeros((n, 16, 16, 3), dtype=np.uint8)
    return CellDataset(images, np.arange(n) % len(names), names, meta=meta)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


# --------------------------------------------------------------------------------------------
# 1. class names never become paths outside the output folder


@pytest.mark.parametrize("bad", ["../../X", "/abs/X", "a/b", "a\\b", ".", "..", "", " a", "a\n",
                                 "tab\there"])
def test_class_names_that_are_not_plain_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="class name"):
        check_class_names(["ok", bad], source="cytoviz.json")
    with pytest.raises(ValueError, match="class name"):
        _tiny(names=("ok", bad))
    assert check_class_names(["immature granulocyte", "a-b_c"], source="x") == (
        "immature granulocyte", "a-b_c")
    with pytest.raises(ValueError, match=r"x: .*duplicate"):
        check_class_names(["a", "a"], source="x")


@pytest.mark.parametrize("bad", ["../../X", "/abs/X"])
def test_tampered_model_class_names_refused_nothing_written(
    bad: str, tmp_path: Path, tiny_model_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str],
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir(), model_dir)
    meta_path = model_dir / "cytoviz.json"
    meta = json.loads(meta_path.read_text())
    target = bad if not bad.startswith("/") else str(tmp_path / "abs" / "X")
    meta["class_names"] = [target, meta["class_names"][1]]
    meta_path.write_text(json.dumps(meta))
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=r"cytoviz\.json.*class name"):
        DiffusionModel.from_pretrained(model_dir)
    out = tmp_path / "run" / "out"
    rc = main(["generate", "--model", str(model_dir), "--class", "all", "-n", "1", "--steps", "1",
               "--out", str(out), "--quiet"])
    assert rc == 2
    assert "cytoviz.json" in capsys.readouterr().err
    assert _files(tmp_path) == before  # nothing written, inside --out or outside it


def test_write_dataset_keeps_every_file_inside_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    evil = _tiny(meta=pd.DataFrame({"id": ["../../evil", "ok"]}))
    with pytest.raises(ValueError, match="image id"):
        write_dataset(evil, out)
    assert not (tmp_path / "evil.png").exists()
    # a class folder that is a symlink to elsewhere is refused: the resolved path is checked
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir(exist_ok=True)
    os.symlink(elsewhere, out / "a")
    with pytest.raises(ValueError, match="outside"):
        write_dataset(_tiny(), out)
    assert list(elsewhere.iterdir()) == []
    assert inside(tmp_path, "a/b.png") == tmp_path / "a" / "b.png"
    with pytest.raises(ValueError, match="outside"):
        inside(tmp_path / "x", "../y.png")


def test_saved_data_set_with_path_class_names_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    _tiny().save(path)
    arrays = dict(np.load(path))
    arrays["class_names"] = np.asarray(["../x", "b"])
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"d\.npz.*class name"):
        CellDataset.load(path)


# --------------------------------------------------------------------------------------------
# 2. quiz answers: words parsed, not cast


def test_quiz_answer_words_are_parsed_and_unknown_ones_refused(tmp_path: Path) -> None:
    path = tmp_path / "answers.csv"
    path.write_text("participant,item,called_synthetic,answer_class\n"
                    "P,0,no,\nP,1,real,\nP,2,False,\nP,3, YES ,\nP,4,synthetic,\nP,5,0,\n"
                    "P,6,1,\nP,7,fake,\nP,8,TRUE,\n")
    back = load_answers(path)
    assert back["called_synthetic"].tolist() == [False, False, False, True, True, False, True,
                                                 True, True]
    path.write_text("participant,item,called_synthetic,answer_class\nP,0,yes,\nP,1,maybe,\n")
    with pytest.raises(ValueError, match=r"answers\.csv, line 3.*'maybe'"):
        load_answers(path)
    path.write_text("participant,item,answer_class\nP,0,\n")
    with pytest.raises(ValueError, match=r"answers\.csv.*called_synthetic"):
        load_answers(path)
    path.write_text('participant,item,called_synthetic\n"P,0,yes\n')
    with pytest.raises(ValueError, match=r"answers\.csv"):
        load_answers(path)


# --------------------------------------------------------------------------------------------
# 3. manifest rows


def _manifest(tmp_path: Path, rows: list[str], header: str = "path,label") -> Path:
    for i in range(3):
        _png(tmp_path / "imgs" / f"c{i}.png", seed=i)
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    return csv


def test_manifest_row_with_extra_fields_is_refused(tmp_path: Path) -> None:
    csv = _manifest(tmp_path, ["imgs/c0.png,neutrophil", "imgs/c1.png,neutrophil,imgs/c2.png,basophil"])
    with pytest.raises(ValueError, match=r"labels\.csv, line 3.*4 fields.*2"):
        load_manifest(csv, image_size=16)


def test_manifest_duplicates_and_two_labels_are_refused(tmp_path: Path) -> None:
    csv = _manifest(tmp_path, ["imgs/c0.png,neutrophil", "imgs/c1.png,basophil", "imgs/c0.png,neutrophil"])
    with pytest.raises(ValueError, match=r"line 4.*repeats line 2"):
        load_manifest(csv, image_size=16)
    csv = _manifest(tmp_path, ["imgs/c0.png,neutrophil", "./imgs/c0.png,basophil"])
    with pytest.raises(ValueError, match=r"line 3.*two labels.*line 2"):
        load_manifest(csv, image_size=16)
    # one label per expert is not a duplicate
    csv = _manifest(tmp_path, ["imgs/c0.png,neutrophil,A", "imgs/c0.png,basophil,B"],
                    "path,label,expert")
    assert len(load_manifest(csv, image_size=16)) == 2
    csv = _manifest(tmp_path, ["imgs/c0.png,neutrophil,A", "imgs/c0.png,basophil,A"],
                    "path,label,expert")
    with pytest.raises(ValueError, match=r"line 3.*line 2"):
        load_manifest(csv, image_size=16)


def test_semicolon_manifest_gets_a_separator_hint(tmp_path: Path) -> None:
    csv = _manifest(tmp_path, ["imgs/c0.png;neutrophil"], "path;label")
    with pytest.raises(ValueError, match="separated by ';'"):
        load_manifest(csv, image_size=16)


# --------------------------------------------------------------------------------------------
# containment: manifests and folders stay inside their root unless told otherwise


def test_manifest_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    outside = _png(tmp_path / "secret.png")
    _png(data / "imgs" / "c0.png")
    csv = data / "labels.csv"
    for row in ("../secret.png", str(outside)):
        csv.write_text(f"path,label\nimgs/c0.png,neutrophil\n{row},basophil\n")
        with pytest.raises(ValueError, match=r"labels\.csv, line 3.*outside .*contain=False"):
            load_manifest(csv, image_size=16)
        with pytest.warns(UserWarning, match="outside .*contain=False"):
            assert len(load_manifest(csv, image_size=16, on_error="skip")) == 1
        assert len(load_manifest(csv, image_size=16, contain=False)) == 2


def test_folder_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _png(root / "neutrophil" / "a.png")
    _png(root / "basophil" / "b.png", seed=1)
    secret = _png(tmp_path / "secret.png", seed=2)
    os.symlink(secret, root / "basophil" / "link.png")
    with pytest.raises(ImageLoadError, match=r"link\.png.*outside .*contain=False"):
        load_folder(root, image_size=16)
    with pytest.warns(UserWarning, match="outside .*contain=False"):
        assert len(load_folder(root, image_size=16, on_error="skip")) == 2
    assert len(load_folder(root, image_size=16, contain=False)) == 3
    # a symlink that stays inside the folder is fine
    os.remove(root / "basophil" / "link.png")
    os.symlink(root / "neutrophil" / "a.png", root / "basophil" / "link.png")
    assert len(load_folder(root, image_size=16)) == 3


def test_cli_allow_outside_root_flag(tmp_path: Path) -> None:
    from cytoviz.cli import build_parser

    for cmd in (["train", "--data", "d", "--out", "o"],
                ["classify", "--model", "m", "--data", "d", "--out", "o"]):
        args = build_parser().parse_args([*cmd, "--allow-outside-root", "--max-image-pixels", "5",
                                          "--class-map", "x=neutrophil"])
        assert args.allow_outside_root is True and args.max_image_pixels == 5
        assert args.class_map == "x=neutrophil"


# --------------------------------------------------------------------------------------------
# 10. smaller ones


def test_class_map_reaches_the_resolver_and_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _png(root / "weird" / "a.png")
    _png(root / "basophil" / "b.png", seed=1)
    with pytest.raises(UnknownClassError, match="--class-map"):
        resolve(root, image_size=16)
    ds = resolve(root, image_size=16, class_map={"weird": "neutrophil"})["all"]
    assert ds.class_names == ("basophil", "neutrophil")
    assert parse_class_map("weird=neutrophil, junk = none") == {"weird": "neutrophil", "junk": None}
    (tmp_path / "map.json").write_text('{"weird": "neutrophil"}')
    assert parse_class_map(str(tmp_path / "map.json")) == {"weird": "neutrophil"}
    (tmp_path / "map.csv").write_text("folder,class\nweird,neutrophil\n")
    assert parse_class_map(str(tmp_path / "map.csv")) == {"weird": "neutrophil"}
    with pytest.raises(ValueError, match="FOLDER=CLASS"):
        parse_class_map("weird")


def test_npz_errors_name_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("just some text\n")
    with pytest.raises(ValueError, match=r"notes\.npz.*not an npz") as info:
        load_npz(text)
    assert "pickle" not in str(info.value)
    partial = tmp_path / "partial.npz"
    np.savez(partial, kind=np.asarray("CellDataset"), format_version=np.asarray(1),
             labels=np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"partial\.npz.*images"):
        CellDataset.load(partial)
    bad = tmp_path / "bad.npz"
    _tiny().save(bad)
    arrays = dict(np.load(bad))
    arrays["labels"] = np.asarray([0, 7])
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"bad\.npz.*labels"):
        CellDataset.load(bad)


def test_expert_table_unknown_label_refused_naming_value_and_line(tmp_path: Path) -> None:
    path = tmp_path / "experts.csv"
    path.write_text("image,expert,years,label,confidence\n"
                    "0,A,5,neutrophil,High\n1,A,5,martian,Low\n")
    with pytest.raises(ValueError, match=r"experts\.csv, line 3.*'martian'"):
        load_panel(path)
    path.write_text("image,expert,years,label,confidence\n0,A,5,NEUTROPHIL,High\n")
    assert load_panel(path)["label"].tolist() == ["neutrophil"]


def test_max_image_pixels_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _png(tmp_path / "big" / "neutrophil" / "big.png", size=100)
    _png(tmp_path / "big" / "basophil" / "b.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match="--max-image-pixels"):
        prepare_image(path, 16)
    assert prepare_image(path, 16, max_image_pixels=20_000).shape == (16, 16, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000  # the global limit is left as it was
    ds = resolve(tmp_path / "big", image_size=16, max_image_pixels=20_000)["all"]
    assert len(ds) == 2


def test_animated_gif_warns_and_uses_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match=r"anim\.gif.*2 frames"):
        img = prepare_image(path, 16)
    assert img[8, 8, 0] > 200 and img[8, 8, 2] < 50
    still = tmp_path / "still.gif"
    frames[0].save(still)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_image(still, 16)


def test_corrupt_partial_manifest_says_how_to_resume(tmp_path: Path,
                                                     tiny_model_dir: Callable[..., Path]) -> None:
    from cytoviz.diffusion.classify_config import ClassifyConfig
    from cytoviz.diffusion.resumable import PARTIAL_DIR, classify_to_folder

    model = DiffusionModel.from_pretrained(tiny_model_dir())
    partial = tmp_path / "out" / PARTIAL_DIR
    partial.mkdir(parents=True)
    (partial / "manifest.json").write_text('{"kind": "ClassifyPart')
    with pytest.raises(ValueError, match=r"manifest\.json.*delete .*result\.partial"):
        classify_to_folder(model, _tiny(names=model.class_names), tmp_path / "out",
                           config=ClassifyConfig(max_trials=2, min_trials=2), progress=False)
