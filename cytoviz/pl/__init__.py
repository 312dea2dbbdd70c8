"""Plotting: every function takes precomputed results and returns a ``plotly`` figure.

Plot functions never run a model or a sampler and never call ``.show()``.
"""

from cytoviz.pl._style import COLUMN_WIDTH_PX, TEMPLATE_NAME, class_colors, save_figure, set_style

__all__ = ["COLUMN_WIDTH_PX", "TEMPLATE_NAME", "class_colors", "save_figure", "set_style"]
