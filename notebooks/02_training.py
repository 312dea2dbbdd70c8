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
# # 02 · Training a class-conditional latent diffusion model
#
# The classifier of this package *is* a generative model. Training teaches it to predict the
# noise that was added to an image, **given the class**: a lymphocyte's noise is easier to predict
# if you know the image shows a lymphocyte. Later (notebook 03) the class that makes the noise most
# predictable is the prediction.
#
# Two stages, as in `cv.diffusion.train`:
#
# 1. a small **VAE** learns to compress a 64 x 64 image into a 16 x 16 x 4 latent (the paper reuses
#    the frozen VAE of Stable Diffusion 1.5 instead),
# 2. the **UNet** learns to denoise latents, with the class written as a one-hot vector into its
#    conditioning tokens. Recipe as in the paper, scaled down: AdamW, warm-up, EMA, min-SNR loss
#    weighting, noise offset, mixup of the class labels, and 10 % of the steps without a class
#    (needed later for classifier-free guidance when generating).
#
# **Runtime.** Fast mode trains for a handful of steps (a model that has learnt nothing yet: the
# point is the mechanics). Full mode uses the `tiny` recipe (`TrainConfig.tiny()`: 300 VAE +
# 2,500 UNet steps), roughly 20 to 60 minutes on a laptop CPU. The shipped default model was
# trained with this recipe for 6,000 UNet steps (`cytoviz train --preset tiny`; its
# `train_summary.json` and `history.json` are in `cytoviz/_shipped/default_model`).

# %%
import json
import os
from pathlib import Path

import pandas as pd
import plotly.express as px

import cytoviz as cv

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()

# %% [markdown]
# ## Data
#
# The synthetic benchmark: an imbalanced training set and a balanced validation set.

# %%
splits = cv.data.default_splits(scale=0.02 if FAST else 1.0)
train_set, val_set = splits["train"], splits["val"]
train_set.class_counts()

# %% [markdown]
# ## A new model with random weights
#
# `ModelConfig.tiny()` is the CPU architecture (about 2.6 M parameters). Its config is saved with
# the weights, so `DiffusionModel.from_pretrained(folder)` rebuilds exactly this model.

# %%
model = cv.diffusion.DiffusionModel.build(train_set.class_names, cv.diffusion.ModelConfig.tiny())
print(model.config)

# %% [markdown]
# ## Train
#
# The training loop checkpoints regularly and resumes from the last checkpoint when run again
# (`resume=True`), so a long run can be interrupted. `history.json` in the run folder records the
# losses.

# %%
if FAST:
    train_config = cv.diffusion.TrainConfig.tiny(
        steps=6, vae_steps=4, batch_size=4, vae_batch_size=4, warmup_steps=2, checkpoint_every=100,
        val_every=0, val_accuracy_images=0, log_every=1)
else:
    train_config = cv.diffusion.TrainConfig.tiny()
run_dir = OUT / "train_run"
model = cv.diffusion.train(model, train_set, val_set, config=train_config, out_dir=run_dir,
                           resume=not FAST, progress=not FAST)

# %% [markdown]
# ## The loss curves
#
# First the VAE's reconstruction loss, then the UNet's noise-prediction loss (and, in full mode,
# the validation loss and a quick validation accuracy). The UNet loss falls quickly and then
# slowly: most of the classification signal is learnt in the slow part.

# %%
history = pd.DataFrame(json.loads((run_dir / "history.json").read_text())["history"])
px.line(history.dropna(subset=["loss"]), x="step", y="loss", color="kind", log_y=True,
        template=cv.pl.TEMPLATE_NAME, title="training loss")

# %% [markdown]
# ## Use it
#
# The trained model is saved in the run folder; classify a few validation cells with it. In fast
# mode expect chance-level accuracy (about 10 %): the model has seen a few dozen images. Compare
# with the shipped model, trained with the full recipe.

# %%
few = val_set.subset(list(range(0, len(val_set), max(1, len(val_set) // 10))))
quick = cv.diffusion.ClassifyConfig(min_trials=5, max_trials=6 if FAST else 100)
mine = cv.diffusion.classify(model, few, quick, progress=False)
shipped = cv.diffusion.classify(cv.diffusion.load_default_model(), few, quick, progress=False)
pd.DataFrame({"model": ["just trained", "shipped"], "accuracy": [mine.accuracy, shipped.accuracy]})
