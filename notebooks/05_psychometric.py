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
# # 05 · Psychometric curves: the model and every expert
#
# Psychophysics measures how an observer's accuracy rises with the strength of a stimulus. The
# paper borrows the idea to ask whether the model's **confidence** means what it says: bin the
# test cells by confidence, count how many in each bin are classified correctly, and fit a
# psychometric function
#
# `psi(x) = gamma + (1 - lambda - gamma) S(x; m, w)`
#
# with a guess rate `gamma = 1/10` (ten classes), a lapse rate `lambda`, a threshold `m` and a
# width `w` (psignifit 4 conventions, fitted in PyMC with psignifit's priors). The **threshold at
# 80 % correct** says how confident the model must be to be right 80 % of the time (before lapses
# and guesses); the width says how sharply accuracy rises.
#
# The same analysis runs for each (here: simulated) expert, against the consensus label, with
# either the consensus confidence or the model's confidence as the stimulus axis (Figure 2 B-E).
#
# **Runtime.** Fast mode: 20 cells, short chains (about a minute). Full mode: 600 test cells with
# 100 trials each and 2 x 1,000 draws per fit: about 30 to 40 minutes on a laptop CPU, most of it
# classification.

# %%
import os
from pathlib import Path

from IPython.display import display

import cytoviz as cv
from cytoviz.psychometric import experts, summary

FAST = cv.fast_mode()
OUT = Path(os.environ.get("CYTOVIZ_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)
cv.pl.set_style()
psy_config = cv.psychometric.PsychometricConfig(draws=200 if FAST else 1000, tune=200 if FAST else 1000,
                                                chains=1 if FAST else 2,
                                                mcse_target=None if FAST else 0.01)
compiled = cv.psychometric.CompiledModels()  # every fit below reuses the models compiled here

# %% [markdown]
# ## The model's confidence
#
# Classify a test set with the shipped model. `result.confidence` is the gap between the two best
# class scores, rescaled to [0, 1] over the data set.

# %%
model = cv.diffusion.load_default_model()
cells = cv.data.synthesize(2 if FAST else 60, config=cv.data.SynthConfig(seed=5))
config = cv.diffusion.ClassifyConfig(min_trials=5 if FAST else 20, max_trials=6 if FAST else 100)
result = cv.diffusion.classify(model, cells, config, progress=not FAST)
print(f"accuracy {result.accuracy:.2f} on {len(cells)} cells")

# %% [markdown]
# Bin the confidence (25 equal-width bins in the paper) and fit. In the figure: the points are the
# bins (size: number of cells), the line and band are the posterior curve and its 95 % interval,
# the vertical band is the threshold's interval; the insets show the posteriors of the parameters.

# %%
binned = cv.psychometric.bin_confidence(result.confidence, result.correct, n_bins=6 if FAST else 25)
model_fit = cv.psychometric.fit(binned.x, binned.k, binned.n, config=psy_config, name="model",
                                cache=compiled)
cv.pl.psychometric_curve(model_fit, "model")

# %%
summary.threshold_at(model_fit, 0.8)

# %% [markdown]
# **A second engine.** psignifit itself does not sample: it sums the posterior on a grid. The
# same posterior computed that way is an opt-in, `engine="grid"`: nothing to compile and no
# tuning, so it is quick in a fresh session, and it gives the same kind of fit object. The two
# tables below should agree to within the Monte-Carlo error that `summarize` reports
# (`mcse_lower`, `mcse_upper`).

# %%
grid_fit = cv.psychometric.fit(binned.x, binned.k, binned.n, name="model",
                               config=psy_config.replace(engine="grid"))
display(summary.summarize(model_fit, with_map=False).head(2))
summary.summarize(grid_fit, with_map=False).head(2)

# %% [markdown]
# ## Every expert
#
# Simulate a six-expert panel on the same cells (notebook 01), then bin each expert's
# correctness against the consensus label on the common cells, with 12 bins, on either axis.
# All experts are fitted in one vectorised PyMC model.

# %%
panel = cv.data.simulate_panel(cells, n_common=min(200, len(cells)), seed=0)
cv.pl.confidence_agreement(cv.data.pairwise_confidence(panel))

# %% [markdown]
# How the experts agree with each other on the common cells (the paper's supplementary
# Figure 10): the simulation is calibrated so that about 43 % of ordered expert pairs are
# High/High, as in CytoData, and "No" is rare. Each expert's accuracy against the consensus:

# %%
cv.data.panel_calibration(panel)

# %%
by_axis = {axis: experts.expert_psychometric_data(panel, result.confidence, axis=axis)
           for axis in ("consensus", "model")}
# One cache: the second axis reuses the model the first one compiled (same observers, new data).
expert_fits = {axis: cv.psychometric.fit_observers(data, psy_config, cache=compiled)
               for axis, data in by_axis.items()}
experts.correct_counts(by_axis["consensus"])

# %% [markdown]
# One expert on both axes (Figure 2 B / C): do the expert's mistakes happen where the *model* is
# unsure, or where the *other experts* are unsure?

# %%
first_expert = next(iter(by_axis["consensus"]))
cv.pl.psychometric_comparison(expert_fits, first_expert,
                              x_titles=["consensus expert confidence", "model confidence"])

# %% [markdown]
# Thresholds of every expert with their 95 % intervals (Figure 2 D / E). As in the paper, the
# threshold is the confidence at which the unscaled curve reaches 80 % correct
# (`percent_correct=(0.8,)` adds it to the summary as `"threshold_80"`). With simulated experts
# the more experienced ones reach 80 % correct at a lower consensus confidence.

# %%
summaries = {axis: summary.summarize(idata, percent_correct=(0.8,))
             for axis, idata in expert_fits.items()}
cv.pl.psychometric_forest(summaries["consensus"], "threshold_80", groups=summaries)

# %% [markdown]
# ## Does each curve fit? Deviance residuals
#
# psignifit's deviance compares each fit with the saturated model; `summary.goodness_of_fit`
# adds a posterior-predictive p-value. Per stimulus level, the signed deviance residuals show
# *where* a curve misses: beyond about +-2, or a run of the same sign, is a level the curve does
# not explain.

# %%
display(summary.goodness_of_fit(expert_fits["consensus"]))
cv.pl.deviance_residual_plot(summary.deviance_residuals(expert_fits["consensus"]))

# %% [markdown]
# ## Beyond psignifit: partial pooling
#
# Fitting every expert independently ignores that they are experts of the same kind.
# `fit_hierarchical` draws the thresholds and log widths from shared distributions learnt from
# all experts (each keeps its own lapse rate): an expert with few informative cells borrows
# strength from the others. `compare_pooling` fits both ways and ranks them by PSIS-LOO
# (higher `elpd_loo` predicts held-out levels better; `warning` flags unreliable LOO).

# %%
pooling_table, pooling_fits = cv.psychometric.compare_pooling(by_axis["consensus"], psy_config)
display(pooling_table)
pooled_summaries = {k: summary.summarize(v, with_map=False) for k, v in pooling_fits.items()}
cv.pl.psychometric_forest(pooled_summaries["independent"], "threshold", groups=pooled_summaries)

# %% [markdown]
# ## How much do the binning choices matter? `UncertaintyBinsExplorer`
#
# Choose an observer (the model or an expert), the stimulus axis, the number of bins and the
# binning scheme (equal-width or equal-count); the fit is redone (a few seconds, cached) and the
# readout gives the goodness of fit and the threshold at the chosen percent correct.
# Few bins hide the shape of the curve; many bins leave few cells per bin. A robust conclusion
# does not change much between reasonable choices.
#
# `experts.observer_cases` gathers the unbinned cases of every observer: the model's confidence
# and correctness on all cells, and for each expert the consensus confidence, the model's
# confidence and the correctness on the common cells.

# %%
observers = experts.observer_cases(panel, result.confidence, result.correct)
explorer = cv.widgets.UncertaintyBinsExplorer(observers, n_bins=8 if FAST else 25)
display(explorer.widget)

# %% [markdown]
# Save the summaries for the paper figures (notebook 09) or your own tables.

# %%
summaries["consensus"].to_csv(OUT / "expert_psychometric_summary.csv", index=False)
summary.summarize(model_fit).to_csv(OUT / "model_psychometric_summary.csv", index=False)

# %% [markdown]
# ## Calibrated class probabilities
#
# The confidence above is a rescaled gap between scores, good for ranking cells but not a
# probability. `cv.calibration` turns the classifier's normalised errors into class
# probabilities, `softmax(-scores / T)`, with a temperature `T` fitted on held-out labelled cells
# (here the first half of the cells; `benchmarks/calibration.py` fits it on the validation split
# and measures every test set). The reliability diagram compares confidence with accuracy: a
# calibrated model lies on the diagonal.

# %%
half = len(result) // 2
fit_part, check_part = result.subset(range(half)), result.subset(range(half, len(result)))
temperature = cv.calibration.fit_temperature(fit_part, fit_part.labels, fitted_on="first half")
probs = temperature.probabilities(check_part)
print(f"T = {temperature.temperature:.3g}")
display(cv.calibration.calibration_metrics(probs, check_part.labels, n_bins=5 if FAST else 10))
cv.pl.reliability_diagram({
    "T = 1": cv.calibration.reliability_curve(
        cv.calibration.TemperatureScaling().probabilities(check_part), check_part.labels,
        n_bins=5 if FAST else 10),
    "fitted T": cv.calibration.reliability_curve(probs, check_part.labels,
                                                 n_bins=5 if FAST else 10),
})
