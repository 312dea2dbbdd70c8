"""Evaluation protocols: budgets, AUC and KDE, colour transfer, tables, figures, resume, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from cytoviz import pl
from cytoviz.anomaly import anomaly_auc, certainty_kde
from cytoviz.evaluation import runner
from cytoviz.evaluation.anomaly_detection import (
    ANOMALY_COLUMNS,
    anomaly_scores,
    anomaly_table,
    anomaly_test_set,
)
from cytoviz.evaluation.budget import EvalBudget
from cytoviz.evaluation.colour import lab_stats, lab_to_rgb, reinhard_transfer, rgb_to_lab
from cytoviz.evaluation.low_data_regime import low_data
from cytoviz.evaluation.shift import TEST_SETS, domain_shift, few_shot
from cytoviz.evaluation.splits import class_proportional_split, eval_data
from cytoviz.evaluation.tables import domain_shift_latex, domain_shift_table, stored_results

FAST = EvalBudget.cpu_fast()


@pytest.fixture(scope="module")
def splits():
    return eval_data("synthetic", budget=FAST)


def _table(normal, abnormal, model="diffusion", held_out="blast"):
    c = np.r_[normal, abnormal]
    a = np.r_[np.zeros(len(normal), bool), np.ones(len(abnormal), bool)]
    return anomaly_table(c, a, model=model, held_out=held_out)


# ---------------------------------------------------------------------------- budget


def test_budget_presets_and_validation():
    fast, cpu, paper = EvalBudget.cpu_fast(), EvalBudget.cpu(), EvalBudget.paper()
    assert (fast.name, cpu.name, paper.name) == ("fast", "cpu", "paper")
    assert paper.seeds == 5 and paper.low_data_sizes == (10, 20, 50, 150)
    assert paper.max_trials == 2000 and paper.test_per_class is None
    assert cpu.model.preset == "tiny" and cpu.max_trials < paper.max_trials
    assert fast.model.image_size == fast.image_size == 16
    assert EvalBudget.from_dict(cpu.to_dict()) == cpu
    with pytest.raises(ValueError, match="image_size"):
        EvalBudget.cpu(image_size=32)
    with pytest.raises(ValueError, match="min_trials"):
        EvalBudget.cpu(max_trials=5, min_trials=10)
    with pytest.raises(ValueError, match="unknown budget"):
        EvalBudget.preset("huge")
    assert EvalBudget.cpu(name="cpu+custom").name == "cpu+custom"
    with pytest.raises(ValueError, match="name"):
        EvalBudget.cpu(name="mine")


def test_eval_data_synthetic_and_errors(splits, tmp_path):
    assert {"train", "val", "test", "test_mild", "test_strong"} <= set(splits)
    assert splits["train"].image_size == FAST.image_size
    with pytest.raises(FileNotFoundError, match="no such folder"):
        eval_data(tmp_path / "missing", budget=FAST)
    with pytest.raises(ValueError, match="no 'train' split"):
        eval_data({"test": splits["test"]}, budget=FAST)


def test_eval_data_real_folder_split(pbc_dir):
    s = eval_data(pbc_dir, budget=FAST)
    train, test = s["train"], s["test"]
    assert set(s) == {"train", "test"}
    assert train.class_counts() == test.class_counts()
    assert set(train.meta["path"]).isdisjoint(test.meta["path"])


def test_class_proportional_split(splits):
    ds = splits["train"]
    pick, rest = class_proportional_split(ds, 30, seed=1)
    assert len(pick) == 30 and len(np.intersect1d(pick, rest)) == 0
    assert len(pick) + len(rest) == len(ds)
    counts = np.bincount(ds.labels, minlength=len(ds.class_names))
    got = np.bincount(ds.labels[pick], minlength=len(ds.class_names))
    assert np.all(np.abs(got - 30 * counts / counts.sum()) <= 1.0 + 1e-9)
    assert np.all(np.bincount(ds.labels[rest], minlength=len(counts)) >= 1)


# ---------------------------------------------------------------------------- AUC and KDE


def test_auc_hand_computed_cases():
    assert anomaly_auc(_table([3, 4, 5], [0, 1, 2]))["auc"].iloc[0] == 1.0
    assert anomaly_auc(_table([0, 1, 2], [3, 4, 5]))["auc"].iloc[0] == 0.0
    # pairs (normal, abnormal): (1,1) tie 0.5, (1,0) 1, (2,1) 1, (2,0) 1 -> 3.5 / 4
    assert anomaly_auc(_table([1, 2], [1, 0]))["auc"].iloc[0] == pytest.approx(0.875)
    assert anomaly_auc(_table([1, 1], [1, 1]))["auc"].iloc[0] == pytest.approx(0.5)
    both = pd.concat([_table([3, 4], [1, 2]), _table([1, 2], [3, 4], model="baseline")])
    auc = anomaly_auc(both).set_index("model")
    assert auc.loc["diffusion", "auc"] == 1.0 and auc.loc["baseline", "auc"] == 0.0
    assert auc.loc["diffusion", "n_normal"] == 2 and auc.loc["diffusion", "n_abnormal"] == 2
    only_normal = anomaly_table(np.array([1.0, 2.0]), np.zeros(2, bool), model="m", held_out="h")
    assert np.isnan(anomaly_auc(only_normal)["auc"].iloc[0])


def test_anomaly_table_normalisation():
    t = _table([2.0, 4.0], [1.0, -1.0])
    assert t["certainty_norm"].max() == 1.0
    np.testing.assert_allclose(t["certainty_norm"], [0.5, 1.0, 0.25, -0.25])
    assert list(t.columns) == list(ANOMALY_COLUMNS)
    with pytest.raises(ValueError, match="NaN"):
        anomaly_table(np.array([1.0, np.nan]), np.array([0, 1], bool), model="m", held_out="h")
    with pytest.raises(ValueError, match="2 values"):
        anomaly_table(np.array([1.0, 2.0]), np.array([0, 1, 1], bool), model="m", held_out="h")


def test_certainty_kde_integrates_to_one_and_bandwidth():
    rng = np.random.default_rng(0)
    t = _table(rng.uniform(0.5, 1.0, 40), rng.uniform(0.0, 0.4, 25))
    kde = certainty_kde(t, grid=400)
    assert set(kde["group"]) == {"normal", "abnormal"}
    for _, curve in kde.groupby("group"):
        x, d = curve["x"].to_numpy(), curve["density"].to_numpy()
        assert np.trapezoid(d, x) == pytest.approx(1.0, abs=0.01)
        assert np.all(d >= 0)
    # the abnormal curve peaks at lower certainty than the normal one
    peak = {g: c["x"].to_numpy()[c["density"].argmax()] for g, c in kde.groupby("group")}
    assert peak["abnormal"] < peak["normal"]
    narrow = certainty_kde(t, bandwidth=0.01)
    assert set(narrow["bandwidth"]) == {0.01}
    assert narrow["density"].max() > kde["density"].max()
    with pytest.raises(ValueError, match="bandwidth"):
        certainty_kde(t, bandwidth=0)


# ---------------------------------------------------------------------------- colour


def test_lab_known_values_and_roundtrip():
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)
    rgb = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert np.abs(back.astype(int) - rgb).max() <= 1


def test_reinhard_matches_reference_stats(splits):
    src = splits["test_strong"].images
    ref = lab_stats(splits["train"].images)
    out = reinhard_transfer(src, ref)
    assert out.shape == src.shape and out.dtype == np.uint8
    lab = rgb_to_lab(out)
    mean, std = lab.mean(axis=(1, 2)), lab.std(axis=(1, 2))
    np.testing.assert_allclose(mean, np.broadcast_to(ref.mean, mean.shape), atol=1.5)
    # out-of-gamut colours are clipped, so a few low-contrast images fall short of the target std
    close = np.abs(std - ref.std) <= 0.1 * ref.std + 0.5
    assert close.mean() >= 0.9
    np.testing.assert_allclose(np.median(std, axis=0), ref.std, rtol=0.05)
    before = rgb_to_lab(src).mean(axis=(1, 2))
    assert np.abs(before - ref.mean).max() > np.abs(mean - ref.mean).max()
    whole = reinhard_transfer(src, ref, per_image=False)
    np.testing.assert_allclose(rgb_to_lab(whole).reshape(-1, 3).mean(0), ref.mean, atol=1.5)


def test_reinhard_identity_when_source_is_reference(splits):
    img = splits["test"].images[0]
    out = reinhard_transfer(img, lab_stats(img))
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img).max() <= 1
    with pytest.raises(TypeError, match="LabStats"):
        reinhard_transfer(img, {"mean": [0, 0, 0]})


# ---------------------------------------------------------------------------- tables and figures


def _shift_table():
    rows = []
    for m, vals in (("diffusion", (0.9, 0.8)), ("baseline", (0.6, 0.7))):
        for seed, v in enumerate(vals):
            for split, name in TEST_SETS.items():
                rows.append({"model": m, "seed": seed, "split": split, "test_set": name,
                             "accuracy": v, "balanced_accuracy": v, "n_images": 10,
                             "source": "trained", "budget": "fast"})
    return pd.DataFrame(rows)


def test_domain_shift_table_format():
    wide = domain_shift_table(_shift_table())
    assert list(wide.columns) == ["in-domain", "mild shift", "strong shift", "runs"]
    assert wide.loc["CytoDiffusion", "in-domain"] == "85.00 ± 7.07"
    assert wide.loc["CNN baseline", "strong shift"] == "65.00 ± 7.07"
    assert wide.loc["CytoDiffusion", "runs"] == 2
    assert wide.attrs["budget"] == "fast"
    latex = domain_shift_latex(wide)
    assert r"85.00 $\pm$ 7.07" in latex and "±" not in latex
    assert r"(\%)" in latex and "budget fast" in latex
    assert latex.lstrip().startswith(r"\begin{table}")


def test_figures_structure():
    t = pd.concat([_table([0.9, 0.8, 0.7], [0.2, 0.3], m, h)
                   for m in ("diffusion", "baseline") for h in ("blast", "erythroblast")])
    t.attrs["budget"] = "fast"
    fig = pl.anomaly_kde(certainty_kde(t), anomaly_auc(t))
    assert isinstance(fig, go.Figure) and len(fig.data) == 8
    assert [tr.meta["group"] for tr in fig.data[:2]] == ["normal", "abnormal"]
    assert {(tr.meta["model"], tr.meta["held_out"]) for tr in fig.data} == {
        (m, h) for m in ("diffusion", "baseline") for h in ("blast", "erythroblast")}
    texts = [a.text for a in fig.layout.annotations]
    assert sum(s.startswith("AUC = 1.000") for s in texts) == 4
    assert "fast" in fig.layout.title.text and fig.layout.template.layout.font.size == 10
    bars = pl.domain_shift_bars(_shift_table())
    assert [b.type for b in bars.data] == ["bar", "bar"]
    np.testing.assert_allclose(bars.data[0].y, [85, 85, 85])
    np.testing.assert_allclose(bars.data[0].error_y.array, [7.0711] * 3, atol=1e-3)
    low = pd.DataFrame({"model": ["diffusion"] * 4 + ["baseline"] * 4,
                        "n_per_class": [10, 10, 20, 20] * 2, "repeat": [0, 1] * 4,
                        "balanced_accuracy": [0.5, 0.6, 0.7, 0.8, 0.3, 0.3, 0.4, 0.6]})
    curve = pl.low_data_curve(low)
    assert len(curve.data) == 4
    means = [tr for tr in curve.data if tr.meta["kind"] == "mean"]
    np.testing.assert_allclose(means[0].y, [55, 75])
    np.testing.assert_allclose(means[1].y, [30, 50])
    assert curve.layout.xaxis.type == "log"
    few = pd.DataFrame([
        {"model": m, "seed": 0, "target": t_, "colour_transfer": ct, "stage": st,
         "accuracy": 0.5 + 0.1 * (st == "after") + 0.05 * ct, "balanced_accuracy": 0.5}
        for m in ("diffusion", "baseline") for t_ in ("test_mild", "test_strong")
        for ct in (False, True) for st in ("before", "after")])
    fb = pl.few_shot_bars(few)
    assert len(fb.data) == 4 and all(b.type == "bar" for b in fb.data)
    assert list(fb.data[1].x[1]) == ["before", "fine-tuned", "before", "fine-tuned"]
    np.testing.assert_allclose(fb.data[1].y, [55, 65, 55, 65])
    with pytest.raises(ValueError, match="lacks column"):
        pl.domain_shift_bars(low)


# ---------------------------------------------------------------------------- protocols end to end


def test_anomaly_protocol_end_to_end(splits, tmp_path):
    t = anomaly_scores(splits, budget=FAST, held_out=("blast", "erythroblast"), progress=False,
                       out=tmp_path)
    assert list(t.columns) == [*ANOMALY_COLUMNS, "train_steps", "model_sha256", "budget"]
    assert set(t["model"]) == {"diffusion", "baseline"}
    assert set(t["held_out"]) == {"blast", "erythroblast"}
    test = anomaly_test_set(splits, budget=FAST)
    # every score of each model (ANOMALY_SCORES: 2 for the diffusion model, 3 for the CNN)
    assert len(t) == 2 * (2 + 3) * len(test)
    assert set(t.loc[t["model"] == "baseline", "score"]) == {"zeta", "msp", "energy"}
    first = t[(t["model"] == "diffusion") & (t["held_out"] == "blast") & (t["score"] == "zeta")]
    assert (first["true_class"].to_numpy() == test.label_names).all()
    for (_, h, _), g in t.groupby(["model", "held_out", "score"]):
        assert (g["is_abnormal"] == (g["true_class"] == h)).all()
        assert g["is_abnormal"].sum() == FAST.test_per_class
        assert g["certainty_norm"].max() == pytest.approx(1.0)
        assert np.isfinite(g["certainty"]).all()
    assert t.attrs["budget"] == "fast" and (t["budget"] == "fast").all()
    auc = anomaly_auc(t)
    assert len(auc) == 10 and auc["auc"].between(0, 1).all()
    fig = pl.anomaly_kde(certainty_kde(t), anomaly_auc(t))
    assert len(fig.data) == 8


def test_domain_shift_end_to_end(splits):
    t = domain_shift(splits, budget=FAST, progress=False)
    assert set(t["split"]) == {"test", "test_mild", "test_strong"}
    assert len(t) == 2 * 3
    assert t["balanced_accuracy"].between(0, 1).all() and t["accuracy"].between(0, 1).all()
    assert (t["source"] == "trained").all()
    wide = domain_shift_table(t)
    assert wide.shape == (2, 4)


def test_domain_shift_pretrained_every_seed(splits, tmp_path, monkeypatch):
    from cytoviz.diffusion import DiffusionModel

    model = DiffusionModel.build(splits["train"].class_names, FAST.model, seed=0)
    model.save_pretrained(tmp_path / "pre")
    calls = []
    monkeypatch.setattr(runner, "fit_diffusion", lambda *a, **k: calls.append(a) or model)
    t = domain_shift(splits, budget=FAST, models=["diffusion"], seeds=2,
                     pretrained=tmp_path / "pre", progress=False)
    assert calls == []  # every seed uses the pretrained model
    src = t.groupby("seed")["source"].first()
    assert src[0].startswith("pretrained") and src[1].startswith("pretrained")
    wrong = DiffusionModel.build(("a", "b", "c"), FAST.model)
    wrong.save_pretrained(tmp_path / "wrong")
    with pytest.raises(ValueError, match="classes"):
        domain_shift(splits, budget=FAST, models=["diffusion"], pretrained=tmp_path / "wrong",
                     progress=False)


def test_low_data_and_resume(splits, tmp_path, monkeypatch):
    calls = {"diffusion": 0, "baseline": 0}
    real_b, real_d = runner.fit_baseline, runner.fit_diffusion

    def count_b(*a, **k):
        calls["baseline"] += 1
        return real_b(*a, **k)

    def count_d(*a, **k):
        calls["diffusion"] += 1
        return real_d(*a, **k)

    monkeypatch.setattr(runner, "fit_baseline", count_b)
    monkeypatch.setattr(runner, "fit_diffusion", count_d)
    t1 = low_data(splits, budget=FAST, out=tmp_path, progress=False)
    assert calls == {"diffusion": 2, "baseline": 2}
    assert sorted(t1["n_per_class"].unique()) == [2, 4]
    assert (t1.groupby("model")["n_train"].apply(lambda s: s.is_monotonic_increasing)).all()
    assert t1["balanced_accuracy"].between(0, 1).all()
    t2 = low_data(splits, budget=FAST, out=tmp_path, progress=False)
    assert calls == {"diffusion": 2, "baseline": 2}  # everything came from the cache
    pd.testing.assert_frame_equal(t1, t2, check_dtype=False)
    # one more repeat: only the new units are trained
    low_data(splits, budget=FAST, out=tmp_path, repeats=[0, 1], progress=False)
    assert calls == {"diffusion": 4, "baseline": 4}
    with pytest.raises(ValueError, match="another budget"):
        low_data(splits, budget=FAST.replace(max_trials=7), out=tmp_path, progress=False)


def test_low_data_on_pbc_examples(pbc_dir):
    t = low_data(pbc_dir, budget=FAST, models=["baseline"], sizes=[2], progress=False)
    assert len(t) == 1 and t["n_train"].iloc[0] == 2 * 8
    assert 0 <= t["balanced_accuracy"].iloc[0] <= 1


def test_few_shot_end_to_end(splits, tmp_path):
    t = few_shot(splits, budget=FAST, out=tmp_path, progress=False)
    assert set(t["stage"]) == {"before", "after"}
    assert set(t["colour_transfer"]) == {False, True}
    assert set(t["target"]) == {"test_mild", "test_strong"}
    assert len(t) == 2 * 2 * 2 * 2
    assert (t["n_finetune"] <= FAST.few_shot_images).all()
    assert t["accuracy"].between(0, 1).all()
    fig = pl.few_shot_bars(t)
    assert len(fig.data) == 4
    with pytest.raises(ValueError, match="target split"):
        few_shot(splits, budget=FAST, targets=["test_xyz"], progress=False)


def test_few_shot_pretrained_sources(splits, tmp_path, monkeypatch):
    from cytoviz.diffusion import DiffusionModel
    from cytoviz.evaluation.baseline import train_baseline

    model = DiffusionModel.build(splits["train"].class_names, FAST.model, seed=0)
    model.save_pretrained(tmp_path / "pre")
    clf = train_baseline(splits["train"], None, FAST.baseline, progress=False, device="cpu")
    clf.save(tmp_path / "pre_base")
    calls = []
    monkeypatch.setattr(runner, "fit", lambda *a, **k: calls.append(a))
    t = few_shot(splits, budget=FAST, colour_transfer=(False,), targets=["test_mild"],
                 pretrained=tmp_path / "pre", pretrained_baseline=tmp_path / "pre_base",
                 progress=False)
    assert calls == []  # neither source model was trained
    assert set(t["model"]) == {"diffusion", "baseline"} and len(t) == 4
    wrong = DiffusionModel.build(("a", "b", "c"), FAST.model)
    wrong.save_pretrained(tmp_path / "wrong")
    with pytest.raises(ValueError, match="classes"):
        few_shot(splits, budget=FAST, models=["diffusion"], pretrained=tmp_path / "wrong",
                 progress=False)


# ---------------------------------------------------------------------------- CLI


def test_cli_help(capsys):
    from cytoviz.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("anomaly", "domain-shift", "low-data", "few-shot", "--budget", "--seeds"):
        assert word in text


def test_cli_tiny_run_and_resume(tmp_path, monkeypatch):
    from cytoviz.cli import main

    out = tmp_path / "run"
    args = ["evaluate", "anomaly", "--out", str(out), "--budget", "fast", "--models", "baseline",
            "--held-out", "blast", "--formats", "html", "--quiet"]
    assert main(args) == 0
    scores = pd.read_csv(out / "anomaly_scores.csv")
    auc = pd.read_csv(out / "anomaly_auc.csv")
    assert set(scores["model"]) == {"baseline"} and (scores["budget"] == "fast").all()
    assert 0 <= auc["auc"].iloc[0] <= 1
    assert (out / "anomaly_kde.html").is_file() and (out / "budget.json").is_file()
    calls = []
    monkeypatch.setattr(runner, "fit_baseline", lambda *a, **k: calls.append(1))
    assert main(args) == 0 and calls == []
    assert main([*args[:5], "cpu", *args[6:]]) == 2  # other budget in the same folder: refused


def test_cli_overrides_name_the_budget(tmp_path):
    import argparse

    from cytoviz.evaluation._cli import _budget

    ns = argparse.Namespace(budget="cpu", train_steps=10, vae_steps=5, epochs=2, max_trials=8,
                            min_trials=None, test_per_class=3, data_scale=None)
    b = _budget(ns)
    assert b.name == "cpu+custom" and b.train.steps == 10 and b.min_trials == 8
    assert b.baseline.epochs == 2 and b.test_per_class == 3
    assert b.train.lr == EvalBudget.cpu().train.lr and b.train.lr_schedule == "constant"
    ns2 = argparse.Namespace(**{**vars(ns), "lr": 2e-3, "lr_schedule": "cosine"})
    b2 = _budget(ns2)
    assert b2.name == "cpu+custom" and b2.train.lr == 2e-3 and b2.train.lr_schedule == "cosine"
    assert b2.train.steps == 10  # the other overrides still apply
    with pytest.raises(SystemExit, match="--lr must be positive"):
        _budget(argparse.Namespace(**{**vars(ns), "lr": -1.0}))


@pytest.mark.slow
def test_cli_static_figures(tmp_path):
    from cytoviz.cli import main

    out = tmp_path / "run"
    assert main(["evaluate", "low-data", "--out", str(out), "--budget", "fast", "--models",
                 "baseline", "--sizes", "2", "--formats", "png,svg", "--quiet"]) == 0
    assert (out / "low_data_curve.png").stat().st_size > 1000
    assert (out / "low_data_curve.svg").is_file() and (out / "low_data.csv").is_file()


def test_diffusion_checkpoint_picked_on_validation(splits, tmp_path, monkeypatch):
    budget = FAST.replace(val_checkpoints=2)
    scores = iter([0.7, 0.4])  # the first checkpoint is better on validation
    seen = []

    def fake_score(model, ds, b, seed, progress):
        seen.append(len(ds))
        return {"balanced_accuracy": next(scores)}

    monkeypatch.setattr(runner, "score_diffusion", fake_score)
    runner.fit_diffusion(splits["train"], splits["val"], budget, seed=0, folder=tmp_path,
                         progress=False)
    assert len(seen) == 2 and seen[0] == len(splits["val"].class_names) * budget.val_per_class
    from cytoviz._io import load_json

    summary = load_json(tmp_path / "selected" / "train_summary.json")
    assert summary["step"] == budget.train.vae_steps + budget.train.steps // 2
    monkeypatch.setattr(runner, "score_diffusion", lambda *a, **k: pytest.fail("retrained"))
    runner.fit_diffusion(splits["train"], splits["val"], budget, seed=0, folder=tmp_path,
                         progress=False)


def test_domain_shift_table_notes_pretrained():
    t = _shift_table()
    t.loc[(t["model"] == "diffusion") & (t["seed"] == 0), "source"] = "pretrained: cytoviz/_shipped/default_model"
    wide = domain_shift_table(t)
    assert wide.loc["CytoDiffusion", "note"] == "seed 0: pretrained: cytoviz/_shipped/default_model"
    assert wide.loc["CNN baseline", "note"] == ""


def test_stored_results_reads_tables_and_names_the_missing_one(tmp_path):
    frame = pd.DataFrame({"model": ["baseline"] * 3, "colour_transfer": ["True", "False", "1"],
                          "stage": ["after"] * 3})
    frame.to_csv(tmp_path / "few_shot.csv", index=False)
    got = stored_results("few_shot", folder=tmp_path)
    assert got["colour_transfer"].tolist() == [True, False, True]
    with pytest.raises(FileNotFoundError, match=r"domain_shift\.csv.*few_shot.*run_evaluations"):
        stored_results("domain_shift", folder=tmp_path)
