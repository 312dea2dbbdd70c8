"""Issue 23, command-line and model side: bad inputs and faults give one clear line, not a
traceback, a silent misread or a lost result. One test (or a few) per defect of the README's
bad-input catalogue; tiny random models, a few images, few trials."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytoviz.cli import main
from cytoviz.data import CellDataset
from cytoviz.diffusion import ClassificationResult, ClassifyConfig, classify_to_folder
from cytoviz.diffusion.model import DiffusionModel

#: The classes of the ``tiny_model_dir`` fixture's models (conftest.TINY_CLASSES): not
#: canonical cell types, so loaders must map folder names onto the model's classes.
TINY_CLASSES = ("a", "b")
#: Few trials: every classify run here takes a second or less.
FAST = ["--max-trials", "4", "--min-trials", "2", "--no-tta", "--batch-size", "8", "--quiet"]


def _images(n: int, seed: int = 0, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _npz(path: Path, n: int, classes: tuple[str, ...] = TINY_CLASSES, seed: int = 0) -> Path:
    CellDataset(_images(n, seed), np.arange(n) % len(classes), classes).save(path)
    return path


def _png_folder(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, img in enumerate(_images(n, seed)):
        files.append(folder / f"cell_{i}.png")
        Image.fromarray(img).save(files[-1])
    return files


def _classify(model: Path, data: Path | str, out: Path, *extra: str) -> int:
    return main(["classify", "--model", str(model), "--data", str(data), "--out", str(out),
                 *FAST, *extra])


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def _copy_model(tiny_model_dir: Callable[..., Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir(), tmp_path / "model"))


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


# ------------------------------------------------------------------ 4. finished results kept
def test_classify_refuses_to_overwrite_a_finished_result(tmp_path, tiny_model_dir, capsys):
    data = _npz(tmp_path / "cells.npz", 4)
    out = tmp_path / "out"
    assert _classify(tiny_model_dir(), data, out) == 0
    before = (out / "result.npz").read_bytes()
    assert _classify(tiny_model_dir(), data, out, "--limit", "2") == 2
    _one_line_error(capsys, "--overwrite", str(out))
    assert (out / "result.npz").read_bytes() == before
    assert len(ClassificationResult.load(out / "result.npz")) == 4
    assert _classify(tiny_model_dir(), data, out, "--limit", "2", "--overwrite") == 0
    assert len(ClassificationResult.load(out / "result.npz")) == 2
    assert len(pd.read_csv(out / "predictions.csv")) == 2


def test_classify_to_folder_overwrite_flag(tmp_path, tiny_model_dir):
    model = DiffusionModel.from_pretrained(tiny_model_dir())
    data = CellDataset(_images(3), np.array([0, 1, 0]), TINY_CLASSES)
    cfg = ClassifyConfig(max_trials=4, min_trials=2, tta=False)
    classify_to_folder(model, data, tmp_path, config=cfg, progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        classify_to_folder(model, data.subset([0]), tmp_path, config=cfg, progress=False)
    assert len(ClassificationResult.load(tmp_path / "result.npz")) == 3
    r = classify_to_folder(model, data.subset([0]), tmp_path, config=cfg, progress=False,
                           overwrite=True)
    assert len(r) == 1 == len(ClassificationResult.load(tmp_path / "result.npz"))


# ------------------------------------------------------------------ 5. ordinary faults
def test_out_below_a_file_is_refused_before_the_work(tmp_path, tiny_model_dir, capsys,
                                                     monkeypatch):
    import cytoviz.diffusion._classify_cli as classify_cli
    import cytoviz.diffusion._cli as train_cli

    data = _npz(tmp_path / "cells.npz", 4)
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "out"

    def too_late(*args, **kwargs):
        raise AssertionError("the output folder was not checked before the heavy work")

    monkeypatch.setattr(classify_cli.DiffusionModel, "from_pretrained", too_late)
    monkeypatch.setattr(train_cli, "resolve", too_late)
    assert _classify(tiny_model_dir(), data, out) == 2
    _one_line_error(capsys, str(tmp_path / "file"))
    assert _classify(tiny_model_dir(), data, tmp_path / "file") == 2
    _one_line_error(capsys, str(tmp_path / "file"), "not a folder")
    assert main(["train", "--data", str(data), "--out", str(out), "--steps", "1",
                 "--vae-steps", "1", "--quiet"]) == 2
    _one_line_error(capsys, str(tmp_path / "file"))


def test_read_only_out_is_refused_before_the_work(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import cytoviz.diffusion._classify_cli as classify_cli
    import cytoviz.diffusion._cli as train_cli

    data = _npz(tmp_path / "cells.npz", 4)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("chmod does not stop this user writing (running as root?)")

        def too_late(*args, **kwargs):
            raise AssertionError("the output folder was not checked before the heavy work")

        monkeypatch.setattr(classify_cli.DiffusionModel, "from_pretrained", too_late)
        monkeypatch.setattr(train_cli, "resolve", too_late)
        assert _classify(tiny_model_dir(), data, out) == 1
        _one_line_error(capsys, str(out), "ermission denied")
        assert main(["train", "--data", str(data), "--out", str(out / "run"), "--quiet"]) == 1
        _one_line_error(capsys, str(out), "ermission denied")
    finally:
        out.chmod(0o755)


def test_read_only_file_system_is_refused_before_the_work(tmp_path, tiny_model_dir, capsys,
                                                         monkeypatch):
    """A read-only file system, simulated (chmod cannot stop root): every new file fails."""
    import tempfile

    import cytoviz.diffusion._classify_cli as classify_cli

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))

    def too_late(*args, **kwargs):
        raise AssertionError("the output folder was not checked before the heavy work")

    data, model = _npz(tmp_path / "cells.npz", 3), tiny_model_dir()
    monkeypatch.setattr(classify_cli.DiffusionModel, "from_pretrained", too_late)
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert _classify(model, data, tmp_path / "out") == 1
    _one_line_error(capsys, str(tmp_path / "out"), os.strerror(errno.EROFS))


def test_disk_full_names_the_file(tmp_path, tiny_model_dir, capsys, monkeypatch):
    data = _npz(tmp_path / "cells.npz", 3)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    assert _classify(tiny_model_dir(), data, tmp_path / "out") == 1
    _one_line_error(capsys, "predictions.csv", os.strerror(errno.ENOSPC))
    # the finished chunks are kept: with space again, the same command resumes
    assert any((tmp_path / "out" / "result.partial").glob("chunk-*.npz"))


def test_train_disk_full_names_the_file(tmp_path, capsys, monkeypatch):
    data = _npz(tmp_path / "cells.npz", 4)
    real = Path.write_text

    def full(self, *args, **kwargs):
        if "history" in self.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
               "--vae-steps", "1", "--batch-size", "2", "--vae-batch-size", "2", "--no-augment",
               "--val-fraction", "0", "--quiet"])
    assert rc == 1
    _one_line_error(capsys, "history.json", os.strerror(errno.ENOSPC))


def test_symlinked_partial_folder_is_refused_up_front(tmp_path, tiny_model_dir, capsys):
    data = _npz(tmp_path / "cells.npz", 3)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "result.partial").symlink_to(tmp_path / "elsewhere")
    assert _classify(tiny_model_dir(), data, out) == 2
    _one_line_error(capsys, "result.partial", "symbolic link")
    assert not (out / "result.npz").exists() and not any((tmp_path / "elsewhere").iterdir())


# ------------------------------------------------------------------ 6. model metadata
@pytest.mark.parametrize(("change", "needle"), [
    (lambda m: m["config"].update(image_size="16"), "image_size"),
    (lambda m: m["config"].update(class_embedding=1), "class_embedding"),
    (lambda m: m["config"].update(vae_channels=[8, "16"]), "vae_channels"),
    (lambda m: m["config"].update(n_tokens=True), "n_tokens"),
    (lambda m: m.pop("class_names"), "class_names"),
    (lambda m: m.update(class_names="ab"), "class_names"),
    (lambda m: m.update(class_names=["a", 2]), "class_names"),
    (lambda m: m.update(format_version="one"), "format_version"),
    (lambda m: m.update(config=[1, 2]), "config"),
    (lambda m: m.update(class_names=["a", "b", "c"]), "class"),
    (lambda m: m.update(class_names=[f"c{i}" for i in range(20)]), "class"),
])
def test_malformed_cytoviz_json_names_the_file(tmp_path, tiny_model_dir, change, needle):
    model = _copy_model(tiny_model_dir, tmp_path)
    _edit_json(model / "cytoviz.json", change)
    with pytest.raises(ValueError, match=needle) as info:
        DiffusionModel.from_pretrained(model)
    assert "cytoviz.json" in str(info.value)


def test_class_count_checked_against_the_training_summary(tmp_path, tiny_model_dir):
    model = _copy_model(tiny_model_dir, tmp_path)
    _edit_json(model / "cytoviz.json", lambda m: m.pop("n_classes", None))  # an older folder
    (model / "train_summary.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match=r"train_summary\.json"):
        DiffusionModel.from_pretrained(model)


@pytest.mark.parametrize(("key", "value"), [
    ("cross_attention_dim", "16"), ("block_out_channels", 16), ("in_channels", None),
])
def test_malformed_unet_config_names_the_file(tmp_path, tiny_model_dir, key, value, capsys):
    model = _copy_model(tiny_model_dir, tmp_path)
    _edit_json(model / "unet" / "config.json", lambda m: m.update({key: value}))
    with pytest.raises(ValueError, match=r"unet/config\.json"):
        DiffusionModel.from_pretrained(model)
    assert _classify(model, "synthetic", tmp_path / "out") == 2
    _one_line_error(capsys, "config.json")


def test_unet_that_disagrees_with_cytoviz_json(tmp_path, tiny_model_dir):
    model = _copy_model(tiny_model_dir, tmp_path)
    _edit_json(model / "cytoviz.json", lambda m: m["config"].update(token_dim=32))
    with pytest.raises(ValueError, match="token_dim"):
        DiffusionModel.from_pretrained(model)


def test_config_from_dict_checks_types(tmp_path):
    from cytoviz.diffusion import GenerateConfig

    assert GenerateConfig.from_dict({"guidance_scale": 5}).guidance_scale == 5  # int for float
    assert ClassifyConfig.from_dict({"mask_radius": None, "poly_coeffs": [1, 2.5]}).poly_coeffs \
        == (1, 2.5)
    for bad in ({"max_trials": "5"}, {"max_trials": True}, {"max_trials": 2.5},
                {"pruning": 1}, {"weighting": 3}, {"poly_coeffs": ["a"]}, {"poly_coeffs": 1.0},
                {"device": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ClassifyConfig.from_dict(bad)
    with pytest.raises(ValueError, match="illumination"):
        from cytoviz.data import DomainShift

        DomainShift.from_dict({"illumination": [1.0, 1.0]})  # a 3-tuple
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"config_class": "ClassifyConfig", "max_trials": "many"}))
    with pytest.raises(ValueError, match=r"cfg\.json.*max_trials"):
        ClassifyConfig.load(path)


# ------------------------------------------------------------------ 7. subsets, unlabelled
def test_classify_a_subset_of_the_model_classes(tmp_path, tiny_model_dir):
    data = _npz(tmp_path / "only_b.npz", 3, classes=("b",))
    out = tmp_path / "out"
    assert _classify(tiny_model_dir(), data, out) == 0
    df = pd.read_csv(out / "predictions.csv")
    assert list(df["true"]) == ["b"] * 3 and set(df["predicted"]) <= set(TINY_CLASSES)
    r = ClassificationResult.load(out / "result.npz")
    assert r.class_names == TINY_CLASSES and list(r.labels) == [1, 1, 1]


def test_classify_refuses_classes_the_model_lacks(tmp_path, tiny_model_dir, capsys):
    data = _npz(tmp_path / "abc.npz", 3, classes=("a", "b", "c"))
    assert _classify(tiny_model_dir(), data, tmp_path / "out") == 2
    _one_line_error(capsys, "'c'")


def test_classify_an_unlabelled_folder(tmp_path, tiny_model_dir):
    files = _png_folder(tmp_path / "cells", 3)
    out = tmp_path / "out"
    assert _classify(tiny_model_dir(), tmp_path / "cells", out) == 0
    df = pd.read_csv(out / "predictions.csv")
    assert [Path(p).name for p in df["path"]] == [f.name for f in files]
    assert df["true"].isna().all() and "correct" not in df.columns
    assert ClassificationResult.load(out / "result.npz").labels is None


def test_classify_an_unlabelled_manifest(tmp_path, tiny_model_dir):
    files = _png_folder(tmp_path / "cells", 2)
    pd.DataFrame({"path": [f.name for f in files]}).to_csv(tmp_path / "cells" / "list.csv",
                                                            index=False)
    out = tmp_path / "out"
    assert _classify(tiny_model_dir(), tmp_path / "cells" / "list.csv", out) == 0
    df = pd.read_csv(out / "predictions.csv")
    assert [Path(p).name for p in df["path"]] == [f.name for f in files]


def test_predictions_name_the_image_files_of_class_folders(tmp_path, tiny_model_dir):
    a = _png_folder(tmp_path / "cells" / "a", 2, seed=1)
    b = _png_folder(tmp_path / "cells" / "b", 1, seed=2)
    out = tmp_path / "out"
    assert _classify(tiny_model_dir(), tmp_path / "cells", out) == 0
    df = pd.read_csv(out / "predictions.csv")
    assert list(df["path"]) == [str(p) for p in (*a, *b)]
    assert list(df["true"]) == ["a", "a", "b"]


# ------------------------------------------------------------------ 8. --split
def test_bogus_split_is_refused_before_anything_is_built(tmp_path, tiny_model_dir, monkeypatch,
                                                         capsys):
    import cytoviz.data._resolve as resolve_mod
    import cytoviz.diffusion._classify_cli as classify_cli

    def too_late(*args, **kwargs):
        raise AssertionError("built before the split name was checked")

    monkeypatch.setattr(resolve_mod, "default_splits", too_late)
    monkeypatch.setattr(classify_cli.DiffusionModel, "from_pretrained", too_late)
    with pytest.raises(SystemExit) as info:
        _classify(tiny_model_dir(), "synthetic", tmp_path / "out", "--split", "tset")
    assert info.value.code == 2
    _one_line_error(capsys, "tset", "test")


def test_split_is_honoured_for_folders(tmp_path, tiny_model_dir, capsys):
    for split, n in (("train", 2), ("Test", 3)):
        for cls in TINY_CLASSES:
            _png_folder(tmp_path / "cells" / split / cls, n)
    for split, rows in (("train", 4), ("test", 6), ("TEST", 6), (None, 6)):
        out = tmp_path / f"out_{split}"
        extra = [] if split is None else ["--split", split]
        assert _classify(tiny_model_dir(), tmp_path / "cells", out, *extra) == 0
        assert len(pd.read_csv(out / "predictions.csv")) == rows
    # a folder of class folders has no splits: a split is refused, not ignored
    assert _classify(tiny_model_dir(), tmp_path / "cells" / "train", tmp_path / "o2",
                     "--split", "val") == 2
    _one_line_error(capsys, "split")


# ------------------------------------------------------------------ 9. psychometric CLI
@pytest.fixture
def no_fit(monkeypatch):
    import cytoviz.psychometric._cli as psy_cli

    def too_late(*args, **kwargs):
        raise AssertionError("fitted before the arguments were checked")

    monkeypatch.setattr(psy_cli, "fit_observers", too_late)


def _xkn_csv(path: Path, k: list[object]) -> Path:
    pd.DataFrame({"x": [0.1, 0.5, 0.9][: len(k)], "k": k, "n": [10] * len(k)}).to_csv(
        path, index=False)
    return path


def test_psychometric_checks_formats_and_out_first(tmp_path, capsys, no_fit):
    csv = _xkn_csv(tmp_path / "d.csv", [1, 5, 9])
    out = tmp_path / "o"
    assert main(["psychometric", "--csv", str(csv), "--out", str(out), "--formats", "jpg"]) == 2
    _one_line_error(capsys, "jpg")
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    assert main(["psychometric", "--csv", str(csv), "--out", str(tmp_path / "file")]) == 2
    _one_line_error(capsys, str(tmp_path / "file"))


def test_psychometric_csv_errors_name_file_line_and_column(tmp_path, capsys, no_fit):
    (tmp_path / "empty.csv").write_text("")
    assert main(["psychometric", "--csv", str(tmp_path / "empty.csv"), "--out",
                 str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "empty.csv", "empty")
    (tmp_path / "header.csv").write_text("x,k,n\n")
    assert main(["psychometric", "--csv", str(tmp_path / "header.csv"), "--out",
                 str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "header.csv", "no rows")
    csv = _xkn_csv(tmp_path / "text.csv", [1, "many", 9])
    assert main(["psychometric", "--csv", str(csv), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "text.csv", "line 3", "'k'", "many")
    csv = _xkn_csv(tmp_path / "kn.csv", [1, 5, 11])  # k > n on the third data row
    assert main(["psychometric", "--csv", str(csv), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "kn.csv", "line 4")
    pd.DataFrame({"confidence": [0.2, "high", 0.9], "correct": [True, False, True]}).to_csv(
        tmp_path / "raw.csv", index=False)
    assert main(["psychometric", "--csv", str(tmp_path / "raw.csv"), "--out",
                 str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "raw.csv", "line 3", "'confidence'")
    pd.DataFrame({"confidence": [0.2, 0.5, 0.9], "correct": [True, "maybe", True]}).to_csv(
        tmp_path / "raw2.csv", index=False)
    assert main(["psychometric", "--csv", str(tmp_path / "raw2.csv"), "--out",
                 str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "raw2.csv", "line 3", "'correct'", "maybe")


# ------------------------------------------------------------------ interrupts
def test_interrupt_message_says_the_same_command_resumes(tmp_path, tiny_model_dir, capsys,
                                                         monkeypatch):
    import cytoviz.diffusion._classify_cli as classify_cli
    import cytoviz.diffusion._cli as train_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(classify_cli, "classify_to_folder", interrupted)
    monkeypatch.setattr(train_cli, "train", interrupted)
    data = _npz(tmp_path / "cells.npz", 4)
    assert _classify(tiny_model_dir(), data, tmp_path / "out") == 130
    _one_line_error(capsys, "interrupted", "same command", "resume", "result.partial")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
                 "--vae-steps", "1", "--quiet"]) == 130
    _one_line_error(capsys, "interrupted", "same command", "resume", "checkpoints")

