"""ipywidgets explorers for JupyterLab.

Widgets are thin (STYLE.md principle 3): they wire controls to :mod:`cytoviz.pl` functions on
existing results and update a ``plotly`` ``FigureWidget``; every callback is a plain method that
tests call without a browser. Imported lazily (ipywidgets is only loaded when a widget is used).
"""

from __future__ import annotations

import importlib
from typing import Any

# widget name -> module that defines it
_WIDGETS: dict[str, str] = {
    "UncertaintyBinsExplorer": "cytoviz.widgets.uncertainty",
    "TransitionExplorer": "cytoviz.widgets.transitions",
    "AnomalyExplorer": "cytoviz.widgets.anomaly",
    "AuthenticityQuiz": "cytoviz.widgets.quiz",
}

__all__ = sorted(_WIDGETS)


def __getattr__(name: str) -> Any:
    if name in _WIDGETS:
        return getattr(importlib.import_module(_WIDGETS[name]), name)
    raise AttributeError(f"module 'cytoviz.widgets' has no attribute {name!r}")
