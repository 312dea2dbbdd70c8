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
# # 01 · Synthetic smears and a simulated expert panel
#
# Real blood-smear data sets (CytoData, PBC, Raabin-WBC, LISC, Bodzas) cannot be shipped with a
# package. cytoviz therefore ships a **procedural generator** of peripheral-blood-smear cells whose
# ground truth is known exactly: the class, masks of nucleus, cytoplasm and granules, and, for a
# share of "hard" cells, a second class the cell partly resembles (its *ambiguity*). Every analysis
# in this series runs on it, and on real data by swapping in `cv.data.load_folder(...)`.
#
# The paper's psychometric analysis compares the model with six haematologists who labelled the
# same images with a confidence (High / Moderate / Low / No). cytoviz simulates such a panel with
# the CytoData protocol, so the whole analysis can be rehearsed before real labels arrive.
#
# Runtime: seconds in fast mode, about a minute in full mode.

# %%
import os
from pathlib import Path

import plotly.express as px

import cytoviz as cv

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()

# %% [markdown]
# ## The ten classes
#
# One row per class. Look at the nucleus shape (round in lymphocytes, kidney-shaped in monocytes,
# segmented in neutrophils, bilobed with orange granules in eosinophils) and at the cytoplasm.

# %%
N_PER_CLASS = 6 if FAST else 40
cells = cv.data.synthesize(N_PER_CLASS, config=cv.data.SynthConfig(seed=0))
cv.pl.data_preview(cells, n_per_class=6)

# %% [markdown]
# Every image carries metadata: which class it partly resembles (`mix_class`) and how strongly
# (`mix_weight`). These drive the simulated experts' disagreement.

# %%
cells.meta.head()

# %% [markdown]
# ## Other laboratories: domain shift
#
# A smear from another laboratory has another stain, camera and magnification. The presets in
# `cv.data.DOMAINS` imitate that; notebook 07 measures how much each hurts a classifier.

# %%
list(cv.data.DOMAINS)

# %%
shifted = cv.data.synthesize(2, config=cv.data.SynthConfig(seed=0), domain="strong")
cv.pl.real_vs_synthetic(cells, shifted, n_per_class=2, labels=("reference domain", "'strong' shift"))

# %% [markdown]
# ## The benchmark splits
#
# `default_splits` gives an imbalanced training set (like CytoData: few basophils, many
# neutrophils), balanced validation and test sets, and two shifted test sets.

# %%
splits = cv.data.default_splits(scale=0.05 if FAST else 1.0)
{name: len(ds) for name, ds in splits.items()}

# %%
px.bar(x=list(splits["train"].class_counts()), y=list(splits["train"].class_counts().values()),
       labels={"x": "class", "y": "training images"}, template=cv.pl.TEMPLATE_NAME)

# %% [markdown]
# ## A simulated expert panel
#
# Six experts with 34, 25, 15, 12, 6 and 5 years of experience each label up to 1,000 images; a
# common subset (200 in the paper) is labelled by all. Each label has a confidence word. Ambiguous
# cells get less confident and more often wrong labels, and experience helps.

# %%
panel = cv.data.simulate_panel(cells, n_common=min(200, len(cells)), seed=0)
panel.head()

# %% [markdown]
# The **consensus** label of an image is the majority vote (ties go to the most experienced
# expert); its confidence is the mean of the labels' confidences (High = 1, Moderate = 2/3,
# Low = 1/3, No = 0).

# %%
consensus = cv.data.consensus(panel)
consensus.head()

# %% [markdown]
# How often does each expert agree with the consensus? Expect the experienced experts to agree
# more often, and everybody to agree less on the cells with a low consensus confidence.

# %%
correctness = cv.data.expert_correctness(panel, consensus, common_only=True)
agreement = correctness.groupby(["expert", "years"], as_index=False)["correct"].mean()
px.bar(agreement, x="expert", y="correct", hover_data=["years"], range_y=[0, 1],
       labels={"correct": "agreement with consensus"}, template=cv.pl.TEMPLATE_NAME)

# %% [markdown]
# ## Save for later
#
# `write_dataset` writes a class-per-folder tree of PNGs with a manifest (what `load_folder`
# reads back); the panel table is a plain CSV.

# %%
cv.data.write_dataset(cells, OUT / "synthetic_cells", overwrite=True)
panel.to_csv(OUT / "expert_panel.csv", index=False)
sorted(p.name for p in (OUT / "synthetic_cells").iterdir())[:5]
