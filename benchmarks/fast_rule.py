"""The paper's decision rule against the opt-in fast rule, at equal trials (issue 22).

One unpruned pass of the shipped model per split (``cytoviz classify --no-pruning``: every
class every trial, at most ``--max-trials``) holds every error a pruned run with the same
budget could measure, so each rule is replayed on the same trials
(:func:`cytoviz.diffusion.replay.replay_pruning`, exact: ``tests/test_replay.py``) and the
unpruned pass is the reference. The fast rule's settings (``DECISION_RULES["fast"]`` in
``cytoviz/diffusion/classify_config.py``) are chosen on two validation sets only, 1,000 images
each drawn for this benchmark from fresh seeds (``VAL_SEEDS``): ``val_large`` in the reference
domain and ``val_mild_large`` under the mild shift. Among the swept rules that spend at most
``VAL_BUDGET`` (90) UNet evaluations per image on each, the choice falls least below the
unpruned pass on its worse set (``--sweep`` prints the candidates, ``--choose-only`` stops
there); the test sets only measure it.

History, so that the choice can be judged (each step chose on val sets alone, but after the
previous step's test result was known, so the test sets are not untouched):

1. The first fast rule, the t-test alone from trial 5 after every trial at p < 0.1, was the
   fewest evaluations within 1 point of val's unpruned accuracy on 150 val images. On the test
   sets: 91.5 % at 83 evaluations in-domain (1.3 points below the 100-trial pass), 89.3 % at
   100.1 under the mild shift.
2. The val pass was extended to 300 images, the top-k family (``keep_top``) added and the
   criterion set to the most accurate rule within 80 evaluations on val. Its choice (the 4 best
   classes kept after trial 3, the t-test from trial 10) gave 91.3 % at 78 evaluations
   in-domain and 87.0 % at 91 under the mild shift, 3.2 points below: an in-domain val set
   cannot see what a shift does to an early cut.
3. A mild-shift val set (300 images, seed ``VAL_MILD_SEED``) was added and the criterion
   became the one above. Its choice (the 3 best classes kept after trial 3, the t-test from
   trial 7) fell 0.0 and 2.0 points below the unpruned passes of the two val sets, but 2.5
   points below the 500-trial reference in-domain (90.5 % at 64 evaluations) and 4.0 below
   the 100-trial pass under the mild shift (86.2 % at 75) on the test sets. What the test sets
   showed about the val sets (a finding informed by the test sets): the same rule can sit 2 to
   3 points apart on val and test; a val set of 300 images resolves 0.33 points per image, and
   a rule's losses come from a handful of images.
4. So the val sets were replaced by the two 1,000-image sets above, and the grid gained
   successive-halving schedules (``SCHEDULES``, several top-k cuts in a row) with and without
   a last cut to the best class (``STOPS``, a per-image trial cap). The schedules came from a
   look at the 300-image val passes alone: there the unpruned accuracy levels off after about
   30 trials, and the true class is among the 5 best after 3 trials on 99 % of the images and
   among the 3 best after 10 trials on 98 %. The criterion stayed that of step 3. The choice
   was made once, with ``--choose-only``, before any new rule was replayed on a test set; the
   JSON and the README hold its test numbers. It is the t-test alone, from trial 3 after every
   trial at p < 0.1, 2.8 points below the unpruned pass on the mild-shift val set: on these
   val sets no swept rule within the budget comes within 1 point on both, so the target is
   missed by the val sets' own measure before any test set is looked at (``val_frontier`` in
   the JSON: what the cheapest rule within 1 point costs).

Usage::

    .venv/bin/python benchmarks/fast_rule.py [--n-val 1000] [--n-test 600] [--max-trials 100]

The unpruned passes are kept, resumable, in ``benchmarks/runs/fast_rule/SPLIT/`` (missing ones
are classified first: about 1,000 UNet evaluations per image at 100 trials). Writes
``benchmarks/results/fast_rule.json`` and ``benchmarks/results/fast_rule.html`` / ``.png`` (the
accuracy-vs-evaluations figure, :func:`cytoviz.pl.rule_curve`).

Issue 22's reference is an unpruned pass at the paper's 500 trials on the same images (about
5,000 UNet evaluations per image, 3 million per set: hours on a CPU; ``cytoviz classify``
prints the expected time at its start). It is not
classified here; where its folder ``benchmarks/runs/fast_rule/SPLIT_t500/`` holds a finished
run it is read and reported as the reference beside the 100-trial one. It resumes where it
stopped (run it in pieces)::

    .venv/bin/cytoviz classify --model default --data synthetic --split test --no-pruning \
        --max-trials 500 --no-error-maps --num-processes 2 --threads 1 --chunk-size 50 \
        --out benchmarks/runs/fast_rule/test_t500
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "benchmarks" / "runs" / "fast_rule"
RESULTS = Path(__file__).resolve().parent / "results" / "fast_rule.json"
TEST_SPLITS = ("test", "test_mild")
#: Trials of issue 22's reference pass (the paper's unpruned budget).
REFERENCE_TRIALS = 500
#: The top-k cuts swept: (trial, classes kept).
TOP_K = ((3, 3), (3, 4), (5, 3), (5, 2), (8, 2))
#: Successive-halving schedules swept (``keep_top`` as flat (trial, classes kept) pairs), each
#: alone or ended by a last cut to the best class at trial STOP (a per-image trial cap that the
#: replay can measure: the 100-trial pass fixes the timestep grid, so ``max_trials`` cannot be
#: lowered in a replay).
SCHEDULES = ((3, 5, 8, 3, 15, 2), (5, 5, 10, 3, 20, 2), (5, 4, 12, 2), (3, 5, 10, 3, 20, 2))
STOPS = (30, 40, 60, None)
#: Evaluations per image the fast rule may spend on each val set: issue 22 allows 100 on
#: every test set; 10 % headroom for the difference between val and test images.
VAL_BUDGET = 90
#: The validation sets the rule is chosen on, both drawn for this benchmark: one in the
#: reference domain and one under the mild shift, so that a rule that holds in-domain but not
#: under a shift is not chosen.
VAL_SETS = ("val_large", "val_mild_large")
#: Seeds of the val sets (``synthesize(VAL_PER_CLASS, domain=..., seed=...)``): fresh seeds,
#: drawn once for the fourth choice; no other image of the repository comes from them.
VAL_SEEDS = {"val_large": 2023, "val_mild_large": 2024}
VAL_DOMAINS = {"val_large": None, "val_mild_large": "mild"}
VAL_PER_CLASS = 100
#: The third choice's mild-shift val set (30 per class), kept for the record.
VAL_MILD_SEED = 2022


def _grid(base):
    """The sweep: the paper's test started earlier, run more often, at several levels; and the
    same with a top-k cut early on (``keep_top``: after trial n keep the k best classes)."""
    rules = {}
    for m in (2, 3, 4, 5, 7, 10, 20):
        for every in (1, 5):
            for p in (0.002, 0.01, 0.02, 0.05, 0.1):
                rules[f"m{m}-e{every}-p{p:g}"] = base.replace(min_trials=m, prune_every=every,
                                                             p_threshold=p)
    for at, k in TOP_K:
        for m in (5, 7, 10):
            for p in (0.02, 0.05, 0.1):
                rules[f"top{k}@{at}-m{m}-p{p:g}"] = base.replace(
                    min_trials=m, prune_every=1, p_threshold=p, keep_top=(at, k))
    for sched in SCHEDULES:
        for stop in STOPS:
            for p in (0.05, 0.1, 0.2):
                cuts = sched + (() if stop is None else (stop, 1))
                name = "sh" + "-".join(f"{k}@{at}" for at, k in zip(cuts[::2], cuts[1::2],
                                                                     strict=True))
                rules[f"{name}-m10-p{p:g}"] = base.replace(
                    min_trials=10, prune_every=1, p_threshold=p, keep_top=cuts)
    return rules


def _choose(vals: dict, grid: dict):
    """The val sweeps' choice: among the grid's rules that spend at most VAL_BUDGET
    evaluations per image on every val set, the one whose worst shortfall against a set's
    unpruned pass is smallest (ties: fewer evaluations on the costlier set). Returns the rule's
    name and a table of the candidates (``gap``: the worst shortfall in points)."""
    import pandas as pd

    cols = []
    for name, t in vals.items():
        ref = float(t.loc[t["rule"] == "unpruned", "balanced_accuracy"].iloc[0])
        t = t.set_index("rule")
        cols.append(pd.DataFrame({f"evals_{name}": t["mean_evals"],
                                  f"gap_{name}": 100 * (ref - t["balanced_accuracy"])}))
    table = pd.concat(cols, axis=1).loc[list(grid)]
    table["evals"] = table.filter(like="evals_").max(axis=1)
    table["gap"] = table.filter(like="gap_").max(axis=1)
    ok = table[table["evals"] <= VAL_BUDGET].sort_values(["gap", "evals"])
    return str(ok.index[0]), ok, table


def _describe(cfg) -> str:
    """A rule in words: its top-k cuts, then its t-test."""
    cuts = [f"the best class after trial {at}" if k == 1 else f"the {k} best after trial {at}"
            for at, k in cfg.top_k_cuts()]
    every = "every trial" if cfg.prune_every == 1 else f"every {cfg.prune_every} trials"
    test = f"the t-test from trial {cfg.min_trials}, {every}, at p < {cfg.p_threshold:g}"
    return (f"{', '.join(cuts)} kept, then " if cuts else "") + test


def _frontier(table, grid: dict) -> dict:
    """From the val sweep's table: the cheapest rule within 1 point of the unpruned pass on
    every val set, and the smallest worst shortfall at 100 evaluations per image or fewer."""
    within = table[table["gap"] <= 1.0].sort_values(["evals", "gap"])
    at100 = table[table["evals"] <= 100].sort_values(["gap", "evals"])
    out = {}
    for key, t in (("cheapest_within_1_point", within), ("best_within_100_evaluations", at100)):
        if len(t):
            name = str(t.index[0])
            out[key] = {"rule": name, "description": _describe(grid[name]),
                        "evaluations": float(t["evals"].iloc[0]),
                        "gap_points": float(t["gap"].iloc[0])}
    return out


def _dataset(split: str):
    """The images of ``split``: a default synthetic split, or one of the benchmark's val sets."""
    from cytoviz.data import resolve_one, synthesize

    if split in VAL_SEEDS:
        return synthesize(VAL_PER_CLASS, domain=VAL_DOMAINS[split], seed=VAL_SEEDS[split])
    if split == "val_mild":
        return synthesize(30, domain="mild", seed=VAL_MILD_SEED)
    return resolve_one("synthetic", split)


def _unpruned(split: str, n: int, max_trials: int, threads: int, processes: int):
    """The unpruned pass of the first ``n`` images of ``split``, classified where missing.

    A stored pass of fewer images is extended: the missing images are classified with their
    own random streams (``first_index``), so the longer pass equals one run over all ``n``.
    """
    import torch

    from cytoviz.diffusion import (
        ClassificationResult,
        ClassifyConfig,
        classify,
        classify_to_folder,
        load_default_model,
    )

    torch.set_num_threads(threads)
    folder = RUNS / split
    data = _dataset(split)
    if n > len(data):
        raise SystemExit(f"fast_rule: {split} has {len(data)} images, asked for {n}")
    if (folder / "result.npz").is_file():
        r = ClassificationResult.load(folder / "result.npz")
        if r.config.pruning or r.config.max_trials != max_trials or len(r) > n:
            raise SystemExit(f"fast_rule: {folder} holds another run ({len(r)} images, "
                             f"max_trials {r.config.max_trials}); delete it or pass its sizes")
        if len(r) < n:
            print(f"fast_rule: extending {folder} from {len(r)} to {n} images", flush=True)
            rest = classify(load_default_model(), data.subset(range(len(r), n)), r.config,
                            first_index=len(r))
            r = ClassificationResult.concat([r, rest])
            r.save(folder / "result.npz")
            from cytoviz._io import save_csv

            save_csv(r.to_frame(), folder / "predictions.csv")
        return r
    config = ClassifyConfig(max_trials=max_trials, pruning=False, keep_error_maps=False)
    return classify_to_folder(load_default_model(), data.subset(range(n)), folder,
                              config=config, chunk_size=50, num_processes=processes)


def _reference(split: str, n: int) -> dict | None:
    """Balanced accuracy and cost of the finished 500-trial unpruned pass of ``split``, if any."""
    from cytoviz.diffusion import ClassificationResult

    path = RUNS / f"{split}_t{REFERENCE_TRIALS}" / "result.npz"
    if not path.is_file():
        return None
    r = ClassificationResult.load(path)
    if r.config.pruning or r.config.max_trials != REFERENCE_TRIALS or len(r) != n:
        raise SystemExit(f"fast_rule: {path} is not an unpruned {REFERENCE_TRIALS}-trial pass of "
                         f"the first {n} images of {split} ({len(r)} images, max_trials "
                         f"{r.config.max_trials}, pruning {r.config.pruning})")
    return {"balanced_accuracy": float(r.balanced_accuracy), "accuracy": float(r.accuracy),
            "mean_evals": float(r.n_evals.mean()), "n_images": len(r),
            "path": str(path.relative_to(REPO))}


def _sweep(split: str, run, rules: dict):
    """:func:`cytoviz.diffusion.replay.rule_sweep` of ``rules`` on ``split``'s unpruned pass,
    cached beside the pass (``sweep-KEY.csv``, the key hashes the pass's file; one row per rule's
    settings): a rerun replays only the settings the cache lacks."""
    import hashlib

    import pandas as pd

    from cytoviz._io import save_csv
    from cytoviz.diffusion.replay import rule_settings, rule_sweep

    digest = hashlib.sha256((RUNS / split / "result.npz").read_bytes()).hexdigest()[:16]
    path = RUNS / split / f"sweep-{digest}.csv"

    def key(row) -> tuple:
        return (int(row["min_trials"]), int(row["prune_every"]), f"{row['p_threshold']:g}",
                bool(row["pruning"]), "" if pd.isna(row["keep_top"]) else str(row["keep_top"]))

    cached = (pd.read_csv(path, keep_default_na=False, na_values=[]) if path.is_file()
              else pd.DataFrame())
    have = {key(r): r for _, r in cached.iterrows()}
    wanted = {name: key(rule_settings(cfg)) for name, cfg in rules.items()}
    missing = {n: rules[n] for n, k in wanted.items() if k not in have}
    if missing:
        fresh = rule_sweep(run, missing)
        for _, r in fresh.iterrows():
            have[key(r)] = r
        save_csv(pd.DataFrame(list(have.values())).reset_index(drop=True), path)
    rows = [have[k].copy() for k in wanted.values()]
    table = pd.DataFrame(rows).reset_index(drop=True)
    table["rule"] = list(wanted)
    return table[["rule", *[c for c in table.columns if c != "rule"]]]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-val", type=int, default=VAL_PER_CLASS * 10)
    parser.add_argument("--n-test", type=int, default=600)
    parser.add_argument("--max-trials", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-processes", type=int, default=2,
                        help="processes for a missing unpruned pass (classify_to_folder)")
    parser.add_argument("--sweep", action="store_true", help="print the val sweep's candidates")
    parser.add_argument("--choose-only", action="store_true",
                        help="stop after the val sets' choice, before any test set is replayed")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from cytoviz import pl
    from cytoviz._io import save_json
    from cytoviz.diffusion.classify_config import _RULE_FIELDS, DECISION_RULES, ClassifyConfig
    t0 = time.perf_counter()
    runs = {s: _unpruned(s, args.n_val, args.max_trials, args.threads, args.num_processes)
            for s in VAL_SETS}
    for s in () if args.choose_only else TEST_SPLITS:
        runs[s] = _unpruned(s, args.n_test, args.max_trials, args.threads, args.num_processes)
    base = runs[VAL_SETS[0]].config.replace(pruning=True)
    # the named rules at the passes' trials (the paper's own cap is 2,000; the fast rule's
    # preset carries its cap, which must be the passes' for the replay to be what it does)
    named = {"unpruned": base.replace(pruning=False),
             **{name: base.replace(**{k: v for k, v in changes.items() if k != "max_trials"})
                for name, changes in DECISION_RULES.items()}}
    if DECISION_RULES["fast"]["max_trials"] != args.max_trials:
        raise SystemExit(f"fast_rule: the fast rule stops at {DECISION_RULES['fast']['max_trials']} "
                         f"trials, the passes at {args.max_trials}; pass --max-trials "
                         f"{DECISION_RULES['fast']['max_trials']}")
    grid = _grid(base)
    vals = {s: _sweep(s, runs[s], {**named, **grid}) for s in VAL_SETS}
    choice, candidates, table = _choose(vals, grid)
    frontier = _frontier(table, grid)
    for key, row in frontier.items():
        print(f"val sets, {key.replace('_', ' ')}: {row['rule']} ({row['evaluations']:.0f} "
              f"evaluations per image on the costlier set, {row['gap_points']:.1f} points below "
              "the unpruned pass on the worse set)")
    print(f"val sets {list(VAL_SETS)}: the sweep's choice {choice} (at most "
          f"{candidates.loc[choice, 'evals']:.0f} evaluations per image, at most "
          f"{candidates.loc[choice, 'gap']:.1f} points below a set's unpruned pass)", flush=True)
    fast = DECISION_RULES["fast"]
    agrees = all(getattr(grid[choice], k) == getattr(named["fast"], k)
                 for k in _RULE_FIELDS if k != "max_trials")
    print(f"DECISION_RULES['fast'] = {fast}: {'the sweep choice' if agrees else 'NOT the sweep choice'}")
    if args.sweep:
        print(candidates.to_string())
    if args.choose_only:
        return {"val_choice": choice}
    splits, tables = {}, {}
    for s in TEST_SPLITS:
        table = tables[s] = _sweep(s, runs[s], {**named, **grid})
        splits[s] = table.to_dict(orient="list")
        for name in named:
            r = table[table["rule"] == name].iloc[0]
            print(f"{s} {name}: {r['mean_evals']:.0f} evaluations per image, balanced accuracy "
                  f"{100 * r['balanced_accuracy']:.1f} %", flush=True)
    labels = {"test": "in-domain", "test_mild": "mild shift"}
    references = {s: _reference(s, len(runs[s])) for s in TEST_SPLITS}
    fig = pl.rule_curve({labels[s]: t for s, t in tables.items()}, highlight=list(named),
                        references={labels[s]: r for s, r in references.items() if r},
                        reference_label=f"unpruned, {REFERENCE_TRIALS} trials")
    fig.write_html(args.out.with_suffix(".html"), include_plotlyjs="cdn")
    pl.save_figure(fig, args.out.with_suffix(""), formats=("png",), width="double")
    out = {"benchmark": "fast_rule", "max_trials": args.max_trials,
           "n_images": {s: len(r) for s, r in runs.items()},
           "rules": {name: {**{k: getattr(cfg, k) for k in ("min_trials", "prune_every",
                                                            "p_threshold", "keep_top", "pruning")},
                            "description": _describe(cfg) if cfg.pruning else "every class, every trial"}
                     for name, cfg in named.items()},
           "val_budget": VAL_BUDGET,
           "val": {s: t.to_dict(orient="list") for s, t in vals.items()},
           "val_seeds": VAL_SEEDS, "val_choice": choice, "val_frontier": frontier,
           "fast_is_val_choice": bool(agrees),
           "splits": splits, "classifier_config": ClassifyConfig.to_dict(base),
           "reference_trials": REFERENCE_TRIALS,
           "reference": references,
           "wall_seconds": time.perf_counter() - t0, "python": platform.python_version(),
           "torch_threads": args.threads,
           "command": " ".join(["python benchmarks/fast_rule.py", *(argv if argv is not None
                                                                    else sys.argv[1:])])}
    save_json(out, args.out)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
