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
# # 08 · Generating cells, and a real-or-synthetic quiz
#
# Because the classifier is a generative model, it can also **draw** cells of any class: start
# from pure noise and denoise step by step, conditioned on the class. Classifier-free guidance
# (scale 5 in the paper) pushes the samples towards their class: at each step the model's
# prediction with the class is compared with its prediction without a class, and the difference
# is amplified.
#
# The paper's **authenticity test**: ten haematologists saw 288 images, half real and half
# generated, and had to say which were which. They scored 52.3 % (chance: 50 %). cytoviz ships the
# whole kit: build a randomised quiz, let people take it in a widget (answers saved after every
# click), and score it with exact confidence intervals.
#
# **Runtime.** Fast mode: one image per class with 5 denoising steps (blurry blobs; seconds).
# Full mode: 15 images per class with the paper's 50 steps and guidance 5: about 5 minutes on a
# laptop CPU.

# %%
import os
from pathlib import Path

import cytoviz as cv

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()

# %% [markdown]
# ## Generate
#
# Generated cells on the left of each row, real ones for comparison on the right. Look for the
# class-typical features (nucleus shape, granules) and for tell-tale artefacts. The shipped
# model sees only the centre of each image (`model.config.input_crop`), so it generates that
# centre; `model.crop_input` shows the real cells the same way.

# %%
model = cv.diffusion.load_default_model()
N_PER_CLASS = 1 if FAST else 15
gen_config = cv.diffusion.GenerateConfig(num_inference_steps=5 if FAST else 50, guidance_scale=5.0)
generated = cv.diffusion.generate(model, "all", N_PER_CLASS, config=gen_config, progress=not FAST)
real = model.crop_input(cv.data.synthesize(N_PER_CLASS, config=cv.data.SynthConfig(seed=8)))
cv.pl.generated_grid(generated, n_per_class=min(N_PER_CLASS, 6), real=real)

# %% [markdown]
# ## Do the generated cells look like their class?
#
# Classify the generated images with the diffusion classifier and count how often it agrees with
# the class they were generated for (paper: 98.6 %).

# %%
agree_config = cv.diffusion.ClassifyConfig(min_trials=5, max_trials=6 if FAST else 100)
agreement = cv.authenticity.class_agreement(generated, diffusion=(model, agree_config), progress=not FAST)
cv.pl.class_agreement_bars(agreement)

# %% [markdown]
# ## The quiz
#
# `build_quiz` shuffles equal numbers of real and generated images (144 each in the paper) and
# keeps the answer key apart. Save it to run the quiz with other people later.

# %%
quiz = cv.authenticity.build_quiz(real, generated, n_each=len(generated), seed=0)
quiz.save(OUT / "quiz")
len(quiz.key)

# %% [markdown]
# ### Take it yourself
#
# Real or synthetic? Optionally name the class too. Every answer is appended to a CSV, so a
# session can be interrupted and resumed; several participants can share one file.

# %%
cv.widgets.AuthenticityQuiz(quiz, "you", answers_path=OUT / "quiz_answers.csv").show()

# %% [markdown]
# ### Ten simulated participants
#
# To see what the analysis looks like, simulate ten participants who cannot tell real from
# generated (`skill=0`, like the paper's haematologists). Accuracy per participant and pooled,
# with 95 % intervals: an interval that covers 50 % means "indistinguishable at this sample size".
# In fast mode the quiz is tiny and the intervals are wide.

# %%
answers = cv.authenticity.simulate_participants(quiz, n=10, skill=0.0, seed=0)
scores = cv.authenticity.score_answers(answers, quiz)
scores.round(3)

# %%
cv.pl.authenticity_scores(scores)

# %% [markdown]
# To score real participants, read their answers file with `cv.authenticity.load_answers(...)`
# and pass it to `score_answers` in the same way.
