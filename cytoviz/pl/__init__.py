"""Plotting: every function takes precomputed results and returns a ``plotly`` figure.

Plot functions never run a model or a sampler and never call ``.show()``.
"""

from cytoviz.pl._style import COLUMN_WIDTH_PX, TEMPLATE_NAME, class_colors, save_figure, set_style
from cytoviz.pl.classification import pruning_trace, reliability_diagram, rule_curve
from cytoviz.pl.data import data_preview, real_vs_synthetic
from cytoviz.pl.evaluation import anomaly_kde, domain_shift_bars, few_shot_bars, low_data_curve
from cytoviz.pl.generation import (
    augmentation_curve,
    authenticity_scores,
    class_agreement_bars,
    generated_grid,
    prototype_comparison,
)
from cytoviz.pl.heatmaps import heatmap_panel, transition_grid
from cytoviz.pl.psychometric import (
    confidence_agreement,
    deviance_residual_plot,
    psychometric_comparison,
    psychometric_curve,
    psychometric_forest,
)

__all__ = [
    "COLUMN_WIDTH_PX",
    "TEMPLATE_NAME",
    "anomaly_kde",
    "augmentation_curve",
    "authenticity_scores",
    "class_agreement_bars",
    "class_colors",
    "confidence_agreement",
    "data_preview",
    "deviance_residual_plot",
    "domain_shift_bars",
    "few_shot_bars",
    "generated_grid",
    "heatmap_panel",
    "low_data_curve",
    "prototype_comparison",
    "pruning_trace",
    "psychometric_comparison",
    "psychometric_curve",
    "psychometric_forest",
    "real_vs_synthetic",
    "reliability_diagram",
    "rule_curve",
    "save_figure",
    "set_style",
    "transition_grid",
]
