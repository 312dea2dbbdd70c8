"""Timestep weightings (METHOD.md section 1, supplement G) and the refitting tools."""

from __future__ import annotations

import numpy as np
import pytest

from cytoviz.diffusion.classify_config import ClassifyConfig
from cytoviz.diffusion.weighting import (
    N_BUCKETS,
    POLY_COEFFS,
    fit_logistic_weighting,
    fit_weighting,
    poly_weight,
    timestep_weights,
    weight_errors,
)

PAPER = (0.9270553940204841, 9.836536887830196, -4.6840608002246205, 6.018538389994896,
         -9.339786177681749)


def test_polynomial_at_known_s() -> None:
    assert POLY_COEFFS == PAPER
    # t = 1000 -> s = 0: f = c0.
    assert poly_weight(1000) == pytest.approx(1 / 0.9270553940204841)
    # t = 0 -> s = 1: f = sum of the coefficients = 2.7583...
    assert poly_weight(0) == pytest.approx(1 / sum(PAPER))
    assert sum(PAPER) == pytest.approx(2.758284, abs=1e-6)
    # t = 500 -> s = 0.5, by hand.
    s = 0.5
    f = PAPER[0] + PAPER[1] * s + PAPER[2] * s**2 + PAPER[3] * s**3 + PAPER[4] * s**4
    assert poly_weight(500) == pytest.approx(1 / f)
    # The weight is positive on the whole schedule, larger at high t (small s).
    w = poly_weight(np.arange(1000))
    assert np.all(w > 0) and w[999] > w[0]


def test_other_schemes() -> None:
    t = np.array([0, 250, 999])
    np.testing.assert_array_equal(timestep_weights(t, "uniform"), 1.0)
    np.testing.assert_allclose(timestep_weights(t, "exp"), np.exp(-5.5 * t / 1000))
    abar = np.linspace(0.99, 0.01, 1000)
    np.testing.assert_allclose(timestep_weights(t, "snr", alphas_cumprod=abar),
                               abar[t] / (1 - abar[t]))
    bw = np.arange(1.0, N_BUCKETS + 1)
    # Buckets of width 50: t = 0 -> 0, 250 -> 5, 999 -> 19.
    np.testing.assert_allclose(timestep_weights(t, "logistic", bucket_weights=bw), [1, 6, 20])
    with pytest.raises(ValueError, match="bucket_weights"):
        timestep_weights(t, "logistic")
    with pytest.raises(ValueError, match="unknown weighting"):
        timestep_weights(t, "cosine")


def test_row_wise_schemes_ignore_absent_classes() -> None:
    e = np.array([[1.0, 2.0, 3.0, np.nan], [5.0, np.nan, 1.0, 3.0]])
    out, w = weight_errors(e, np.array([10, 20]), "normalise")
    assert np.all(np.isnan(w)) and np.isnan(out[0, 3]) and np.isnan(out[1, 1])
    np.testing.assert_allclose(np.nanmean(out, axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(np.nanstd(out, axis=1), 1)
    out, _ = weight_errors(e, np.array([10, 20]), "ranking")
    np.testing.assert_array_equal(out[0, :3], [0, 1, 2])
    np.testing.assert_array_equal(out[1, [0, 2, 3]], [2, 0, 1])
    out, w = weight_errors(e, np.array([1000, 0]), "polynomial")
    np.testing.assert_allclose(w, poly_weight(np.array([1000, 0])))
    np.testing.assert_allclose(out[0, :3], e[0, :3] * w[0])


def test_fit_weighting_recovers_a_known_polynomial(rng: np.random.Generator) -> None:
    true = (1.0, 2.0, -0.5, 0.3, -0.4)
    n, k = 30, 5
    t = np.rint(np.linspace(1, 999, 200)).astype(int)
    s = (1000 - t) / 1000
    f = np.polynomial.polynomial.polyval(s, true)
    z = rng.normal(size=(n, len(t), k))
    z = (z - z.mean(-1, keepdims=True)) / z.std(-1, keepdims=True)  # across-class std exactly 1
    errors = 10.0 + f[None, :, None] * z
    coeffs = fit_weighting(errors, t, degree=4)
    np.testing.assert_allclose(coeffs, true, atol=1e-6)
    # Usable as the classifier's weighting; with labels (class-balanced median) too.
    cfg = ClassifyConfig(weighting="polynomial", poly_coeffs=coeffs)
    np.testing.assert_allclose(poly_weight(t, cfg.poly_coeffs), 1 / f, rtol=1e-5)
    coeffs_l = fit_weighting(errors, t, rng.integers(0, 3, n), degree=4)
    np.testing.assert_allclose(coeffs_l, true, atol=1e-6)


def test_fit_weighting_refuses_bad_input() -> None:
    t = np.arange(1, 1000, 10)
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_weighting(np.ones((2, len(t), 1)), t)
    # Two classes with errors 0 and (1 - s)^4: across-class std (1 - s)^4 / 2; a straight
    # line fitted to it goes negative near s = 1, so its reciprocal is no weight.
    s = (1000 - t) / 1000
    errors = np.zeros((3, len(t), 2))
    errors[..., 1] = (1 - s)[None] ** 4
    with pytest.raises(ValueError, match="not positive"):
        fit_weighting(errors, t, degree=1)
    errors[..., 1] += 1.0  # std (1 + (1 - s)^4) / 2 is fitted exactly at degree 4
    np.testing.assert_allclose(np.polynomial.polynomial.polyval(
        s, fit_weighting(errors, t, degree=4)), (1 + (1 - s) ** 4) / 2, atol=1e-9)


def test_fit_logistic_weighting_finds_the_informative_buckets(rng: np.random.Generator) -> None:
    n, k = 80, 3
    t = np.rint(np.linspace(1, 999, 200)).astype(int)
    labels = rng.integers(0, k, n)
    errors = rng.normal(5.0, 1.0, size=(n, len(t), k))
    informative = t < 250  # buckets 0..4
    errors[np.arange(n), :, labels] -= 0.8 * informative  # the true class is lower there only
    w = fit_logistic_weighting(errors, t, labels)
    assert len(w) == N_BUCKETS and min(w) >= 0
    assert np.mean(w[:5]) > 3 * np.mean(w[5:])
    ClassifyConfig(weighting="logistic", bucket_weights=w)  # accepted
    with pytest.raises(ValueError, match="bucket_weights"):
        ClassifyConfig(weighting="logistic")
