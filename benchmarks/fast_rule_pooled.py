"""Issue 22, a rule family beyond the sweep: the t-test with a pooled variance (val sets only).

The paper's pruning test compares each class with the best by a paired t-test on that pair's
own trials, so at trial n it has n - 1 degrees of freedom: after 3 trials the test is very
conservative. The K - 1 pairs of an image share the trials' noise, so their variances can be
pooled: one estimate over all pairs ("pooled", (n - 1)(K - 1) degrees of freedom), or each
pair's variance shrunk towards it with the weight of ``s`` extra degrees of freedom
("shrunk s"). This is a sequential test that uses more of the evidence it has; whether it
reaches issue 22's target is the question.

It is run on the two 1,000-image val passes only (``benchmarks/runs/fast_rule/val_large`` and
``val_mild_large``); no test set is read, and nothing here changes the ``"fast"`` preset. The
paper's rule is replayed by the same loop as a check against ``fast_rule.py``'s numbers.

Usage::

    .venv/bin/python benchmarks/fast_rule_pooled.py

Writes ``benchmarks/results/fast_rule_pooled.json``; prints a markdown table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cytoviz._io import save_json  # noqa: E402
from cytoviz._metrics import balanced_accuracy  # noqa: E402
from cytoviz.diffusion.classify import prune  # noqa: E402
from cytoviz.diffusion.result import ClassificationResult  # noqa: E402

RUNS = REPO / "benchmarks" / "runs" / "fast_rule"
VAL_SETS = ("val_large", "val_mild_large")
#: (min_trials, p) of every family; prune after every trial from min_trials on.
SETTINGS = [(m, p) for m in (2, 3, 5) for p in (0.1, 0.05, 0.01)]

Rule = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def _pairs(errors: np.ndarray, remaining: np.ndarray):
    idx = np.flatnonzero(remaining)
    sub = errors[:, idx]
    means = sub.mean(axis=0)
    best = int(np.argmin(means))
    others = np.delete(np.arange(idx.size), best)
    return idx, means, best, others, sub[:, others] - sub[:, [best]]


def _drop(remaining, idx, means, best, others, p_values, p):
    drop = (p_values < p) & (means[others] > means[best])
    out = remaining.copy()
    out[idx[others[drop]]] = False
    return out


def pooled(shrink: float | None) -> Rule:
    """The test with the pairs' variances pooled (``shrink=None``) or shrunk towards the pool."""
    def rule(errors: np.ndarray, remaining: np.ndarray, p: float) -> np.ndarray:
        idx, means, best, others, diff = _pairs(errors, remaining)
        n = diff.shape[0]
        var = diff.var(axis=0, ddof=1)
        pool = var.mean()
        if shrink is None:
            var, dof = np.full_like(var, pool), (n - 1) * others.size
        else:
            var, dof = ((n - 1) * var + shrink * pool) / (n - 1 + shrink), n - 1 + shrink
        t = diff.mean(axis=0) / np.sqrt(var / n)
        return _drop(remaining, idx, means, best, others, 2 * stats.t.sf(np.abs(t), dof), p)
    return rule


#: "paper" is the library's own test (``prune``), the one the engine and the replay use.
FAMILIES: dict[str, Rule] = {"paper": prune, "pooled": pooled(None), "shrunk 4": pooled(4.0)}


def replay(errors: np.ndarray, rule: Rule, min_trials: int, p: float) -> tuple[int, int]:
    """One image (``(T, K)`` weighted errors): the predicted class and the evaluations spent."""
    n_trials, k = errors.shape
    remaining = np.ones(k, dtype=bool)
    evals = n = 0
    while True:
        evals += int(remaining.sum())
        n += 1
        if n >= min_trials and remaining.sum() > 1:
            remaining = rule(errors[:n], remaining, p)
        if remaining.sum() <= 1 or n >= n_trials:
            means = np.where(remaining, errors[:n].mean(axis=0), np.inf)
            return int(np.argmin(means)), evals


def load_val_passes() -> dict[str, ClassificationResult] | None:
    """The unpruned val passes of ``benchmarks/fast_rule.py`` (None, said on stderr, if missing)."""
    out = {}
    for split in VAL_SETS:
        path = RUNS / split / "result.npz"
        if not path.is_file():
            print(f"{path} missing: run benchmarks/fast_rule.py first", file=sys.stderr)
            return None
        out[split] = ClassificationResult.load(path)
    return out


def replay_row(errors: np.ndarray, labels: np.ndarray, rule: Rule, min_trials: int,
               p: float) -> dict:
    """Replay ``rule`` on every image of ``(N, T, K)`` errors: its settings, balanced accuracy
    and mean UNet evaluations per image (one row of the val table)."""
    picks = [replay(e, rule, min_trials, p) for e in errors]
    pred = np.array([c for c, _ in picks])
    return {"min_trials": min_trials, "p": p,
            "balanced_accuracy": balanced_accuracy(labels, pred),
            "mean_evals": float(np.mean([v for _, v in picks]))}


def main() -> int:
    out: dict = {"sets": {}, "settings": SETTINGS, "families": list(FAMILIES)}
    passes = load_val_passes()
    if passes is None:
        return 1
    for split, result in passes.items():
        errors = result.errors.astype(np.float64)
        unpruned = balanced_accuracy(result.labels, errors.mean(axis=1).argmin(axis=1))
        rows = []
        for family, rule in FAMILIES.items():
            for m, p in SETTINGS:
                rows.append({"family": family, **replay_row(errors, result.labels, rule, m, p)})
                print(split, rows[-1], flush=True)
        out["sets"][split] = {"unpruned_balanced_accuracy": unpruned, "rows": rows}
    save_json(out, REPO / "benchmarks" / "results" / "fast_rule_pooled.json")
    print("\n| family | min trials | p | " + " | ".join(
        f"{s}: bal. acc. (evals)" for s in VAL_SETS) + " |")
    print("|---|---|---|" + "---|" * len(VAL_SETS))
    for i, r in enumerate(out["sets"][VAL_SETS[0]]["rows"]):
        cells = [f"{100 * out['sets'][s]['rows'][i]['balanced_accuracy']:.1f} % "
                 f"({out['sets'][s]['rows'][i]['mean_evals']:.0f})" for s in VAL_SETS]
        print(f"| {r['family']} | {r['min_trials']} | {r['p']} | " + " | ".join(cells) + " |")
    print("| unpruned, 100 trials | | | " + " | ".join(
        f"{100 * out['sets'][s]['unpruned_balanced_accuracy']:.1f} % (1000)" for s in VAL_SETS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
