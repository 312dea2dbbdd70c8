"""Certainty scores (METHOD.md section 2) against hand-computed cases and a literal loop."""

from __future__ import annotations

import numpy as np
import pytest

from cytoviz.anomaly import certainty, logit_certainty, normalise_certainty, roc_auc


def _literal(row: np.ndarray) -> float:
    """The formula written out with explicit loops."""
    e = np.sort(np.asarray(row, float) / np.mean(row))
    k = min(len(e) - 1, 10)
    first = sum(e[j] - e[0] for j in range(1, k)) / k
    second = sum(abs(e[l_] - e[j]) for j in range(1, k) for l_ in range(1, k)) / (k * (k - 1))
    return first - second


def test_hand_computed_cases() -> None:
    # [1, 2, 3]: mean 2 -> [.5, 1, 1.5]; k = 2; gap (1 - .5) / 2 = .25; no spread.
    # [1, 1, 1, 1]: all equal -> 0.
    # [.5, 1, 1.5, 1]: mean 1 -> sorted [.5, 1, 1, 1.5]; k = 3; gap (.5 + .5) / 3; spread 0.
    # [1, 2, 3, 6]: mean 3 -> [1/3, 2/3, 1, 2]; k = 3; gap (1/3 + 2/3) / 3 = 1/3;
    #   spread 2 * 1/3 / 6 = 1/9 -> 2/9.
    errors = np.array([[1.0, 2.0, 3.0, 6.0], [1, 1, 1, 1], [0.5, 1, 1.5, 1], [6.0, 3.0, 2.0, 1.0]])
    np.testing.assert_allclose(certainty(errors), [2 / 9, 0.0, 1 / 3, 2 / 9], atol=1e-12)
    np.testing.assert_allclose(certainty(np.array([[1.0, 2.0, 3.0]])), [0.25])


def test_matches_literal_loop_and_uses_at_most_ten(rng: np.random.Generator) -> None:
    for k_classes in (3, 5, 10, 11, 15):
        e = rng.uniform(0.1, 3.0, size=(20, k_classes))
        np.testing.assert_allclose(certainty(e), [_literal(r) for r in e], rtol=1e-12)
    # K = 15 gives k = 10: changing the largest error while keeping the row mean (the
    # normaliser) and the order of the ten smallest leaves zeta unchanged.
    e = np.sort(rng.uniform(1, 2, size=15))
    f = e.copy()
    d = 0.5 * (e[-2] - e[9])
    f[-2] -= d
    f[-1] += d
    assert np.isclose(f.mean(), e.mean()) and np.all(np.sort(f)[:10] == e[:10])
    np.testing.assert_allclose(certainty(e[None]), certainty(f[None]))


def test_scale_invariant_and_more_certain_with_a_clear_winner() -> None:
    e = np.array([[1.0, 2.0, 2.1, 2.2, 2.3]])
    np.testing.assert_allclose(certainty(e), certainty(7.5 * e))
    ambiguous = np.array([[1.0, 1.05, 1.1, 2.2, 2.3]])
    assert certainty(e)[0] > certainty(ambiguous)[0]


def test_logit_certainty() -> None:
    logits = np.array([[5.0, 1.0, 0.0, -1.0], [0.1, 0.0, 0.05, -0.1]])
    z = logit_certainty(logits)
    assert z[0] > z[1]
    # Literal version on negated logits with a positive mean.
    neg = np.array([[-1.0, -2.0, -3.0, -6.0]])
    np.testing.assert_allclose(logit_certainty(neg, shift=False), certainty(-neg))
    with pytest.raises(ValueError, match="positive mean"):
        logit_certainty(np.array([[1.0, 2.0, 3.0]]), shift=False)


def test_normalise_and_errors() -> None:
    np.testing.assert_allclose(normalise_certainty(np.array([0.1, 0.4, 0.2])), [0.25, 1.0, 0.5])
    with pytest.raises(ValueError, match="positive"):
        normalise_certainty(np.array([-1.0, 0.0]))
    with pytest.raises(ValueError, match="at least 3 classes"):
        certainty(np.ones((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        certainty(np.array([[1.0, np.nan, 2.0]]))


def test_roc_auc() -> None:
    assert roc_auc([0.9, 0.8, 0.7], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert roc_auc([0.5, 0.5], [0.5]) == 0.5
    # 3 of the 4 (normal, abnormal) pairs are ordered correctly.
    assert roc_auc([0.3, 0.6], [0.5, 0.2]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least one"):
        roc_auc([], [0.1])
