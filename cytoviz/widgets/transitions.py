"""TransitionExplorer: the class-transition grid of counterfactual heatmaps in JupyterLab."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from cytoviz import pl
from cytoviz.heatmaps import HeatmapConfig, counterfactual_heatmaps, grid_sources

if TYPE_CHECKING:
    import ipywidgets as widgets

    from cytoviz.data import CellDataset
    from cytoviz.diffusion import ClassificationResult, DiffusionModel
    from cytoviz.heatmaps import CounterfactualHeatmaps

__all__ = ["TransitionExplorer"]

_FILTERS = ("all", "misclassified", "low confidence")


class TransitionExplorer:
    """Explore the K x K transition grid of one classification result.

    Choose the source image of each class column (by class, by index, or by browsing the
    misclassified or least confident cells), click a grid cell to enlarge source, heatmap and
    overlay side by side, and move the gain and overlay-threshold sliders. Changing the gain
    re-decodes with the VAE; nothing runs the UNet again.

    Parameters
    ----------
    result
        A classification result with error maps (``ClassifyConfig(keep_error_maps=True)``).
    images
        The classified images (same order as ``result``).
    model
        The model that produced ``result`` (its VAE decodes the heatmaps).
    config
        Initial gain and threshold.
    low_confidence
        Confidence below which a cell counts as "low confidence".

    Notes
    -----
    Every callback is a plain method (:meth:`set_source`, :meth:`select_cell`,
    :meth:`set_gain`, :meth:`set_threshold`, :meth:`candidates`) so it can be driven from code
    and tested without a browser; :meth:`show` returns the assembled ipywidgets box.

    The heatmap of the transition to the source image's *predicted* class is zero by
    construction (``delta_c_hat = 0``), so whenever a source is chosen the enlarged view opens
    on :meth:`default_target`, the image's runner-up class.
    """

    def __init__(
        self,
        result: ClassificationResult,
        images: CellDataset | np.ndarray,
        model: DiffusionModel,
        *,
        config: HeatmapConfig | None = None,
        low_confidence: float = 0.2,
    ) -> None:
        self.result = result
        self.images = images
        self.model = model
        self.config = config or HeatmapConfig()
        self.low_confidence = float(low_confidence)
        labels = getattr(images, "labels", None)
        self.labels = np.asarray(labels) if labels is not None else result.labels
        if self.labels is None:
            self.labels = result.prediction
        self.sources = grid_sources(result, labels=self.labels)
        missing = [result.class_names[c] for c in np.flatnonzero(self.sources < 0)]
        if missing:
            raise ValueError(
                f"no classified image of class(es) {missing}; the grid needs one source per class"
            )
        self.selected: tuple[int, int] = (0, self.default_target(0))
        self.heatmaps: CounterfactualHeatmaps = self._decode()
        self.grid = go.FigureWidget(pl.transition_grid(self.heatmaps, list(range(result.n_classes))))
        self.detail = go.FigureWidget(self._detail_figure())
        self._cells = [(j, i) for j in range(result.n_classes) for i in range(result.n_classes)]
        for trace, cell in zip(self.grid.data, self._cells, strict=True):
            trace.on_click(self._make_click(cell))
        self._controls: dict[str, widgets.Widget] | None = None

    # ------------------------------------------------------------------ computation
    def _decode(self) -> CounterfactualHeatmaps:
        return counterfactual_heatmaps(self.result, self.model, self.images,
                                       indices=self.sources, config=self.config)

    def _detail_figure(self):
        j, i = self.selected
        target = i if i != j else self.default_target(j)
        return pl.heatmap_panel(self.heatmaps, j, [target], threshold_k=self.config.threshold_k)

    def _refresh(self, grid: bool = True) -> None:
        if grid:
            new = pl.transition_grid(self.heatmaps, list(range(self.result.n_classes)))
            with self.grid.batch_update():
                for old, fresh in zip(self.grid.data, new.data, strict=True):
                    old.z = fresh.z
                    old.name = fresh.name
        fresh = self._detail_figure()
        with self.detail.batch_update():
            for old, new_t in zip(self.detail.data, fresh.data, strict=True):
                old.z = new_t.z
            self.detail.layout.annotations = fresh.layout.annotations
        if self._controls is not None:
            self._controls["readout"].value = self.readout()

    # ------------------------------------------------------------------ callbacks
    def default_target(self, class_index: int) -> int:
        """The most informative target class for the source of column ``class_index``.

        The runner-up class of the source image: the lowest score (mean error) among the
        classes other than the prediction, whose heatmap is zero by construction. With a single
        class this is the prediction itself.
        """
        idx = int(self.sources[class_index])
        pred = int(self.result.prediction[idx])
        scores = np.where(np.isnan(self.result.scores[idx]), np.inf, self.result.scores[idx])
        scores[pred] = np.inf
        if self.result.n_classes == 1:
            return pred
        return int(np.argmin(scores))

    def candidates(self, class_index: int, which: str = "all") -> list[int]:
        """Indices of result images of true class ``class_index`` matching a filter.

        ``which`` is ``"all"``, ``"misclassified"`` or ``"low confidence"``.
        """
        if which not in _FILTERS:
            raise ValueError(f"which must be one of {_FILTERS}, got {which!r}")
        idx = np.flatnonzero(self.labels == class_index)
        if which == "misclassified":
            idx = idx[self.result.prediction[idx] != class_index]
        elif which == "low confidence":
            idx = idx[self.result.confidence[idx] < self.low_confidence]
        return [int(v) for v in idx]

    def set_source(self, class_index: int, image_index: int) -> None:
        """Use result image ``image_index`` as the source of the column of ``class_index``.

        Selects the column and, as target, the image's :meth:`default_target`.
        """
        if not 0 <= class_index < self.result.n_classes:
            raise IndexError(f"class index {class_index} out of range")
        if not 0 <= image_index < len(self.result):
            raise IndexError(f"image index {image_index} out of range for {len(self.result)} images")
        self.sources = self.sources.copy()
        self.sources[class_index] = image_index
        self.heatmaps = self._decode()
        self.selected = (class_index, self.default_target(class_index))
        self._refresh()

    def select_cell(self, source_class: int, target_class: int) -> None:
        """Enlarge the grid cell of column ``source_class`` and row ``target_class``."""
        k = self.result.n_classes
        if not (0 <= source_class < k and 0 <= target_class < k):
            raise IndexError(f"cell ({source_class}, {target_class}) out of range for {k} classes")
        self.selected = (source_class, target_class)
        self._refresh(grid=False)

    def set_gain(self, gain: float) -> None:
        """Decode again with another gain (VAE only)."""
        self.config = self.config.replace(gain=float(gain))
        self.heatmaps = self._decode()
        self._refresh()

    def set_threshold(self, k: float) -> None:
        """Change the overlay threshold (mean +/- k std of the background)."""
        self.config = self.config.replace(threshold_k=float(k))
        # The threshold only changes the overlay: no decode needed.
        self.heatmaps = dataclasses.replace(self.heatmaps, config=self.config)
        self._refresh(grid=False)

    def readout(self) -> str:
        """HTML readout: prediction, confidence and per-class scores of the selected source."""
        j, _ = self.selected
        idx = int(self.sources[j])
        names = self.result.class_names
        scores = self.result.scores[idx]
        pred = int(self.result.prediction[idx])
        true = int(self.labels[idx])
        rows = "".join(
            f"<tr><td>{n}</td><td style='text-align:right'>{s:.3f}</td></tr>"
            for n, s in sorted(zip(names, scores, strict=True), key=lambda t: np.nan_to_num(t[1], nan=np.inf))
        )
        return (
            f"<b>image {idx}</b>: true <b>{names[true]}</b>, predicted <b>{names[pred]}</b>, "
            f"confidence {self.result.confidence[idx]:.2f}, {int(self.result.n_trials[idx])} trials"
            f"<table><tr><th>class</th><th>score (lower = better)</th></tr>{rows}</table>"
        )

    def _make_click(self, cell: tuple[int, int]):
        def _on_click(trace, points, state) -> None:
            if points.point_inds:
                self.select_cell(*cell)

        return _on_click

    # ------------------------------------------------------------------ layout
    def controls(self) -> dict[str, widgets.Widget]:
        """The ipywidgets controls, wired to the callbacks."""
        import ipywidgets as widgets

        if self._controls is not None:
            return self._controls
        names = list(self.result.class_names)
        cls = widgets.Dropdown(options=[(n, c) for c, n in enumerate(names)], value=0,
                               description="column")
        which = widgets.Dropdown(options=list(_FILTERS), value="all", description="browse")
        pick = widgets.Dropdown(options=self.candidates(0), value=int(self.sources[0]),
                                description="image")
        gain = widgets.FloatLogSlider(value=self.config.gain, base=10, min=0, max=3, step=0.05,
                                      description="gain")
        thr = widgets.FloatSlider(value=self.config.threshold_k, min=0, max=10, step=0.25,
                                  description="threshold k")
        readout = widgets.HTML(self.readout())

        def _update_pick(_=None) -> None:
            opts = self.candidates(cls.value, which.value)
            pick.options = opts
            if opts:
                pick.value = int(self.sources[cls.value]) if int(self.sources[cls.value]) in opts else opts[0]

        cls.observe(_update_pick, "value")
        which.observe(_update_pick, "value")
        pick.observe(lambda ch: ch["new"] is not None and self.set_source(cls.value, ch["new"]), "value")
        gain.observe(lambda ch: self.set_gain(ch["new"]), "value")
        thr.observe(lambda ch: self.set_threshold(ch["new"]), "value")
        self._controls = dict(column=cls, browse=which, image=pick, gain=gain, threshold=thr,
                              readout=readout)
        return self._controls

    def show(self) -> widgets.Widget:
        """The assembled widget (controls, grid, enlarged cell, readout)."""
        import ipywidgets as widgets

        c = self.controls()
        left = widgets.VBox([widgets.HBox([c["column"], c["browse"], c["image"]]),
                             widgets.HBox([c["gain"], c["threshold"]]), self.grid])
        return widgets.HBox([left, widgets.VBox([self.detail, c["readout"]])])

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook display hook
        from IPython.display import display

        display(self.show())
