"""The other figure families pass the structural layout checks too (issue 21): the evaluation
figures drawn from the stored tables, the generation figures, the image grids, the heatmaps and
the pruning trace. See ``tests/_layout.py`` for what is checked."""

from __future__ import annotations

import numpy as np
import pytest
from _layout import layout_problems

from cytoviz import pl
from cytoviz.data import CellDataset
from cytoviz.diffusion import ClassifyConfig, DiffusionModel, classify
from cytoviz.evaluation import anomaly_auc, certainty_kde, stored_results
from cytoviz.heatmaps import counterfactual_heatmaps

CLASSES = ("basophil", "eosinophil", "neutrophil")


def _stored(name: str):
    try:
        return stored_results(name)
    except FileNotFoundError:
        pytest.skip(f"no stored {name} table in cytoviz/_shipped/results/")


@pytest.mark.parametrize("name, draw", [
    ("anomaly", lambda t: pl.anomaly_kde(certainty_kde(t), anomaly_auc(t))),
    ("domain_shift", pl.domain_shift_bars),
    ("low_data", pl.low_data_curve),
    ("few_shot", pl.few_shot_bars),
    ("augmentation", pl.augmentation_curve),
    ("generation_agreement", pl.class_agreement_bars),
    ("prototypes", pl.prototype_comparison),
])
def test_evaluation_and_generation_figures(name, draw):
    assert layout_problems(draw(_stored(name))) == []


@pytest.fixture(scope="module")
def classified(tiny_model_config):
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0).eval()
    images = np.random.default_rng(0).integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8)
    ds = CellDataset(images, np.array([0, 1, 2, 0, 1, 2]), CLASSES)
    cfg = ClassifyConfig(min_trials=4, max_trials=8, pruning=False, batch_size=16, seed=0)
    return model, ds, classify(model, ds, config=cfg, progress=False)


def test_image_grids(classified):
    _, ds, _ = classified
    assert layout_problems(pl.data_preview(ds, n_per_class=2, title="preview")) == []
    assert layout_problems(pl.real_vs_synthetic(None, ds, n_per_class=2)) == []
    assert layout_problems(pl.real_vs_synthetic(ds, ds, n_per_class=2)) == []
    assert layout_problems(pl.generated_grid(ds, 2, title="generated")) == []


def test_heatmap_figures_and_pruning_trace(classified):
    model, ds, result = classified
    h = counterfactual_heatmaps(result, model, ds, indices=[0, 1, 2])
    assert layout_problems(pl.heatmap_panel(h, 0)) == []
    assert layout_problems(pl.transition_grid(h, [0, 1, 2])) == []
    assert layout_problems(pl.pruning_trace(result, 0)) == []


def test_authenticity_scores(classified):
    from cytoviz.authenticity import build_quiz, score_answers, simulate_participants

    _, ds, _ = classified
    quiz = build_quiz(ds, ds, n_each=3, seed=0)
    scores = score_answers(simulate_participants(quiz, 3, seed=0), quiz)
    assert layout_problems(pl.authenticity_scores(scores)) == []
