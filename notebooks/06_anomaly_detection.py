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
# # 06 · Anomaly detection: does the model know what it has not seen?
#
# A clinical classifier will meet cells of types it was never trained on. A discriminative
# classifier must still pick one of its classes, often confidently. A generative classifier
# has a natural alarm: when no class explains the image well, the class errors are all similar,
# and the certainty score `zeta` (paper, supplement F) is low.
#
# The protocol of the paper's Figure 3: **hold one class out of training** (blasts; erythroblasts),
# train the diffusion model and a discriminative CNN baseline on the other classes, and score a
# test set that contains the held-out class. Good anomaly detection = the held-out ("abnormal")
# cells get lower certainty than the normal ones: ROC AUC near 1. The paper: blasts held out,
# ViT 0.698 vs CytoDiffusion 0.982.
#
# **Runtime.** Fast mode runs the protocol with the `"fast"` evaluation budget (16 px images, a
# model trained for a handful of steps: the numbers mean nothing, the mechanics are the point;
# about a minute). Full mode does not retrain: it loads the measured table shipped in
# `cytoviz/_shipped/results/anomaly.csv`, written by `bash scripts/run_evaluations.sh` (64 px `tiny` models,
# 300 VAE + 3,000 UNet steps per held-out class, about an hour of CPU per model);
# `EvalBudget.paper()` is the full protocol for a GPU.

# %%
import os
from pathlib import Path

import cytoviz as cv

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()
# the stored run used the CPU budget on the full-size synthetic benchmark
budget = cv.evaluation.EvalBudget.preset("fast") if FAST else cv.evaluation.EvalBudget.cpu(data_scale=1.0)

# %% [markdown]
# ## Train with a class held out, score the test set
#
# One call runs the whole protocol for each held-out class and each model. The table has one row
# per (model, held-out class, test image) with the raw and normalised certainty (divided by its
# maximum per model and held-out class, as in the paper). In full mode the measured table is
# loaded instead (`cv.evaluation.stored_results`): the same columns, no training.

# %%
if FAST:
    table = cv.evaluation.anomaly_scores("synthetic", held_out=("blast", "erythroblast"),
                                         budget=budget, out=OUT / "anomaly", progress=False)
else:
    table = cv.evaluation.stored_results("anomaly")
table.head()

# %%
cv.evaluation.anomaly_auc(table)

# %% [markdown]
# ## Figure 3: certainty distributions
#
# One panel per (model, held-out class): the kernel density of the normalised certainty of normal
# cells and of the held-out cells. Well separated curves (abnormal on the left) mean that a
# threshold on certainty can flag unknown cell types.

# %%
cv.pl.anomaly_kde(cv.anomaly.certainty_kde(table), cv.anomaly.anomaly_auc(table))

# %% [markdown]
# ## Explore a threshold: `AnomalyExplorer`
#
# Pick a model and a held-out class, move the threshold: cells below it are flagged. The readout
# gives the true-positive rate (held-out cells flagged) and false-positive rate (normal cells
# flagged); the thumbnails show the flagged cells, least certain first. Look at the normal cells
# that get flagged: are they the ambiguous ones?

# %%
test_images = cv.evaluation.anomaly_test_set("synthetic", budget=budget)
cv.widgets.AnomalyExplorer(table, images=test_images, threshold=0.5).show()

# %%
table.to_csv(OUT / "anomaly_scores.csv", index=False)
