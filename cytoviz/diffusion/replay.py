"""Replay a pruning rule on an unpruned classification: what the rule would have decided.

Every image has its own random stream and the timestep of trial ``n`` depends only on ``n``
(and ``max_trials`` and the seed), so the errors of an image's first ``n`` trials are the same
whether or not classes were pruned. An unpruned run (``ClassifyConfig(pruning=False)``, every
class every trial) therefore holds every error a pruned run with the same ``max_trials``,
seed, weighting and augmentation could have measured, and the pruned run's decisions follow
from it without another pass through the UNet. This is how decision rules are compared at
equal cost (``benchmarks/fast_rule.py``): the paper's rule and the opt-in fast rule replayed
on the same unpruned trials, with the unpruned run itself as the reference.

Exact for the multiplicative weightings (the default polynomial, ``none``, ``logistic``);
the row-wise weightings (``normalise``, ``ranking``) depend on the classes still in play and
are refused. Up to floating-point rounding: the online run evaluates the UNet in batches of
another composition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cytoviz.diffusion.classify import decide
from cytoviz.diffusion.classify_config import ClassifyConfig
from cytoviz.diffusion.result import ClassificationResult
from cytoviz.diffusion.weighting import MULTIPLICATIVE

if TYPE_CHECKING:
    import pandas as pd

#: Settings that must agree between the unpruned run and the replayed rule (they decide the
#: trials' timesteps, noise, augmentation and weights).
SAME_TRIALS = ("max_trials", "seed", "weighting", "poly_coeffs", "bucket_weights", "tta",
               "tta_rotation", "stochastic_encode", "mask_radius", "encode_precision")


def replay_pruning(result: ClassificationResult, config: ClassifyConfig) -> ClassificationResult:
    """The result :func:`~cytoviz.diffusion.classify` with ``config`` would have returned.

    Parameters
    ----------
    result
        An unpruned run (``config.pruning=False``: every class every trial).
    config
        The rule to replay: ``min_trials``, ``prune_every``, ``p_threshold``, ``keep_top``
        and ``pruning``;
        the settings of :data:`SAME_TRIALS` must equal the unpruned run's (``max_trials`` may
        be given as the run's, or left at the run's by :meth:`ClassifyConfig.replace`).

    Returns
    -------
    ClassificationResult
        With the replayed trials, evaluations and classes in play (no error maps).

    Raises
    ------
    ValueError
        If ``result`` was pruned, the settings of :data:`SAME_TRIALS` differ, or the
        weighting is row-wise.
    """
    base = result.config
    if base.pruning or not (result.n_trials == base.max_trials).all():
        raise ValueError("replay_pruning needs an unpruned result (classify with "
                         "pruning=False, or `cytoviz classify --no-pruning`)")
    differ = [f for f in SAME_TRIALS if getattr(config, f) != getattr(base, f)]
    if differ:
        raise ValueError(f"the rule's {differ} differ from the unpruned run's: the trials "
                         "would not be the same (give the run's values)")
    if base.weighting not in MULTIPLICATIVE:
        raise ValueError(f"weighting {base.weighting!r} depends on the classes in play; "
                         f"replay needs one of {sorted(MULTIPLICATIVE)}")
    k = len(result.class_names)
    errors = result.errors  # (N, T, K) weighted
    rows: list[np.ndarray] = []
    n_trials = np.zeros(len(result), dtype=np.int64)
    n_evals = np.zeros(len(result), dtype=np.int64)
    remaining = np.ones((len(result), k), dtype=bool)
    keep = []
    for i in range(len(result)):
        mine, evals = _replay_one(errors[i], config, remaining[i])
        rows.append(mine)
        n_trials[i], n_evals[i] = mine.shape[0], evals
        keep.append(result.offsets[i] + np.arange(mine.shape[0]))
    idx = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    return ClassificationResult(
        class_names=result.class_names, config=config,
        trial_errors=np.concatenate(rows) if rows else result.trial_errors[:0],
        trial_timesteps=result.trial_timesteps[idx], trial_weights=result.trial_weights[idx],
        n_trials=n_trials, n_evals=n_evals, remaining=remaining, labels=result.labels,
        error_maps=None, mask_radius=result.mask_radius,
        num_train_timesteps=result.num_train_timesteps,
    )


def _replay_one(errors: np.ndarray, config: ClassifyConfig, remaining: np.ndarray
                ) -> tuple[np.ndarray, int]:
    """One image: its trials as the rule sees them (NaN once a class is dropped) and the UNet
    evaluations spent; ``remaining`` is updated in place (the loop of ``_update_and_prune``)."""
    seen = np.full_like(errors, np.nan, dtype=np.float32)
    n, evals = 0, 0
    while True:
        seen[n, remaining] = errors[n, remaining]
        evals += int(remaining.sum())
        n += 1
        remaining[:] = decide(seen[:n], remaining, config)
        if remaining.sum() <= 1 or n >= config.max_trials:
            return seen[:n], evals


def rule_sweep(result: ClassificationResult, rules: dict[str, ClassifyConfig]) -> pd.DataFrame:
    """Replay each rule on one unpruned run: its cost and accuracy, one row per rule.

    Parameters
    ----------
    result
        An unpruned, labelled run.
    rules
        Name -> rule (see :func:`replay_pruning`); a rule with ``pruning=False`` is the
        unpruned run itself.

    Returns
    -------
    pandas.DataFrame
        Columns ``rule``, ``min_trials``, ``prune_every``, ``p_threshold``, ``pruning``,
        ``keep_top`` (``"n:k"`` per cut, space-separated; empty without a top-k cut),
        ``mean_evals`` (UNet evaluations per image), ``mean_trials``, ``accuracy``,
        ``balanced_accuracy``, ``n_images``; the input of :func:`cytoviz.pl.rule_curve`.
    """
    import pandas as pd

    if result.labels is None:
        raise ValueError("rule_sweep needs a labelled result")
    rows = []
    for name, cfg in rules.items():
        r = result if not cfg.pruning else replay_pruning(result, cfg)
        rows.append({"rule": name, **rule_settings(cfg),
                     "mean_evals": float(r.n_evals.mean()),
                     "mean_trials": float(r.n_trials.mean()), "accuracy": float(r.accuracy),
                     "balanced_accuracy": float(r.balanced_accuracy), "n_images": len(r)})
    return pd.DataFrame(rows)


def rule_settings(config: ClassifyConfig) -> dict[str, object]:
    """The settings columns of :func:`rule_sweep` for one rule: ``min_trials``,
    ``prune_every``, ``p_threshold``, ``pruning`` and ``keep_top`` (``"n:k"`` per cut,
    space-separated; empty without a top-k cut)."""
    return {"min_trials": config.min_trials, "prune_every": config.prune_every,
            "p_threshold": config.p_threshold, "pruning": config.pruning,
            "keep_top": " ".join(f"{at}:{k}" for at, k in config.top_k_cuts())}
