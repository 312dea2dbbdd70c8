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
# # 03 · Classification trial by trial, and adaptive pruning
#
# **The decision rule.** For an image, the diffusion classifier picks the class `c` with the lowest
# expected weighted denoising error
# `E_{t, eps}[ w_t || eps - eps_theta(z_t, t, c) ||^2 ]`.
# The expectation is estimated by **trials**: one trial draws a noise level `t` and a noise image
# `eps` (and a random rotation / flip / colour jitter of the image), and evaluates *every class still
# in play on the same draw*, so the classes are compared fairly.
#
# **Pruning.** After `min_trials` (20) trials, and then every 5 trials, a paired t-test compares
# each class with the current best one and drops it when `p < 0.002`. Easy cells stop after a few
# dozen trials; hard cells keep several classes in play for longer. The cost of a trial is one UNet
# evaluation per class still in play.
#
# **Runtime.** Fast mode: 10 cells, at most 20 trials (about a minute). Full mode: 100 cells with
# the paper's settings (up to 2,000 trials), about 30 minutes on a laptop CPU.

# %%
import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px

import cytoviz as cv

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()

# %%
model = cv.diffusion.load_default_model()
cells = cv.data.synthesize(1 if FAST else 10, config=cv.data.SynthConfig(seed=3))
config = cv.diffusion.ClassifyConfig(min_trials=10 if FAST else 20, max_trials=20 if FAST else 2000)
print(config)

# %% [markdown]
# ## One pass over the images
#
# `classify` returns a `ClassificationResult` with the raw per-trial, per-class errors. Everything
# below is a view of it.

# %%
result = cv.diffusion.classify(model, cells, config, progress=not FAST)
table = result.to_frame()
print(f"accuracy {result.accuracy:.2f}, balanced accuracy {result.balanced_accuracy:.2f}")
table[["true", "predicted", "confidence", "n_trials", "n_evals"]].head(10)

# %% [markdown]
# ## Watching one cell: classes eliminated trial by trial
#
# Take the cell that needed the most trials. `result.image_errors(i)` is a `(trials, classes)`
# array of weighted errors; a class that has been pruned is `NaN` from then on.
# `cv.pl.pruning_trace` draws the running mean error of each class (each trial's best class
# subtracted, the paired comparison the classifier makes): the lines that stop, marked with a
# cross, are the classes that were eliminated (at trial `min_trials`, the dotted line, then every
# `prune_every` trials). The lowest line at the end is the prediction. In fast mode there are few
# trials, so few classes can be dropped; with the full budget you can see most classes leave
# after 20 to 50 trials.

# %%
i = int(np.argmax(result.n_trials))
cv.pl.pruning_trace(result, i)

# %% [markdown]
# The per-trial errors jump around a lot (each trial draws a new noise level), which is why many
# trials are needed, and why the comparison is *paired*: all classes share the same draw.
# The timesteps of the trials cover the whole range from the first trials on (a stratified grid):

# %%
px.scatter(x=np.arange(1, result.n_trials[i] + 1), y=result.image_timesteps(i),
           labels={"x": "trial", "y": "timestep t"}, template=cv.pl.TEMPLATE_NAME)

# %% [markdown]
# ## How many trials did each cell need?
#
# Cells that stop at the maximum are those where two or more classes stayed close: often the
# ambiguous cells. Their confidence is low.

# %%
px.histogram(table, x="n_trials", color="correct", nbins=20, template=cv.pl.TEMPLATE_NAME)

# %% [markdown]
# ## What pruning buys
#
# The same cells without pruning: every class gets every trial. Compare accuracy and cost (UNet
# evaluations). The paper's ablation shows that pruning keeps the accuracy at a fraction of the cost.

# %%
no_pruning = cv.diffusion.classify(model, cells, config.replace(pruning=False), progress=not FAST)
pd.DataFrame({
    "pruning": [True, False],
    "accuracy": [result.accuracy, no_pruning.accuracy],
    "UNet evaluations": [int(result.n_evals.sum()), int(no_pruning.n_evals.sum())],
})

# %% [markdown]
# Save the result for later notebooks (`ClassificationResult.load` reads it back).

# %%
result.save(OUT / "classification_result.npz")
