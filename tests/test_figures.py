"""The main job's figures drawn from stored protocol tables (Figures 3 and 4, Table 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cytoviz import figures
from cytoviz._io import sha256_files
from cytoviz._paths import RESULTS_ENV, default_model_dir, results_dir
from cytoviz.evaluation import stale_reason
from cytoviz.figures import FiguresConfig, make_figures

STORED = ["fig3", "fig4", "table2"]


def _provenance(folder, sha=None):
    """provenance.json recording ``sha`` (default: the shipped model's) for the three tables."""
    sha = sha if sha is not None else sha256_files(default_model_dir())
    prov = {t: {"diffusion_model": "shipped", "diffusion_model_sha256": sha}
            for t in ("anomaly", "domain_shift", "low_data")}
    (folder / "provenance.json").write_text(json.dumps(prov))


def _tables(folder, sha=None):
    _provenance(folder, sha)
    rng = np.random.default_rng(0)
    rows = []
    for model in ("diffusion", "baseline"):
        for held in ("blast", "erythroblast"):
            for i in range(12):
                abnormal = i < 3
                c = float(rng.uniform(0, 0.5) if abnormal else rng.uniform(0.3, 1.0))
                rows.append({"model": model, "held_out": held, "seed": 0, "image": i,
                             "true_class": held if abnormal else "neutrophil",
                             "is_abnormal": abnormal, "certainty": c, "certainty_norm": c})
    pd.DataFrame(rows).to_csv(folder / "anomaly.csv", index=False)
    shift = [{"model": m, "seed": s, "split": sp, "test_set": name, "accuracy": a,
              "balanced_accuracy": a, "n_images": 100, "source": "trained", "budget": "cpu"}
             for m in ("diffusion", "baseline") for s in (0, 1)
             for (sp, name), a in zip([("test", "in-domain"), ("test_mild", "mild shift"),
                                       ("test_strong", "strong shift")], (0.9, 0.7, 0.5),
                                      strict=True)]
    pd.DataFrame(shift).to_csv(folder / "domain_shift.csv", index=False)
    low = [{"model": m, "n_per_class": n, "repeat": 0, "n_train": 10 * n, "accuracy": 0.5,
            "balanced_accuracy": 0.4 + n / 500, "n_images": 50, "budget": "cpu"}
           for m in ("diffusion", "baseline") for n in (10, 20, 50, 150)]
    pd.DataFrame(low).to_csv(folder / "low_data.csv", index=False)


@pytest.fixture
def config():
    return FiguresConfig.fast_preset().replace(formats=("html",))


def test_stored_tables_are_drawn(tmp_path, monkeypatch, config):
    results = tmp_path / "results"
    results.mkdir()
    _tables(results)
    monkeypatch.setenv(RESULTS_ENV, str(results))
    written = make_figures(tmp_path / "out", only=STORED, config=config, progress=False)
    for name in STORED:
        assert written[name], f"{name} was not drawn"
        assert all(p.is_file() and p.stat().st_size > 0 for p in written[name])
    table2 = pd.read_csv(tmp_path / "out" / "table2_domain_shift.csv")
    assert table2["model"].tolist() == ["CNN baseline", "CytoDiffusion"]
    assert table2.loc[0, "in-domain"] == "90.00 ± 0.00"
    assert (tmp_path / "out" / "table2_domain_shift.tex").read_text().count(r"$\pm$") >= 6


def test_stale_tables_are_refused_before_any_work(tmp_path, monkeypatch, config):
    results = tmp_path / "results"
    results.mkdir()
    _tables(results, sha="0" * 64)
    monkeypatch.setenv(RESULTS_ENV, str(results))
    with pytest.raises(ValueError, match=r"stale result table.*domain_shift\.csv.*another model"
                       r".*run_evaluations\.sh.*--allow-stale"):
        make_figures(tmp_path / "out", only=STORED, config=config, progress=False)
    assert not (tmp_path / "out").exists()
    (results / "provenance.json").unlink()
    assert "records no fingerprint" in stale_reason("anomaly", folder=results)


def test_allow_stale_marks_the_titles(tmp_path, monkeypatch, config):
    results = tmp_path / "results"
    results.mkdir()
    _tables(results, sha="0" * 64)
    monkeypatch.setenv(RESULTS_ENV, str(results))
    written = make_figures(tmp_path / "out", only=["fig4", "table2"], config=config,
                           allow_stale=True, progress=False)
    for name in ("fig4", "table2"):
        html = next(p for p in written[name] if p.suffix == ".html").read_text()
        assert figures.STALE_MARK in html, name
    assert "STALE" in (tmp_path / "out" / "table2_domain_shift.tex").read_text()


def test_current_tables_are_not_marked(tmp_path, monkeypatch, config):
    results = tmp_path / "results"
    results.mkdir()
    _tables(results)
    monkeypatch.setenv(RESULTS_ENV, str(results))
    assert all(stale_reason(t, folder=results) is None
               for t in ("anomaly", "domain_shift", "low_data"))
    written = make_figures(tmp_path / "out", only=["fig4"], config=config, progress=False)
    html = next(p for p in written["fig4"] if p.suffix == ".html").read_text()
    assert figures.STALE_MARK not in html


#: Stored tables not yet regenerated with the shipped recipe (issue 19's pieces still to run:
#: `bash scripts/run_evaluations.sh --list`). Strict: a table that starts to match fails here
#: until it is taken off this list, and a regenerated table that goes stale fails outright.
PENDING_REGENERATION: set[str] = set()


@pytest.mark.parametrize("table", ["anomaly", "domain_shift", "low_data", "few_shot",
                                   "generation_agreement", "augmentation", "prototypes"])
def test_committed_tables_match_the_committed_model(table, request):
    if table in PENDING_REGENERATION:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason=f"issue 19: {table} is not yet regenerated with the shipped recipe"))
    assert stale_reason(table) is None, stale_reason(table)


def test_missing_tables_are_skipped_with_the_command(tmp_path, monkeypatch, capsys, config):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "empty"))
    written = make_figures(tmp_path / "out", only=STORED, config=config, progress=False)
    assert all(written[name] == [] for name in STORED)
    assert capsys.readouterr().out.count("bash scripts/run_evaluations.sh") == 3


def test_shipped_tables_load():
    """The measured tables committed under cytoviz/_shipped/results/ parse as their protocols wrote them."""
    from cytoviz.evaluation import anomaly_auc, domain_shift_table, stored_results

    if not (results_dir() / "domain_shift.csv").is_file():
        pytest.skip("cytoviz/_shipped/results/ has no evaluation tables yet (bash scripts/run_evaluations.sh)")
    wide = domain_shift_table(stored_results("domain_shift"))
    assert {"in-domain", "mild shift", "strong shift"} <= set(wide.columns)
    auc = anomaly_auc(stored_results("anomaly"))
    assert set(auc["held_out"]) == {"blast", "erythroblast"} and auc["auc"].between(0, 1).all()
    low = stored_results("low_data")
    assert sorted(low["n_per_class"].unique()) == [10, 20, 50, 150]


def test_same_seed_same_figure_bytes(tmp_path):
    """Determinism on the CPU: generating Figure 8 twice gives byte-identical PNGs."""
    cfg = FiguresConfig.fast_preset().replace(formats=("png",))
    a = make_figures(tmp_path / "a", only=["fig8"], config=cfg, progress=False)["fig8"]
    b = make_figures(tmp_path / "b", only=["fig8"], config=cfg, progress=False)["fig8"]
    assert [p.name for p in a] == [p.name for p in b] and a
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), f"{pa.name} differs between two runs"


def test_cached_classification_is_keyed_by_the_model(tmp_path, monkeypatch, tiny_model_dir):
    """A retrained default model is never scored with the cached pass of the old one."""
    import cytoviz.diffusion as cvd
    from cytoviz.data import CellDataset

    rng = np.random.default_rng(0)
    cells = CellDataset(rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8), np.array([0, 1]),
                        ("a", "b"))
    calls = []
    real = cvd.classify

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cvd, "classify", counting)
    cfg = FiguresConfig.fast_preset().replace(min_trials=2, max_trials=2)

    def context(seed):
        folder = tiny_model_dir(seed)
        monkeypatch.setenv("CYTOVIZ_DEFAULT_MODEL", str(folder))
        ctx = figures._Context(tmp_path / "out", cfg, progress=False)
        ctx.test_subset = lambda: cells
        return ctx

    first = context(0).result
    assert len(calls) == 1 and len(first) == 2
    assert len(context(0).result) == 2  # same model: from the cache
    assert len(calls) == 1
    assert len(context(1).result) == 2  # another model: classified again, old cache replaced
    assert len(calls) == 2
    assert len(list((tmp_path / "out" / "cache").glob("classify_test*.npz"))) == 1


def test_preview_without_real_images_says_so(tmp_path, monkeypatch, capsys, config):
    monkeypatch.delenv("CYTOVIZ_PBC_EXAMPLE", raising=False)
    written = make_figures(tmp_path / "out", only=["preview"], config=config, progress=False)
    (html,) = written["preview"]
    assert "preview without real images" in capsys.readouterr().out
    assert "Synthetic cells only: no real images given" in html.read_text()


def test_preview_takes_the_real_images_given(tmp_path, monkeypatch, capsys, config):
    from PIL import Image

    monkeypatch.setenv("CYTOVIZ_PBC_EXAMPLE", str(tmp_path / "not-this-one"))
    with pytest.raises(FileNotFoundError, match="not-this-one: no such folder of real images"):
        make_figures(tmp_path / "out", only=["preview"], config=config, progress=False)
    real = tmp_path / "real"
    (real / "neutrophil").mkdir(parents=True)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(real / "neutrophil" / "0.png")
    written = make_figures(tmp_path / "out", only=["preview"], config=config, real=real,
                           progress=False)
    assert f"preview with 1 real image(s) from {real}" in capsys.readouterr().out
    assert "Synthetic cells only" not in written["preview"][0].read_text()


def test_table1_shifted_diffusion_rows_come_from_the_stored_table(tmp_path, monkeypatch, capsys):
    """Only rows of this run's model are used; without them Table 1 says which piece to run."""
    from types import SimpleNamespace

    results = tmp_path / "results"
    results.mkdir()
    rows = [{"model": "diffusion", "seed": 0, "split": sp, "test_set": sp, "accuracy": a,
             "balanced_accuracy": a, "n_images": 600, "source": "pretrained: default_model",
             "model_sha256": sha, "budget": "shipped"}
            for sha in ("aaa", "bbb") for sp, a in (("test", 0.9), ("test_mild", 0.8),
                                                  ("test_strong", 0.5 if sha == "aaa" else 0.1))]
    pd.DataFrame(rows).to_csv(results / "domain_shift.csv", index=False)
    monkeypatch.setenv(RESULTS_ENV, str(results))
    got = figures._shifted_diffusion_rows(SimpleNamespace(model_sha256=lambda: "aaa"))
    assert [r["test set"].split()[0] for r in got] == ["mild", "strong"]
    assert [r["balanced accuracy"] for r in got] == [80.0, 50.0]
    assert all(r["n images"] == 600 for r in got)
    assert figures._shifted_diffusion_rows(SimpleNamespace(model_sha256=lambda: "ccc")) == []
    assert "shift-diffusion-seed0" in capsys.readouterr().out


def test_fig2d_reports_the_threshold_at_80_percent_correct(tmp_path, monkeypatch):
    """Figure 2 D draws the paper's threshold (80 % correct, METHOD.md section 5), not m."""
    from types import SimpleNamespace

    from cytoviz.data import simulate_panel, synthesize
    from cytoviz.diffusion import ClassificationResult, ClassifyConfig
    from cytoviz.psychometric import CompiledModels, PsychometricConfig

    ds = synthesize(6, seed=3)
    n, k = len(ds), len(ds.class_names)
    rng = np.random.default_rng(0)
    errors = rng.uniform(0.5, 1.5, (n, k)).astype(np.float32)
    errors[np.arange(n), ds.labels] -= rng.uniform(0.0, 0.6, n).astype(np.float32)
    result = ClassificationResult(
        class_names=tuple(ds.class_names), config=ClassifyConfig(tta=False), trial_errors=errors,
        trial_timesteps=np.full(n, 500), trial_weights=np.ones(n), n_trials=np.ones(n, int),
        n_evals=np.full(n, k), remaining=np.ones((n, k), bool), labels=ds.labels)
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name, *a, **kw: drawn.update({name: fig}) or [])
    ctx = SimpleNamespace(
        result=result, panel=simulate_panel(ds, n_common=n, per_expert=n, seed=0),
        psych_config=lambda: PsychometricConfig(engine="grid", seed=0),
        compiled_models=CompiledModels(), out=tmp_path, config=FiguresConfig.fast_preset())
    figures._fig2(ctx)
    fits = pd.read_csv(tmp_path / "fig2_expert_fits.csv", comment="#")
    t80 = fits[fits["parameter"] == "threshold_80"]
    assert len(t80) == 12 and set(t80["axis"]) == {"model confidence", "consensus expert confidence"}
    m = fits[fits["parameter"] == "threshold"].set_index(["axis", "observer"])["mean"]
    w = fits[fits["parameter"] == "width"].set_index(["axis", "observer"])["mean"]
    np.testing.assert_allclose(t80.set_index(["axis", "observer"])["mean"],
                               (m + 0.23541 * w).loc[t80.set_index(["axis", "observer"]).index],
                               atol=1e-4)
    fig = drawn["fig2d_thresholds"]
    assert fig.layout.xaxis.title.text == "threshold at 80 % correct"
    points = [tr for tr in fig.data if tr.mode == "markers"]
    model_axis = t80[t80["axis"] == "model confidence"]["mean"].to_numpy()
    np.testing.assert_allclose(points[0].x, model_axis)
