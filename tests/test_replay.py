"""Replaying a pruning rule on an unpruned run gives what the pruned run itself gives."""

from __future__ import annotations

import numpy as np
import pytest

from cytoviz.data import CellDataset
from cytoviz.diffusion import ClassifyConfig, DiffusionModel, classify
from cytoviz.diffusion.replay import replay_pruning

CLASSES = ("a", "b", "c", "d")


@pytest.fixture(scope="module")
def runs(tiny_model_config):
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0).eval()
    images = np.random.default_rng(5).integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8)
    ds = CellDataset(images, np.array([0, 1, 2, 3, 0, 1]), CLASSES)
    base = ClassifyConfig(max_trials=30, min_trials=4, prune_every=2, p_threshold=0.2,
                          batch_size=16, seed=0, keep_error_maps=False)
    unpruned = classify(model, ds, config=base.replace(pruning=False), progress=False)
    return model, ds, base, unpruned


@pytest.mark.parametrize("changes", [
    {}, {"min_trials": 2, "prune_every": 1, "p_threshold": 0.3},
    {"keep_top": (3, 2)}, {"min_trials": 5, "prune_every": 1, "p_threshold": 0.3, "keep_top": (2, 3)},
    {"min_trials": 6, "prune_every": 1, "p_threshold": 0.1, "keep_top": (2, 3, 4, 2, 9, 1)},
])
def test_replay_matches_the_online_run(runs, changes):
    model, ds, base, unpruned = runs
    cfg = base.replace(**changes)
    online = classify(model, ds, config=cfg, progress=False)
    replayed = replay_pruning(unpruned, cfg)
    # the rule must prune something, or the comparison says nothing
    assert (online.n_evals < len(CLASSES) * cfg.max_trials).any()
    np.testing.assert_array_equal(replayed.n_trials, online.n_trials)
    np.testing.assert_array_equal(replayed.n_evals, online.n_evals)
    np.testing.assert_array_equal(replayed.remaining, online.remaining)
    np.testing.assert_array_equal(replayed.prediction, online.prediction)
    np.testing.assert_allclose(replayed.trial_errors, online.trial_errors, rtol=1e-5, atol=1e-6)


def test_keep_top_keeps_the_lowest_mean_errors_at_its_trial_only():
    from cytoviz.diffusion.classify import decide

    errors = np.array([[3.0, 1.0, 2.0, 4.0], [3.0, 1.0, 2.0, 0.0]])  # means 3, 1, 2, 2
    cfg = ClassifyConfig(min_trials=50, max_trials=100, keep_top=(2, 2))
    assert decide(errors, np.ones(4, bool), cfg).tolist() == [False, True, True, False]  # stable tie
    assert decide(errors[:1], np.ones(4, bool), cfg).all()  # not its trial yet
    assert decide(errors, np.ones(4, bool), cfg.replace(pruning=False)).all()
    # already at most k classes in play: nothing changes
    two = np.array([True, False, False, True])
    assert decide(errors, two, cfg).tolist() == two.tolist()
    for bad in ((0, 2), (2, 0), (2,), (2, 3, 4), (4, 3, 2, 2), (2, 3, 2, 2)):
        with pytest.raises(ValueError, match="keep_top"):
            ClassifyConfig(max_trials=100, keep_top=bad)
    assert ClassifyConfig.from_dict(cfg.to_dict()) == cfg  # a JSON round trip keeps the tuple


def test_a_schedule_of_cuts_applies_each_cut_at_its_own_trial():
    from cytoviz.diffusion.classify import decide

    cfg = ClassifyConfig(min_trials=50, max_trials=100, keep_top=(2, 3, 3, 1))
    assert cfg.top_k_cuts() == [(2, 3), (3, 1)]
    errors = np.array([[3.0, 1.0, 2.0, 4.0], [3.0, 1.0, 2.0, 0.0], [0.0, 9.0, 0.0, 0.0]])
    after2 = decide(errors[:2], np.ones(4, bool), cfg)
    assert after2.tolist() == [False, True, True, True]  # means 3, 1, 2, 2: 3 kept
    # at trial 3 the best of those three by the mean over all trials (1, 3.67, 1.33, 1.33):
    # class 0 is out already and stays out, class 2 wins the stable tie
    assert decide(errors, after2, cfg).tolist() == [False, False, True, False]
    assert decide(errors[:2], after2, cfg).tolist() == after2.tolist()  # no cut at trial 2 again
    assert ClassifyConfig(min_trials=5, max_trials=10, keep_top=(20, 1)).top_k_cuts() == [(20, 1)]


def test_replay_refuses_what_it_cannot_replay(runs):
    _, _, base, unpruned = runs
    online_cfg = base
    with pytest.raises(ValueError, match="unpruned"):
        replay_pruning(replay_pruning(unpruned, online_cfg), online_cfg)
    with pytest.raises(ValueError, match="seed"):
        replay_pruning(unpruned, base.replace(seed=1))


def test_rule_sweep_and_its_figure(runs):
    from _layout import layout_problems

    from cytoviz import pl
    from cytoviz.diffusion.replay import rule_sweep

    _, _, base, unpruned = runs
    table = rule_sweep(unpruned, {"unpruned": base.replace(pruning=False), "paper": base,
                                  "early": base.replace(min_trials=2, prune_every=1)})
    by = table.set_index("rule")
    assert by.loc["unpruned", "mean_evals"] == len(CLASSES) * base.max_trials
    assert by.loc["early", "mean_evals"] <= by.loc["paper", "mean_evals"]
    fig = pl.rule_curve({"a": table, "b": table}, highlight=["unpruned", "paper"])
    assert layout_problems(fig) == []
    assert [t.name for t in fig.data[:3]] == ["other settings (sweep)", "unpruned", "paper"]
    # a log axis labelled at round numbers, not at every minor tick
    assert fig.layout.xaxis.type == "log" and 100 in fig.layout.xaxis.tickvals
    ref = {"b": {"mean_evals": 500.0, "balanced_accuracy": 0.75}}
    fig = pl.rule_curve({"a": table, "b": table}, highlight=["paper"], references=ref,
                        reference_label="unpruned, 500 trials")
    assert layout_problems(fig) == []
    stars = [t for t in fig.data if t.name == "unpruned, 500 trials"]
    assert len(stars) == 1 and stars[0].xaxis == "x2" and stars[0].y[0] == 75.0  # only set b
    assert stars[0].showlegend  # in the legend although the first panel has no reference
    assert [sh.y0 for sh in fig.layout.shapes] == [75.0]


def test_named_rules_and_the_cli_flag(tmp_path, tiny_model_dir, capsys):
    from cytoviz.cli import main
    from cytoviz.diffusion import ClassificationResult
    from cytoviz.diffusion.classify_config import DECISION_RULES

    assert ClassifyConfig().with_rule("paper") == ClassifyConfig()  # the paper's is the default
    fast = ClassifyConfig().with_rule("fast")
    assert fast != ClassifyConfig() and fast.min_trials == DECISION_RULES["fast"]["min_trials"]
    with pytest.raises(ValueError, match="unknown decision rule"):
        ClassifyConfig().with_rule("quick")
    images = np.random.default_rng(3).integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    CellDataset(images, np.array([0, 1, 0]), ("a", "b")).save(tmp_path / "cells.npz")
    args = ["classify", "--model", str(tiny_model_dir()), "--data", str(tmp_path / "cells.npz"),
            "--max-trials", "12", "--quiet", "--rule", "fast"]
    assert main([*args, "--out", str(tmp_path / "fast")]) == 0
    cfg = ClassificationResult.load(tmp_path / "fast" / "result.npz").config
    assert (cfg.min_trials, cfg.prune_every, cfg.p_threshold, cfg.keep_top) == tuple(
        DECISION_RULES["fast"][k] for k in ("min_trials", "prune_every", "p_threshold", "keep_top"))
    assert cfg.max_trials == 12  # --max-trials overrides the rule's cap
    assert ClassifyConfig().with_rule("fast").max_trials == DECISION_RULES["fast"]["max_trials"]
    assert main([*args, "--min-trials", "3", "--keep-top", "2", "1",
                 "--out", str(tmp_path / "mixed")]) == 0
    mixed = ClassificationResult.load(tmp_path / "mixed" / "result.npz").config
    assert (mixed.min_trials, mixed.keep_top) == (3, (2, 1))
    assert main([*args, "--keep-top", "2", "2", "4", "1", "--out", str(tmp_path / "sched")]) == 0
    sched = ClassificationResult.load(tmp_path / "sched" / "result.npz")
    assert sched.config.keep_top == (2, 2, 4, 1) and (sched.n_trials <= 4).all()
    capsys.readouterr()
    assert main([*args, "--keep-top", "2", "2", "4", "--out", str(tmp_path / "odd")]) != 0
    err = capsys.readouterr().err
    assert "keep_top" in err and "(2, 2, 4)" in err and "Traceback" not in err
    assert not (tmp_path / "odd").exists()
    with pytest.raises(SystemExit) as exc:  # argparse names the valid choices
        main([*args[:-1], "quick", "--out", str(tmp_path / "bad")])
    assert exc.value.code == 2
