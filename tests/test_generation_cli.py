"""``cytoviz evaluate {class-agreement,augmentation,prototypes}`` on tiny random models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytoviz.data import CellDataset
from cytoviz.diffusion.model import DiffusionModel
from cytoviz.evaluation import generation as G
from cytoviz.evaluation import runner
from cytoviz.evaluation.budget import EvalBudget

FAST = EvalBudget.cpu_fast()
GEN = ["--steps", "2", "--formats", "html", "--quiet", "--budget", "fast"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random diffusion model and a tiny baseline on the fast budget's data, saved."""
    from cytoviz.evaluation.baseline import train_baseline

    root = tmp_path_factory.mktemp("shipped")
    splits = G._splits("synthetic", FAST)
    model = DiffusionModel.build(splits["train"].class_names, FAST.model, seed=0)
    model.save_pretrained(root / "model")
    clf = train_baseline(splits["train"], None, FAST.baseline.replace(epochs=1), progress=False)
    clf.save(root / "baseline")
    return root / "model", root / "baseline"


def test_class_agreement_cli_and_resume(shipped, tmp_path, monkeypatch, capsys) -> None:
    from cytoviz.cli import main

    model, baseline = shipped
    out = tmp_path / "gen"
    args = ["evaluate", "class-agreement", "--model", str(model), "--baseline", str(baseline),
            "-n", "2", "--out", str(out), *GEN]
    assert main(args) == 0
    table = pd.read_csv(out / "class_agreement.csv")
    assert set(table["classifier"]) == {"diffusion", "baseline"}
    n_classes = 10
    for _, g in table.groupby("classifier"):
        assert len(g) == n_classes + 1 and g["intended"].iloc[-1] == "all"
        assert (g["n"].iloc[:-1] == 2).all() and g["n"].iloc[-1] == 2 * n_classes
    assert table["agreement"].between(0, 1).all()
    assert (table["agreement_low"] <= table["agreement"]).all()
    assert (table["budget"] == "fast").all() and (table["steps"] == 2).all()
    assert (table.loc[table["classifier"] == "diffusion", "max_trials"] == FAST.max_trials).all()
    assert (out / "class_agreement_bars.html").is_file() and (out / "generated_grid.html").is_file()
    [npz] = sorted((out / "generated").glob("*.npz"))
    generated = CellDataset.load(npz)
    assert len(generated) == 2 * n_classes and generated.image_size == FAST.image_size
    assert "agreement" in capsys.readouterr().out
    # the images are those of the Python API (same seed, same sampler)
    from cytoviz.diffusion.generate import GenerateConfig, generate

    ref = generate(DiffusionModel.from_pretrained(model), "all", 2,
                   config=GenerateConfig(num_inference_steps=2), progress=False)
    np.testing.assert_array_equal(generated.images, ref.images)
    # a rerun reuses the images and the classifications
    monkeypatch.setattr(runner, "classify_images", lambda *a, **k: pytest.fail("classified again"))
    monkeypatch.setattr(G, "generate",
                        lambda *a, **k: pytest.fail("generated again"))
    assert main(args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "class_agreement.csv"), table)


def test_class_agreement_python_baseline_only(shipped) -> None:
    from cytoviz.diffusion.generate import GenerateConfig

    model, baseline = shipped
    table, generated = G.generated_class_agreement(
        model, baseline, n_per_class=1, models=["baseline"], budget="fast",
        generate_config=GenerateConfig(num_inference_steps=1), progress=False)
    assert set(table["classifier"]) == {"baseline"} and len(generated) == 10
    assert table.attrs["budget"] == "fast"
    with pytest.raises(FileNotFoundError, match="no cytoviz model"):
        G.generated_class_agreement(baseline, budget="fast", progress=False)


def test_augmentation_cli_with_pool_reuse(shipped, tmp_path) -> None:
    from cytoviz.cli import main

    model, _ = shipped
    out = tmp_path / "aug"
    assert main(["evaluate", "augmentation", "--model", str(model), "--ks", "0", "2",
                 "--real-per-class", "2", "--epochs", "1", "--out", str(out), *GEN]) == 0
    table = pd.read_csv(out / "augmentation.csv")
    assert list(table["k"]) == [0, 2]
    assert list(table["n_synthetic"]) == [0, 20] and (table["n_real"] == 20).all()
    assert list(table["epochs"]) == [1, 1] and not table["equal_steps"].any()
    assert (table["n_real_per_class"] == 2).all() and (table["budget"] == "fast+custom").all()
    for col in ("accuracy", "macro_f1", "auc_ovr"):
        assert table[col].between(0, 1).all()
    assert (out / "augmentation_curve.html").is_file()
    [pool] = sorted((out / "generated").glob("*.npz"))
    assert CellDataset.load(pool).class_counts()["basophil"] == 2
    # the pool of one run is the --generated pool of another (no model needed)
    out2 = tmp_path / "aug2"
    assert main(["evaluate", "augmentation", "--model", str(tmp_path / "nowhere"), "--generated",
                 str(pool), "--ks", "0", "1", "--real-per-class", "2", "--epochs", "1",
                 "--equal-steps", "--out", str(out2), *GEN]) == 0
    again = pd.read_csv(out2 / "augmentation.csv")
    assert list(again["epochs"]) == [2, 1] and again["equal_steps"].all()  # 20 vs 30 images
    assert list(again["n_synthetic"]) == [0, 10] and again["pool"].iloc[0] == str(pool)
    assert (again["steps"] == 2).all()  # the sampler settings of the pool, from its meta
    assert not (out2 / "generated").exists()
    # too small a pool: a clear error
    with pytest.raises(ValueError, match="fewer than max"):
        G.synthetic_augmentation(generated=pool, ks=(0, 5), n_real=2, budget="fast",
                                 progress=False)


def test_augmentation_equal_steps_scales_epochs() -> None:
    from cytoviz.data import SynthConfig, synthesize
    from cytoviz.evaluation.augmentation import augmentation_curve
    from cytoviz.evaluation.baseline import BaselineConfig

    cfg = SynthConfig(image_size=16, classes=("basophil", "blast", "lymphocyte"), seed=0)
    small, test = synthesize(2, config=cfg), synthesize(2, config=cfg, seed=1)
    pool = synthesize(6, config=cfg, seed=2)
    base = BaselineConfig(channels=(8, 16), norm_groups=4, epochs=2, batch_size=16)
    kw = dict(generated=pool, baseline_config=base, progress=False)
    table = augmentation_curve(None, small, test, ks=(0, 2, 6), equal_steps=True, **kw)
    # 6, 12 and 24 training images: epochs * images stays 2 * 24
    assert list(table["epochs"]) == [8, 4, 2]
    plain = augmentation_curve(None, small, test, ks=(0, 2, 6), **kw)
    assert list(plain["epochs"]) == [2, 2, 2]


def test_prototypes_cli_and_resume(shipped, tmp_path, monkeypatch) -> None:
    from cytoviz.cli import main
    from cytoviz.evaluation import prototypes as PR

    model, baseline = shipped
    out = tmp_path / "proto"
    args = ["evaluate", "prototypes", "--model", str(model), "--baseline", str(baseline),
            "-n", "2", "--fine-tune-steps", "2", "--out", str(out), *GEN]
    assert main(args) == 0
    table = pd.read_csv(out / "prototypes.csv")
    assert list(table["generator"].unique()) == ["one-hot", "prototype"]
    for _, g in table.groupby("generator"):
        assert len(g) == 11 and g["intended"].iloc[-1] == "all" and g["n"].iloc[-1] == 20
    assert table["agreement"].between(0, 1).all()
    assert np.isfinite(table.loc[table["intended"] == "all", "frechet_baseline_features"]).all()
    assert (table["fine_tune_steps"] == 2).all() and (table["embedding"] == "baseline").all()
    assert table["frechet_features"].str.contains("not Inception FID").all()
    assert np.isfinite(table["final_loss"]).all()
    for name in ("prototype_comparison", "generated_grid_one-hot", "generated_grid_prototype"):
        assert (out / f"{name}.html").is_file()
    folders = sorted(p.name for p in (out / "models").iterdir())
    assert len(folders) == 2 and any(f.startswith("prototype") for f in folders)
    proto_dir = next(p for p in (out / "models").iterdir() if p.name.startswith("prototype"))
    gen = PR.PrototypeGenerator.load(proto_dir)
    assert isinstance(gen.conditioning, PR.PrototypeConditioning)
    # a rerun trains nothing and generates nothing
    monkeypatch.setattr(PR, "train_prototype_conditioned",
                        lambda *a, **k: pytest.fail("fine-tuned again"))
    monkeypatch.setattr(PR, "learn_prototypes", lambda *a, **k: pytest.fail("learned again"))
    assert main(args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "prototypes.csv"), table)


def test_prototypes_vae_embedding_python(shipped) -> None:
    from cytoviz.diffusion.generate import GenerateConfig

    model, baseline = shipped
    table, samples = G.prototype_comparison(
        "synthetic", model, baseline, embedding="vae", projection="pca", n_per_class=2,
        budget="fast", generate_config=GenerateConfig(num_inference_steps=1), progress=False)
    assert set(samples) == {"one-hot", "prototype"}
    assert (table["embedding"] == "vae").all() and (table["projection"] == "pca").all()
    with pytest.raises(ValueError, match="embedding"):
        G.prototype_comparison(model=model, baseline=baseline, embedding="pixels", budget="fast")


def test_prototype_figure_structure() -> None:
    from cytoviz.pl import prototype_comparison

    table = pd.DataFrame({
        "generator": ["one-hot"] * 3 + ["prototype"] * 3,
        "intended": ["a", "b", "all"] * 2,
        "agreement": [0.5, 1.0, 0.75, 0.25, 0.5, 0.375],
        "frechet_baseline_features": [3.0, 4.0, 2.0, 5.0, 6.0, 4.5],
    })
    fig = prototype_comparison(table)
    assert len(fig.data) == 4 and [t.type for t in fig.data] == ["bar"] * 4
    assert [t.name for t in fig.data] == ["one-hot", "one-hot", "prototype", "prototype"]
    assert [t.showlegend for t in fig.data] == [True, False, True, False]
    assert list(fig.data[1].y) == [3.0, 4.0, 2.0]
    assert "not FID" in fig.layout.annotations[1].text
    with pytest.raises(ValueError, match="frechet"):
        prototype_comparison(table.drop(columns="frechet_baseline_features"))


def test_help_lists_the_generation_protocols(capsys) -> None:
    from cytoviz.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    for word in ("class-agreement", "augmentation", "prototypes", "--real-per-class", "--ks",
                 "--fine-tune-steps", "--embedding"):
        assert word in text


def test_prototypes_with_a_crop_model_need_a_crop_baseline(shipped) -> None:
    """A model with an input_crop generates its crop: the baseline that embeds and checks the
    cells must take that crop (the shipped model's case), and a whole-image one is refused."""
    from cytoviz.diffusion.generate import GenerateConfig
    from cytoviz.evaluation.baseline import train_baseline

    _, whole = shipped
    splits = G._splits("synthetic", FAST)
    crop = FAST.image_size // 2
    model = DiffusionModel.build(splits["train"].class_names,
                                 FAST.model.replace(input_crop=crop), seed=0)
    clf = train_baseline(splits["train"].centre_crop(crop), None,
                         FAST.baseline.replace(epochs=1), progress=False)
    gen = GenerateConfig(num_inference_steps=1)
    table, samples = G.prototype_comparison("synthetic", model, clf, n_per_class=2,
                                            budget="fast", generate_config=gen, progress=False)
    assert all(s.image_size == crop for s in samples.values())
    assert table["frechet_baseline_features"].notna().any()
    with pytest.raises(ValueError, match=f"--input-crop {crop}"):
        G.prototype_comparison("synthetic", model, whole, n_per_class=2, budget="fast",
                               generate_config=gen, progress=False)
