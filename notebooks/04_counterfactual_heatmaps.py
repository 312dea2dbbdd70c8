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
# # 04 · Counterfactual heatmaps: what would make this cell another type?
#
# While classifying, the model records for every class `c` the average direction in which it
# wanted to change the (noisy) image, `Delta_c`. If the model predicted class `c_hat`, then
# `Delta_c - Delta_c_hat`, decoded back to pixels by the VAE, shows **what would have to change**
# for the image to look like class `c`: a *counterfactual* explanation. It comes for free from
# the one classification pass: no second run of the UNet.
#
# The paper's Figure 6 arranges these as a grid: the original cells on the diagonal; in column
# `j` (a cell of class `j`) the cell of row `i` is the heatmap of the transition `j -> i`.
# The overlay marks as neutral every pixel whose colour is within mean +/- 3.5 standard deviations
# of the background and draws the rest over the cell.
#
# **What to look for.** Transitions between similar classes (lymphocyte -> blast, neutrophil ->
# immature granulocyte) should concentrate on the nucleus (chromatin, shape) or on the granules,
# not on the background.
#
# **Runtime.** Fast mode: one cell per class, 10 trials (under a minute). Full mode: 5 cells per
# class, 200 trials, no pruning (so that every class is evaluated on every trial, as in the
# paper's heatmap runs): about 15 minutes on a laptop CPU.

# %%
import os
from pathlib import Path

import cytoviz as cv

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()

# %% [markdown]
# `classify_for_heatmaps` runs the classifier as the reference heatmap runs do: pruning off, so
# every class gets the same trials (and an equally reliable `Delta_c`), with the error maps kept.
# It is `classify` with `ClassifyConfig(pruning=False, keep_error_maps=True)` and a fixed number
# of trials.

# %%
model = cv.diffusion.load_default_model()
cells = cv.data.synthesize(1 if FAST else 5, config=cv.data.SynthConfig(seed=4))
result = cv.heatmaps.classify_for_heatmaps(model, cells, trials=10 if FAST else 200, progress=not FAST)
print(f"accuracy {result.accuracy:.2f}, {result.class_trials.min()} trials for every class")

# %% [markdown]
# ## The transition grid (Figure 6)
#
# `grid_sources` picks one source cell per class (a confidently and correctly classified one when
# there is one); `counterfactual_heatmaps` decodes the heatmaps of those cells.

# %%
sources = cv.heatmaps.grid_sources(result)
heatmaps = cv.heatmaps.counterfactual_heatmaps(result, model, cells, indices=sources)
cv.pl.transition_grid(heatmaps, kind="overlay")

# %% [markdown]
# ## One cell in detail (Figure 5)
#
# Original, raw heatmap and thresholded overlay for three target classes.

# %%
cv.pl.heatmap_panel(heatmaps, 0, targets=list(result.class_names[1:4]))

# %% [markdown]
# ## Where is the energy? (synthetic data only)
#
# The generator knows the masks of nucleus, cytoplasm and granules, so we can check that the
# heatmaps concentrate inside the cell (`ratio` > 1) and see which compartment carries them.

# %%
energy = cv.heatmaps.heatmap_energy(heatmaps, cells.masks[heatmaps.source_index])
energy.groupby("source")[["ratio", "nucleus_share", "cytoplasm_share"]].mean().round(2)

# %% [markdown]
# ## Explore interactively: `TransitionExplorer`
#
# * **column / browse / image**: choose the source cell of a class column, e.g. browse the
#   misclassified or low-confidence cells of that class; the enlarged view then opens on the
#   cell's runner-up class (the transition to its predicted class is zero by construction);
# * **click a grid cell** to enlarge the source, heatmap and overlay on the right;
# * **gain**: the heatmap is decoded again with another gain (the VAE runs, the UNet does not);
# * **threshold**: how far from the background colour a pixel must be to be drawn.
#
# The readout lists the prediction, the confidence and the class scores of the selected cell.

# %%
explorer = cv.widgets.TransitionExplorer(result, cells, model)
explorer.show()

# %% [markdown]
# The callbacks are plain methods, so the same steps can be scripted, e.g. to save a figure:

# %%
explorer.select_cell(0, 1)
cv.pl.save_figure(cv.pl.transition_grid(heatmaps), OUT / "transition_grid", formats=("html",))
