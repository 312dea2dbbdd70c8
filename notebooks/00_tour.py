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
# # 00 · A tour of CytoDiffusion in a few minutes
#
# CytoDiffusion classifies a blood-cell image with a **class-conditional latent diffusion model**.
# Instead of learning a decision boundary, the model learns what every cell type *looks like*:
# it learns to remove noise from an image when it is told the class. To classify, we add noise to
# the image and ask the model to remove it once for every class; the class whose "denoising"
# fits best (lowest error) wins.
#
# This tour runs the whole story on the model shipped with cytoviz:
#
# 1. synthetic blood-smear images with known ground truth,
# 2. classification of a few cells,
# 3. a counterfactual heatmap ("what would have to change to make this cell another type?"),
# 4. a psychometric curve (is the model's confidence meaningful?),
# 5. an anomaly score (does the model know when it sees something it was not trained on?).
#
# Each later notebook (01 to 09) takes one of these steps in depth.
#
# **Runtime.** With `CYTOVIZ_FAST=1` (continuous integration, teaching on a laptop) every step
# uses a tiny budget and the tour takes about a minute on a CPU. Without it the tour classifies
# more cells with more trials: about 10 to 15 minutes on a laptop CPU.

# %%
import os
from pathlib import Path

import plotly.express as px

import cytoviz as cv

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()
print(f"fast mode: {FAST}; outputs go to {OUT.resolve()}")

# %% [markdown]
# ## 1. The model and the data
#
# `load_default_model()` loads the small model shipped in `cytoviz/_shipped/default_model` (a 64 x 64 pixel
# latent diffusion model trained on the synthetic smears; the paper fine-tunes Stable
# Diffusion 1.5 on 360 x 360 images, which needs a GPU).

# %%
model = cv.diffusion.load_default_model()
print(model.class_names)

# %% [markdown]
# The synthetic generator draws cells of the ten classes of the CytoData set with a known ground
# truth: the class, masks of nucleus and cytoplasm, and for some "hard" cells a second class they
# resemble (their *ambiguity*). Each row of the figure is a class.

# %%
N_PER_CLASS = 2 if FAST else 10
cells = cv.data.synthesize(N_PER_CLASS, config=cv.data.SynthConfig(seed=1))
cv.pl.data_preview(cells, n_per_class=N_PER_CLASS if FAST else 6)

# %% [markdown]
# ## 2. Classify
#
# One *trial* draws a noise level `t` and a noise image, and measures for every class still in
# play how well the model removes that noise. After a minimum number of trials, a paired t-test
# drops the classes that are clearly worse than the best one (adaptive pruning), so easy cells
# stop early. The paper uses up to 2,000 trials; the tour uses far fewer.

# %%
config = cv.diffusion.ClassifyConfig(min_trials=5 if FAST else 20, max_trials=6 if FAST else 200)
result = cv.diffusion.classify(model, cells, config, progress=not FAST)
table = result.to_frame()
print(f"accuracy {result.accuracy:.2f} on {len(table)} cells")
table.head(10)

# %% [markdown]
# Everything later in this tour is a *view* of this one `result`: no second pass through the model.
# It can be saved and loaded again (`result.save(...)`, `ClassificationResult.load(...)`).

# %%
result.save(OUT / "tour_result.npz")

# %% [markdown]
# ## 3. A counterfactual heatmap
#
# During classification the model recorded, for every class, the average direction in which it
# wanted to change the image. The difference between the prediction's direction and another
# class's direction, decoded back to pixels, shows **what would have to change** for the cell to
# look like that other class. Look for colour concentrated on the nucleus or on the granules, not
# on the background.

# %%
heatmaps = cv.heatmaps.counterfactual_heatmaps(result, model, cells, indices=[0])
cv.pl.heatmap_panel(heatmaps, 0, targets=list(model.class_names[:3]))

# %% [markdown]
# ## 4. Is the confidence meaningful? A psychometric curve
#
# Psychophysics asks how often an observer is right as a function of how hard the stimulus is.
# Here the "stimulus" is the model's own confidence (the gap between the two best classes), binned,
# and the curve is a Bayesian psychometric function fitted with PyMC. A curve that rises from chance
# (1 in 10) towards 100 % means that confident answers are more often right.
# With only a handful of cells (fast mode) the curve is very uncertain: the shaded band is wide.

# %%
binned = cv.psychometric.bin_confidence(result.confidence, result.correct, n_bins=6 if FAST else 25)
psy_config = cv.psychometric.PsychometricConfig(draws=200 if FAST else 1000, tune=200 if FAST else 1000,
                                                chains=1 if FAST else 2,
                                                mcse_target=None if FAST else 0.01)
idata = cv.psychometric.fit(binned.x, binned.k, binned.n, config=psy_config, name="model")
cv.pl.psychometric_curve(idata, "model")

# %% [markdown]
# ## 5. An anomaly score
#
# The certainty score `zeta` (paper, supplement F) measures how much the best class stands out
# from the others. Cells the model finds ambiguous, or cells of a type it has never seen, get a
# low score. Here: are wrongly classified cells less certain than correct ones?

# %%
px.strip(table, x="correct", y="zeta", color="true", hover_data=["predicted"],
         template=cv.pl.TEMPLATE_NAME, title="certainty zeta of correct and wrong predictions")

# %% [markdown]
# ## Where next
#
# * `01_synthetic_smear_and_experts`: the data and the simulated expert panel,
# * `02_training`: train your own model,
# * `03_classification_and_pruning`: watch classes being eliminated trial by trial,
# * `04_counterfactual_heatmaps`, `05_psychometric`, `06_anomaly_detection`,
#   `07_domain_shift_low_data_few_shot`, `08_generation_and_authenticity_quiz`,
# * `09_paper_figures`: every figure of the paper in one call.
