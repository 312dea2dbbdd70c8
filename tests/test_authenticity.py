"""The authenticity test kit: intervals, quiz building, scoring, simulated participants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytoviz.authenticity import (
    Quiz,
    build_quiz,
    class_agreement,
    exact_interval,
    load_answers,
    save_answers,
    score_answers,
    simulate_participants,
    wilson_interval,
)
from cytoviz.data import CellDataset, SynthConfig, synthesize


@pytest.fixture(scope="module")
def real() -> CellDataset:
    return synthesize(8, config=SynthConfig(image_size=16, seed=1))


@pytest.fixture(scope="module")
def generated() -> CellDataset:
    return synthesize(8, config=SynthConfig(image_size=16, seed=2))


# Newcombe (1998), Statistics in Medicine 17:857-872, Table I: Wilson score (method 3) and exact
# Clopper-Pearson (method 5) intervals.
NEWCOMBE = [
    # k, n, wilson, exact
    (81, 263, (0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148, (0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20, (0.0, 0.1611), (0.0, 0.1684)),
    (1, 29, (0.0061, 0.1718), (0.0009, 0.1776)),
]


@pytest.mark.parametrize(("k", "n", "wilson", "exact"), NEWCOMBE)
def test_intervals_match_newcombe(k, n, wilson, exact) -> None:
    np.testing.assert_allclose(wilson_interval(k, n), wilson, atol=6e-5)
    np.testing.assert_allclose(exact_interval(k, n), exact, atol=6e-5)


def test_wilson_matches_scipy_and_vectorises() -> None:
    from scipy.stats import binomtest

    ks, n = np.array([0, 3, 50, 99, 100]), 100
    lo, hi = wilson_interval(ks, n, 0.9)
    for k, a, b in zip(ks, lo, hi, strict=True):
        ci = binomtest(int(k), n).proportion_ci(confidence_level=0.9, method="wilson")
        np.testing.assert_allclose((a, b), (ci.low, ci.high), atol=1e-12)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 4)


def test_paper_pooled_interval() -> None:
    """10 x 288 answers, 1506 correct: the paper reports 52.3 %, 95 % CI [50.5, 54.2].

    Wilson gives [0.5047, 0.5411] and exact Clopper-Pearson [0.5045, 0.5413]: the lower bound
    50.5 is Wilson's (exact gives 50.4), but neither reaches the paper's upper bound 54.2 (both
    round to 54.1), nor does any k with k / 2880 rounding to 52.3 %. The paper's interval was
    presumably not a pooled binomial interval (e.g. one over participants).
    """
    k, n = 1506, 10 * 288
    assert round(k / n, 3) == 0.523
    lo, hi = wilson_interval(k, n)
    assert round(lo, 3) == 0.505  # matches the paper
    assert round(hi, 3) == 0.541  # the paper prints 0.542
    elo, ehi = exact_interval(k, n)
    assert round(elo, 3) == 0.504 and round(ehi, 3) == 0.541
    assert elo < lo and ehi > hi  # exact is the wider (conservative) one


def test_build_quiz_balanced_random(real: CellDataset, generated: CellDataset) -> None:
    q = build_quiz(real, generated, n_each=30, seed=0)
    assert len(q) == 60
    assert int(q.key["is_synthetic"].sum()) == 30
    # classes spread evenly within each source (10 classes, 30 images: 3 each)
    counts = q.key.groupby("is_synthetic")["true_class"].value_counts()
    assert counts.min() == counts.max() == 3
    # images are the right ones
    for row in q.key.itertuples():
        src = generated if row.is_synthetic else real
        np.testing.assert_array_equal(q.images[row.item], src.images[row.source_index])
        assert src.label_names[row.source_index] == row.true_class
    # the order is randomised and depends on the seed
    syn = q.key["is_synthetic"].to_numpy()
    assert 0 < syn[:30].sum() < 30
    q2 = build_quiz(real, generated, n_each=30, seed=1)
    assert not np.array_equal(q2.key["is_synthetic"].to_numpy(), syn)
    q3 = build_quiz(real, generated, n_each=30, seed=0)
    np.testing.assert_array_equal(q3.images, q.images)


def test_build_quiz_errors(real: CellDataset, generated: CellDataset) -> None:
    with pytest.raises(ValueError, match="fewer than n_each"):
        build_quiz(real, generated, n_each=len(real) + 1)
    big = synthesize(1, config=SynthConfig(image_size=32, seed=3))
    with pytest.raises(ValueError, match="resize"):
        build_quiz(real, big, n_each=2)


def test_quiz_save_load(real: CellDataset, generated: CellDataset, tmp_path) -> None:
    q = build_quiz(real, generated, n_each=10, seed=4)
    q.save(tmp_path / "quiz", pngs=True)
    back = Quiz.load(tmp_path / "quiz")
    np.testing.assert_array_equal(back.images, q.images)
    pd.testing.assert_frame_equal(back.key, q.key)
    assert back.class_names == q.class_names and back.seed == 4
    assert len(list((tmp_path / "quiz" / "images").glob("*.png"))) == 20
    assert q.png(0)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "quiz").rglob(".*tmp*"))


def test_score_answers_hand_example() -> None:
    key = pd.DataFrame({"item": [0, 1, 2, 3], "is_synthetic": [True, True, False, False],
                        "true_class": ["blast", "basophil", "blast", "basophil"]})
    answers = pd.DataFrame({
        "participant": ["A"] * 4 + ["B"] * 4,
        "item": [0, 1, 2, 3] * 2,
        "called_synthetic": [True, False, False, False, True, True, True, True],
        "answer_class": ["blast", "blast", "blast", "", "blast", "basophil", "blast", "basophil"],
    })
    s = score_answers(answers, key).set_index("participant")
    assert list(s.index) == ["A", "B", "all"]
    assert s.loc["A", "accuracy"] == 0.75  # 1 TP, 1 FN, 2 TN
    assert s.loc["A", "sensitivity"] == 0.5 and s.loc["A", "specificity"] == 1.0
    assert s.loc["B", "sensitivity"] == 1.0 and s.loc["B", "specificity"] == 0.0
    assert s.loc["all", "n"] == 8 and s.loc["all", "n_correct"] == 5
    assert s.loc["A", "n_class"] == 3
    assert s.loc["A", "class_agreement"] == pytest.approx(2 / 3)
    assert s.loc["A", "class_agreement_generated"] == 0.5
    assert s.loc["B", "class_agreement"] == 1.0
    lo, hi = wilson_interval(5, 8)
    assert s.loc["all", "accuracy_low"] == pytest.approx(lo)
    assert s.loc["all", "accuracy_high"] == pytest.approx(hi)
    with pytest.raises(ValueError, match="item"):
        score_answers(answers.assign(item=answers["item"] + 10), key)
    with pytest.raises(ValueError, match="duplicated"):
        score_answers(pd.concat([answers, answers]), key)
    with pytest.raises(ValueError, match="called_synthetic"):
        score_answers(answers.drop(columns="called_synthetic"), key)


def test_simulated_chance_level_and_skill(real: CellDataset, generated: CellDataset) -> None:
    big_real = synthesize(20, config=SynthConfig(image_size=16, seed=5))
    big_gen = synthesize(20, config=SynthConfig(image_size=16, seed=6))
    q = build_quiz(big_real, big_gen, n_each=200, seed=0)
    chance = score_answers(simulate_participants(q, 10, skill=0.0, seed=1), q)
    pooled = chance.iloc[-1]
    assert pooled["n"] == 4000
    assert pooled["accuracy_low"] < 0.5 < pooled["accuracy_high"]
    assert abs(pooled["accuracy"] - 0.5) < 0.03
    skilled = score_answers(simulate_participants(q, 10, skill=0.8, seed=1), q).iloc[-1]
    assert skilled["accuracy_low"] > 0.85  # expected 0.8 + 0.2 / 2 = 0.9
    biased = score_answers(simulate_participants(q, 10, p_call_synthetic=0.8, seed=1), q).iloc[-1]
    assert biased["sensitivity"] > 0.75 and biased["specificity"] < 0.25
    cls = score_answers(simulate_participants(q, 5, class_accuracy=0.6, seed=2), q).iloc[-1]
    assert abs(cls["class_agreement"] - 0.6) < 0.05


def test_answers_csv_roundtrip(tmp_path) -> None:
    path = tmp_path / "answers.csv"
    empty = load_answers(path)
    assert list(empty.columns) == ["participant", "item", "called_synthetic", "answer_class"]
    assert empty.empty
    table = pd.DataFrame({"participant": ["007", "B"], "item": [3, 4],
                          "called_synthetic": [True, False], "answer_class": ["", "blast"]})
    save_answers(table, path)
    back = load_answers(path)
    assert list(back["participant"]) == ["007", "B"]  # ids stay strings
    assert back["called_synthetic"].tolist() == [True, False]
    assert back["answer_class"].tolist() == ["", "blast"]


class _FakeBaseline:
    class_names = ("basophil", "blast", "lymphocyte")

    def predict(self, data: CellDataset) -> np.ndarray:
        out = data.labels.copy()
        out[::4] = (out[::4] + 1) % 3  # every 4th image is "wrong"
        return out


class _FakeResult:
    def __init__(self, names: np.ndarray) -> None:
        self.prediction_names = names

    def __len__(self) -> int:
        return len(self.prediction_names)


def test_class_agreement_table() -> None:
    labels = np.repeat([0, 1, 2], 4)
    ds = CellDataset(np.zeros((12, 8, 8, 3), np.uint8), labels, _FakeBaseline.class_names)
    result = _FakeResult(ds.label_names.copy())
    table = class_agreement(ds, diffusion=result, baseline=_FakeBaseline())  # type: ignore[arg-type]
    t = table.set_index(["classifier", "intended"])
    assert t.loc[("diffusion", "all"), "agreement"] == 1.0
    assert t.loc[("baseline", "all"), "n_agree"] == 9
    assert t.loc[("baseline", "blast"), "n"] == 4
    assert (table["agreement_low"] <= table["agreement"]).all()
    with pytest.raises(ValueError, match="classify exactly"):
        class_agreement(ds, diffusion=_FakeResult(ds.label_names[:3]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="diffusion"):
        class_agreement(ds)


def test_plots(real: CellDataset, generated: CellDataset) -> None:
    from cytoviz import pl

    q = build_quiz(real, generated, n_each=20, seed=0)
    scores = score_answers(simulate_participants(q, 3, seed=0), q)
    fig = pl.authenticity_scores(scores)
    assert list(fig.data[0].y) == ["S1", "S2", "S3", "all"]
    np.testing.assert_allclose(fig.data[0].x, scores["accuracy"])
    np.testing.assert_allclose(fig.data[0].error_x.arrayminus,
                               scores["accuracy"] - scores["accuracy_low"])
    ds = CellDataset(np.zeros((12, 8, 8, 3), np.uint8), np.repeat([0, 1, 2], 4),
                     _FakeBaseline.class_names)
    table = class_agreement(ds, baseline=_FakeBaseline())  # type: ignore[arg-type]
    bars = pl.class_agreement_bars(table)
    assert [t.name for t in bars.data] == ["baseline"]
    assert list(bars.data[0].x) == ["basophil", "blast", "lymphocyte", "all"]
    with pytest.raises(ValueError, match="class_agreement"):
        pl.class_agreement_bars(table.drop(columns="agreement"))
