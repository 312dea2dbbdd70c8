"""Issue 22, does the timestep weighting limit early decisions? (val sets only).

The paper's pruning test is a paired t-test on the weighted errors, so the weighting decides how
much each trial's timestep counts in the test, not only in the final mean. The paper's
polynomial gives the most weight to the largest timesteps, where the paired differences between
classes are smallest against their noise. This replays the paper's test (the library's
:func:`cytoviz.diffusion.classify.prune`, after every trial from the first test on) on the two
1,000-image val passes of ``benchmarks/fast_rule.py`` with the same raw errors reweighted:

- ``polynomial``: the paper's (the passes' own weights);
- ``uniform``: every trial counts the same (a weighting METHOD.md lists);
- ``noise-equalising``: ``1 / sd(t)``, the spread of the paired differences (true class against
  each other class, around each pair's own mean) at each timestep;
- ``signal-to-noise``: ``mean(t) / sd(t)^2``, the weights that maximise the mean paired
  difference against its noise;
- ``mean-equalising``: ``1 / mean(t)``, so that a pair's expected difference is the same at
  every timestep and the test's variance holds only the trials' noise, not the spread of the
  mean over timesteps.

The last three are estimated from the labels of the same val set they are replayed on (in
sample), so they are an optimistic bound, not a rule to ship. No test set is read and the
``"fast"`` preset is unchanged.

Usage::

    .venv/bin/python benchmarks/fast_rule_weighting.py

Writes ``benchmarks/results/fast_rule_weighting.json``; prints its table
(``benchmarks/readme_tables.py``'s ``fast_rule_weighting``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from fast_rule_pooled import load_val_passes, replay_row  # noqa: E402

from cytoviz._io import save_json  # noqa: E402
from cytoviz._metrics import balanced_accuracy  # noqa: E402
from cytoviz.diffusion.classify import prune  # noqa: E402
from cytoviz.diffusion.result import ClassificationResult  # noqa: E402

#: (min_trials, p) replayed for every weighting.
SETTINGS = [(m, p) for m in (3, 5) for p in (0.1, 0.05)]
WEIGHTINGS = ("polynomial", "uniform", "noise-equalising", "signal-to-noise", "mean-equalising")


def _weights(result: ClassificationResult) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The raw ``(N, T, K)`` errors and each weighting's ``(T,)`` weights (trial order)."""
    n, t, k = len(result), int(result.config.max_trials), len(result.class_names)
    raw = (result.trial_errors / result.trial_weights[:, None]).reshape(n, t, k).astype(np.float64)
    y = np.asarray(result.labels)
    diff = raw - raw[np.arange(n), :, y][:, :, None]  # other class minus true class
    others = np.ones((n, k), dtype=bool)
    others[np.arange(n), y] = False
    pairs = diff.transpose(0, 2, 1)[others].reshape(n, k - 1, t)
    noise = (pairs - pairs.mean(axis=2, keepdims=True)).std(axis=(0, 1))
    signal = pairs.mean(axis=(0, 1))
    weights = {
        "polynomial": result.trial_weights.reshape(n, t)[0].astype(np.float64),
        "uniform": np.ones(t),
        "noise-equalising": 1.0 / noise,
        "signal-to-noise": np.clip(signal / noise**2, 0.0, None),
        "mean-equalising": 1.0 / np.clip(signal, 0.05 * signal.max(), None),
    }
    return raw, weights


def main() -> int:
    out: dict = {"sets": {}, "settings": SETTINGS, "weightings": list(WEIGHTINGS),
                 "command": "python benchmarks/fast_rule_weighting.py"}
    passes = load_val_passes()
    if passes is None:
        return 1
    for split, result in passes.items():
        raw, weights = _weights(result)
        rows = []
        for name in WEIGHTINGS:
            errors = raw * weights[name][None, :, None]
            unpruned = balanced_accuracy(result.labels, errors.mean(axis=1).argmin(axis=1))
            rows.append({"weighting": name, "min_trials": None, "p": None,
                         "balanced_accuracy": unpruned,
                         "mean_evals": float(errors.shape[1] * errors.shape[2])})
            for m, p in SETTINGS:
                rows.append({"weighting": name, **replay_row(errors, result.labels, prune, m, p)})
                print(split, rows[-1], flush=True)
        out["sets"][split] = {"rows": rows}
    save_json(out, REPO / "benchmarks" / "results" / "fast_rule_weighting.json")
    import readme_tables

    readme_tables.fast_rule_weighting()
    return 0


if __name__ == "__main__":
    sys.exit(main())
