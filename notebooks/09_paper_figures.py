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
# # 09 · The paper's figures in one call
#
# Notebooks 00 to 08 explain each analysis step by step. For a report or a slide deck you want the
# figures themselves, consistently styled and exported: `cytoviz.figures.make_figures` computes
# (or reuses) every analysis and writes each figure as PNG, SVG, PDF and interactive HTML.
# The same is available on the command line: `cytoviz figures --out figures`.
#
# `only=[...]` picks some figures; `fast=True` uses the tiny budgets (what this notebook does in
# fast mode).
#
# **Runtime.** Fast mode: a small subset of figures with tiny budgets (about a minute). Full mode:
# every figure with the CPU budgets, several hours on a laptop CPU (mostly the evaluation
# protocols of notebooks 06 and 07); run it overnight or on a GPU with the paper budget.

# %%
import os
from pathlib import Path

import cytoviz as cv
from cytoviz.figures import FIGURES, make_figures

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Which figures?
#
# `preview` (real vs synthetic cells), `table1` (in-domain accuracy), `fig2` (psychometric curves
# of the model and the experts), `fig3` (anomaly KDEs), `fig4` (low data), `table2` (domain
# shift), `fig5` (one cell's counterfactual heatmaps), `fig6` (the transition grid), `fig8`
# (generated cells). Figures 3, 4 and Table 2 need many trained models: they are drawn from the
# protocol tables under `cytoviz/_shipped/results/` and skipped (with the command to run) when those are
# missing.

# %%
print(list(FIGURES))

# %% [markdown]
# ## Make the figures
#
# Fast mode makes two cheap ones. The result maps each figure's name to the files written for
# it; expensive intermediate results are cached under `figures/cache`, so a second run only redraws.

# %%
ONLY = ["preview", "fig8"] if FAST else None
written = make_figures(OUT / "figures", only=ONLY, fast=FAST, progress=not FAST)
{name: [p.name for p in paths] for name, paths in written.items()}

# %% [markdown]
# ## Look at them
#
# The HTML exports are interactive plotly figures; the PNGs are for print. Here the first PNG of
# each figure:

# %%
from IPython.display import Image, display  # noqa: E402

for name, paths in written.items():
    pngs = [p for p in paths if p.suffix == ".png"]
    if pngs:
        print(name)
        display(Image(filename=str(pngs[0]), width=600))
