"""Hypothesis property tests: psychometric binning, confidence and certainty scores, CSV manifests.

Each property is checked against an independent statement of what the code should do (an oracle
written from the docstring, an invariance, or a round trip), on small random inputs.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from cytoviz.anomaly import MAX_K, certainty, logit_certainty
from cytoviz.classes import CANONICAL_CLASSES, UnknownClassError, normalise_class_name
from cytoviz.data import load_manifest, prepare_image
from cytoviz.diffusion import ClassificationResult, ClassifyConfig
from cytoviz.psychometric.binning import bin_confidence, bin_edges

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------------------------- binning

_unit = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False)
# Values on a coarse grid collide with bin edges (and each other) far more often than uniform
# floats: the boundary cases that a binning rule gets wrong.
_grid = st.integers(0, 40).map(lambda i: i / 40)
_cases = st.lists(st.tuples(st.one_of(_unit, _grid), st.booleans()), min_size=1, max_size=120)


@SETTINGS
@given(cases=_cases, n_bins=st.integers(2, 30), scheme=st.sampled_from(["equal-width", "equal-count"]),
       seed=st.integers(0, 2**16))
def test_binning_conserves_counts_and_places_each_case_in_one_bin(
    cases: list[tuple[float, bool]], n_bins: int, scheme: str, seed: int
) -> None:
    conf = np.array([c for c, _ in cases])
    corr = np.array([k for _, k in cases])
    edges = bin_edges(conf, n_bins, scheme)  # type: ignore[arg-type]
    # The oracle: case i belongs to bin j when edges[j] <= c < edges[j+1] (the last bin closed).
    member = (conf[:, None] >= edges[None, :-1]) & (
        (conf[:, None] < edges[None, 1:]) | (np.arange(n_bins) == n_bins - 1)[None, :]
    )
    assert (member.sum(axis=1) == 1).all(), "a case lies in no bin or in two"
    want_n = member.sum(axis=0)
    want_k = (member & corr[:, None]).sum(axis=0)
    occupied = want_n > 0
    if occupied.sum() < 2:
        with pytest.raises(ValueError, match="single stimulus level"):
            bin_confidence(conf, corr, n_bins=n_bins, scheme=scheme)  # type: ignore[arg-type]
        return
    x, k, n = bin_confidence(conf, corr, n_bins=n_bins, scheme=scheme)  # type: ignore[arg-type]
    assert n.sum() == len(cases) and k.sum() == corr.sum()  # counts conserved
    assert ((k >= 0) & (k <= n) & (n >= 1)).all()
    assert (np.diff(x) > 0).all()  # one row per occupied bin, in order
    np.testing.assert_array_equal(n, want_n[occupied])
    np.testing.assert_array_equal(k, want_k[occupied])
    lo, hi = edges[:-1][occupied], edges[1:][occupied]
    if scheme == "equal-width":
        np.testing.assert_allclose(x, (lo + hi) / 2)
    else:  # the mean confidence of the bin's cases, inside the bin
        means = (member * conf[:, None]).sum(axis=0)[occupied] / want_n[occupied]
        np.testing.assert_allclose(x, means, rtol=1e-12)
        assert ((x >= lo - 1e-12) & (x <= hi + 1e-12)).all()
    # The order of the cases does not matter.
    perm = np.random.default_rng(seed).permutation(len(cases))
    x2, k2, n2 = bin_confidence(conf[perm], corr[perm], n_bins=n_bins, scheme=scheme)  # type: ignore[arg-type]
    np.testing.assert_allclose(x2, x, rtol=1e-12)
    np.testing.assert_array_equal(k2, k)
    np.testing.assert_array_equal(n2, n)


# ---------------------------------------------------------------------------------- scores


@st.composite
def _results(draw: st.DrawFn) -> ClassificationResult:
    """A result of 2-6 images, 3-6 classes, 2-5 trials each, some classes dropped along the way.

    Errors are whole numbers, so adding a whole constant to them is exact in float32.
    """
    k = draw(st.integers(3, 6))
    n_img = draw(st.integers(2, 6))
    rows, n_trials, remaining = [], [], []
    for _ in range(n_img):
        t = draw(st.integers(2, 5))
        e = draw(hnp.arrays(np.float64, (t, k), elements=st.integers(1, 1000).map(float)))
        keep = np.ones(k, dtype=bool)
        dropped = draw(st.lists(st.integers(0, k - 1), max_size=k - 2, unique=True))
        keep[dropped] = False
        for c in dropped:  # dropped after the first trial
            e[1:, c] = np.nan
        rows.append(e)
        n_trials.append(t)
        remaining.append(keep)
    errors = np.concatenate(rows)
    total = errors.shape[0]
    return ClassificationResult(
        class_names=tuple(f"c{j}" for j in range(k)), config=ClassifyConfig(tta=False),
        trial_errors=errors, trial_timesteps=np.arange(total) % 999 + 1,
        trial_weights=np.ones(total), n_trials=np.array(n_trials),
        n_evals=np.array(n_trials) * k, remaining=np.array(remaining),
    )


def _with_errors(r: ClassificationResult, errors: np.ndarray, **changes: object) -> ClassificationResult:
    import dataclasses

    return dataclasses.replace(r, trial_errors=errors, **changes)  # type: ignore[arg-type]


@SETTINGS
@given(r=_results())
def test_confidence_is_the_rescaled_top2_gap(r: ClassificationResult) -> None:
    s = np.where(np.isnan(r.scores), np.inf, r.scores)
    gap = np.array([np.partition(row, 1)[1] - row.min() for row in s])
    np.testing.assert_allclose(r.margin, gap, rtol=1e-12)
    c = r.confidence
    assert c.shape == (len(r),) and ((c >= 0) & (c <= 1)).all()
    if np.ptp(gap) > 0:
        assert c.min() == 0 and c.max() == 1
        np.testing.assert_allclose(c, (gap - gap.min()) / np.ptp(gap), rtol=1e-12, atol=1e-15)
    else:
        assert (c == 1).all()
    # The prediction is a class in play with the lowest score.
    best = np.where(r.remaining, r.scores, np.inf).min(axis=1)
    np.testing.assert_array_equal(r.scores[np.arange(len(r)), r.prediction], best)
    assert r.remaining[np.arange(len(r)), r.prediction].all()


@SETTINGS
@given(r=_results(), data=st.data())
def test_scores_ignore_a_constant_added_to_an_image_and_a_scale(r: ClassificationResult,
                                                                data: st.DataObject) -> None:
    # A constant per image (every trial, every class): the per-trial minimum removes it.
    shift = np.repeat(data.draw(hnp.arrays(np.float64, len(r), elements=st.integers(0, 1000).map(float))),
                      r.n_trials)
    shifted = _with_errors(r, r.trial_errors + shift[:, None])
    # A power of two per image: the normalisation by the mean over classes removes it.
    scale = np.repeat(2.0 ** data.draw(hnp.arrays(np.int64, len(r), elements=st.integers(-4, 4))),
                      r.n_trials)
    scaled = _with_errors(r, r.trial_errors * scale[:, None])
    for other in (shifted, scaled):
        np.testing.assert_allclose(other.scores, r.scores, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(other.prediction, r.prediction)
        np.testing.assert_allclose(other.confidence, r.confidence, rtol=1e-9, atol=1e-12)
    # zeta needs a positive mean score (not every class tied).
    if np.isfinite(r.scores).all() and (r.scores.mean(axis=1) > 0).all():
        np.testing.assert_allclose(shifted.zeta, r.zeta, rtol=1e-9, atol=1e-12)


@SETTINGS
@given(r=_results(), data=st.data())
def test_permuting_the_classes_permutes_the_views(r: ClassificationResult, data: st.DataObject) -> None:
    k = r.n_classes
    perm = np.array(data.draw(st.permutations(range(k))))
    p = ClassificationResult(
        class_names=tuple(r.class_names[j] for j in perm), config=r.config,
        trial_errors=r.trial_errors[:, perm], trial_timesteps=r.trial_timesteps,
        trial_weights=r.trial_weights, n_trials=r.n_trials, n_evals=r.n_evals,
        remaining=r.remaining[:, perm],
    )
    np.testing.assert_allclose(p.scores, r.scores[:, perm], rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(p.class_trials, r.class_trials[:, perm])
    np.testing.assert_allclose(p.margin, r.margin, rtol=1e-9, atol=1e-12)
    if np.ptp(r.margin) > 1e-6:  # else rounding noise decides the rescaling
        np.testing.assert_allclose(p.confidence, r.confidence, rtol=1e-6, atol=1e-9)
    # The same class wins (by name), unless two classes tie for the lowest score.
    best = np.where(r.remaining, r.scores, np.inf)
    ties = (np.isclose(best, best.min(axis=1, keepdims=True), rtol=1e-12)).sum(axis=1) > 1
    same = p.prediction_names == r.prediction_names
    assert (same | ties).all()
    if np.isfinite(r.scores).all() and (r.scores.mean(axis=1) > 0).all():
        np.testing.assert_allclose(p.zeta, r.zeta, rtol=1e-9, atol=1e-12)


def _zeta_by_the_formula(row: np.ndarray) -> float:
    """METHOD.md section 2, written out with loops."""
    e = sorted(v / (sum(row) / len(row)) for v in row)
    k = min(len(row) - 1, MAX_K)
    gap = sum(e[j] - e[0] for j in range(1, k)) / k
    spread = sum(abs(e[m] - e[j]) for j in range(1, k) for m in range(1, k)) / (k * (k - 1))
    return gap - spread


_errors = st.integers(3, 14).flatmap(lambda k: hnp.arrays(
    np.float64, st.tuples(st.integers(1, 6), st.just(k)),
    elements=st.floats(0.01, 100.0, allow_nan=False, allow_infinity=False)))


@SETTINGS
@given(e=_errors, data=st.data())
def test_certainty_follows_the_formula_and_its_invariances(e: np.ndarray, data: st.DataObject) -> None:
    z = certainty(e)
    assert z.shape == (e.shape[0],) and np.isfinite(z).all()
    np.testing.assert_allclose(z, [_zeta_by_the_formula(list(row)) for row in e], rtol=1e-9, atol=1e-12)
    # Class order and the scale of each row do not matter.
    perm = np.array(data.draw(st.permutations(range(e.shape[1]))))
    scale = data.draw(hnp.arrays(np.float64, (e.shape[0], 1), elements=st.floats(0.1, 10.0)))
    np.testing.assert_allclose(certainty(e[:, perm] * scale), z, rtol=1e-9, atol=1e-12)
    # The gap term is at most K/k (the normalised errors sum to K) and the spread is >= 0.
    k = min(e.shape[1] - 1, MAX_K)
    assert (z <= e.shape[1] / k + 1e-9).all()
    # All classes equally good: no certainty at all.
    np.testing.assert_allclose(certainty(np.ones_like(e) * e[:, :1]), 0.0, atol=1e-12)
    # The logits version does not care about a constant added to a row of logits.
    shift = data.draw(hnp.arrays(np.float64, (e.shape[0], 1), elements=st.floats(-50, 50)))
    np.testing.assert_allclose(logit_certainty(-e + shift), logit_certainty(-e), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------- manifests


@pytest.fixture(scope="module")
def image_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("manifest_pool")
    rng = np.random.default_rng(0)
    for i in range(4):
        size = (6 + 3 * i, 9 + i)
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    return root


def _respell(draw: st.DrawFn, name: str) -> str:
    """The same class name as another data set might spell it: case and separators."""
    sep = draw(st.sampled_from([" ", "_", "-", "  "]))
    word = sep.join(name.split(" "))
    return draw(st.sampled_from([word, word.upper(), word.title()]))


_ALIASES = ["NEUTROPHIL", "ig", "SNE", "lymph", "eos", "plt", "artifact", "nrbc", "Mono", "baso"]
_WORDS = {"High": 1.0, "moderate": 2 / 3, "LOW": 1 / 3, "No": 0.0, "none": 0.0}


@st.composite
def _manifest_rows(draw: st.DrawFn) -> list[dict[str, object]]:
    rows = []
    seen: set[tuple[int, str]] = set()  # one row per (file, expert): repeats are refused (issue 23)
    for _ in range(draw(st.integers(1, 12))):
        image = draw(st.integers(0, 3))
        expert = draw(st.sampled_from(["A", "B", "dr. x"]))
        if (image, expert) in seen:
            continue
        seen.add((image, expert))
        if draw(st.booleans()):
            label = _respell(draw, draw(st.sampled_from(CANONICAL_CLASSES)))
        else:
            label = draw(st.sampled_from(_ALIASES))
        conf_kind = draw(st.sampled_from(["number", "word", "empty"]))
        if conf_kind == "number":
            value = draw(st.integers(0, 1000)) / 1000
            conf_text, conf = repr(value), value
        elif conf_kind == "word":
            conf_text = draw(st.sampled_from(sorted(_WORDS)))
            conf = _WORDS[conf_text]
        else:
            conf_text, conf = "", float("nan")
        rows.append({"image": image, "label": label, "expert": expert,
                     "conf_text": conf_text, "confidence": conf})
    return rows


def _write_manifest(folder: Path, rows: list[dict[str, object]], labels: list[str]) -> Path:
    fd, name = tempfile.mkstemp(suffix=".csv", dir=folder)
    with open(fd, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "expert", "confidence"])
        for row, label in zip(rows, labels, strict=True):
            w.writerow([f"img{row['image']}.png", label, row["expert"], row["conf_text"]])
    return Path(name)


@SETTINGS
@given(rows=_manifest_rows(), size=st.integers(2, 9))
def test_valid_manifests_round_trip(image_pool: Path, rows: list[dict[str, object]], size: int) -> None:
    labels = [str(r["label"]) for r in rows]
    path = _write_manifest(image_pool, rows, labels)
    try:
        ds = load_manifest(path, image_size=size)
    finally:
        path.unlink()
    want = [normalise_class_name(label) for label in labels]
    assert len(ds) == len(rows)
    assert list(ds.label_names) == want
    assert ds.class_names == tuple(c for c in CANONICAL_CLASSES if c in set(want))
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(ds.images[i], prepare_image(image_pool / f"img{row['image']}.png", size))
    assert list(ds.meta["line"]) == list(range(2, len(rows) + 2))
    assert list(ds.meta["expert"]) == [r["expert"] for r in rows]
    np.testing.assert_allclose(ds.meta["confidence"].to_numpy(dtype=float),
                               [float(r["confidence"]) for r in rows], equal_nan=True)  # type: ignore[arg-type]
    assert all(Path(p) == image_pool / f"img{r['image']}.png" for p, r in zip(ds.meta["path"], rows, strict=True))


def _is_unknown(name: str) -> bool:
    try:
        normalise_class_name(name)
    except UnknownClassError:
        return True
    return False


_unknown_labels = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzXYZ0123456789 _-"), min_size=1,
                          max_size=12).map(str.strip).filter(lambda s: s != "" and _is_unknown(s))


@SETTINGS
@given(rows=_manifest_rows(), bad=_unknown_labels, where=st.integers(0, 12))
def test_an_unknown_class_in_a_manifest_is_named(image_pool: Path, rows: list[dict[str, object]],
                                                 bad: str, where: int) -> None:
    labels = [str(r["label"]) for r in rows]
    labels[where % len(labels)] = bad
    path = _write_manifest(image_pool, rows, labels)
    try:
        with pytest.raises(ValueError) as info:
            load_manifest(path, image_size=4)
    finally:
        path.unlink()
    assert isinstance(info.value, UnknownClassError)
    assert repr(bad) in str(info.value) and path.name in str(info.value)

