# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Domain shift, low data and few-shot adaptation
#
# Three questions a laboratory asks before trusting a classifier:
#
# 1. **Domain shift** (the paper's Table 2): trained on one laboratory's smears, how well does it
#    do on another laboratory's (other stain, camera, magnification)? Here: the synthetic
#    reference domain vs the `"mild"` and `"strong"` presets.
# 2. **Low data** (Figure 4): how does accuracy grow with 10, 20, 50, 150 training images per
#    class? Generative classifiers tend to need fewer examples.
# 3. **Few-shot adaptation** (Chossegros et al.): fine-tune on at most 100 images of the new
#    domain, with and without Reinhard colour transfer to the training domain's colours.
#
# Each protocol trains the diffusion model and the discriminative CNN baseline and returns a tidy
# table; `cv.pl` draws it.
#
# **Runtime.** Fast mode runs the protocols with the `"fast"` budget (tiny 16 px models, a few
# steps; the numbers are noise, about a minute in all). Full mode does not retrain: it loads the
# measured tables shipped in `cytoviz/_shipped/results/` (`cv.evaluation.stored_results`), written by
# `bash scripts/run_evaluations.sh` at a reduced CPU budget (about two hours on 2 cores; each
# table's `budget` column says which). `EvalBudget.paper()` is the full protocol for a GPU.

# %%
import os
from pathlib import Path

import cytoviz as cv

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()
budget = cv.evaluation.EvalBudget.preset("fast")


def protocol(name, run):
    """Fast mode: run the protocol on the fast budget; full mode: the measured table."""
    return run() if FAST else cv.evaluation.stored_results(name)

# %% [markdown]
# ## What the shifted domains look like

# %%
reference = cv.data.synthesize(2, config=cv.data.SynthConfig(seed=7))
cv.pl.real_vs_synthetic(reference, cv.data.synthesize(2, config=cv.data.SynthConfig(seed=7), domain="strong"),
                        n_per_class=2, labels=("reference", "strong shift"))

# %% [markdown]
# ## 1. Domain shift
#
# Train in the reference domain, test in the reference domain and on the shifted test sets:
# balanced accuracy, mean +/- sd over seeds. The drop from left to right is the cost of the shift.

# %%
shift = protocol("domain_shift", lambda: cv.evaluation.domain_shift(
    "synthetic", budget=budget, seeds=1, out=OUT / "domain_shift", progress=False))
cv.evaluation.domain_shift_table(shift)

# %%
cv.pl.domain_shift_bars(shift)

# %% [markdown]
# ## 2. Low data
#
# Train on `n` images per class, repeated with fresh draws. Look at the left end of the curves:
# which model copes better with very few images?

# %%
low = protocol("low_data", lambda: cv.evaluation.low_data(
    "synthetic", budget=budget, out=OUT / "low_data", progress=False))
cv.pl.low_data_curve(low)

# %% [markdown]
# ## 3. Few-shot domain adaptation
#
# Fine-tune the trained models on a few class-proportional images of each target domain, with and
# without colour transfer. Expect fine-tuning to recover much of the loss, and colour transfer to
# help most on the strongly shifted domain.

# %%
few = protocol("few_shot", lambda: cv.evaluation.few_shot(
    "synthetic", budget=budget, out=OUT / "few_shot", progress=False))
cv.pl.few_shot_bars(few)

# %%
for name, frame in {"domain_shift": shift, "low_data": low, "few_shot": few}.items():
    frame.to_csv(OUT / f"{name}.csv", index=False)
