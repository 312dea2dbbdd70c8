"""AnomalyExplorer: certainty distributions, a threshold and the flagged cells in JupyterLab."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cytoviz.anomaly import anomaly_auc, certainty_kde, roc_auc
from cytoviz.evaluation.anomaly_detection import ANOMALY_COLUMNS
from cytoviz.evaluation.tables import MODEL_LABELS
from cytoviz.pl._style import TEMPLATE_NAME
from cytoviz.pl.evaluation import anomaly_kde

if TYPE_CHECKING:
    import ipywidgets as widgets
    import plotly.graph_objects as go

    from cytoviz.data import CellDataset

__all__ = ["AnomalyExplorer"]


class AnomalyExplorer:
    """Explore an anomaly table: KDEs of normal vs abnormal certainty, a threshold, flagged cells.

    Choose the model, the held-out class, the score (the paper's ``zeta`` or, where the table
    has them, ``likelihood`` for the diffusion model and ``msp`` or ``energy`` for the CNN), the
    KDE bandwidth and a threshold on the normalised certainty; a cell is *flagged* as abnormal when its certainty lies below the threshold. The
    readout gives the true-positive rate (abnormal cells flagged) and the false-positive rate
    (normal cells flagged); the flagged cells are shown as thumbnails, least certain first.

    Parameters
    ----------
    table
        Output of :func:`cytoviz.evaluation.anomaly_scores` (or
        :func:`~cytoviz.evaluation.anomaly_table`).
    images
        The test images the ``image`` column indexes (a :class:`~cytoviz.data.CellDataset` or
        ``uint8`` ``(N, H, W, 3)``), or ``None`` for no thumbnails.
    threshold
        Initial threshold on the normalised certainty.
    bandwidth
        Initial KDE bandwidth (``None``: Scott's rule).
    max_thumbnails
        Largest number of flagged cells shown.

    Notes
    -----
    Every callback is a plain method (:meth:`set_model`, :meth:`set_held_out`, :meth:`set_score`,
    :meth:`set_bandwidth`, :meth:`set_threshold`, :meth:`rates`, :meth:`flagged`), so it can be
    driven from code and tested without a browser; :meth:`show` returns the ipywidgets box.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        images: CellDataset | np.ndarray | None = None,
        *,
        threshold: float = 0.5,
        bandwidth: float | None = None,
        max_thumbnails: int = 24,
    ) -> None:
        import plotly.graph_objects as go

        missing = [c for c in ANOMALY_COLUMNS if c not in table and c != "score"]
        if missing:
            raise ValueError(
                f"the table lacks column(s) {missing}; pass the output of "
                "cytoviz.evaluation.anomaly_scores"
            )
        if table.empty:
            raise ValueError("the anomaly table is empty")
        self.table = table if "score" in table else table.assign(score="zeta")
        arr = getattr(images, "images", images)
        self.images = None if arr is None else np.asarray(arr)
        if self.images is not None:
            if self.images.ndim != 4 or self.images.shape[-1] != 3:
                raise ValueError(f"images must have shape (N, H, W, 3), got {self.images.shape}")
            top = int(table["image"].max())
            if top >= len(self.images):
                raise ValueError(
                    f"the table refers to image {top} but only {len(self.images)} images were "
                    "given; pass the test images the table was computed on"
                )
        if max_thumbnails < 1:
            raise ValueError(f"max_thumbnails must be >= 1, got {max_thumbnails}")
        self.max_thumbnails = int(max_thumbnails)
        self.models = list(dict.fromkeys(table["model"]))
        self.held_out_classes = list(dict.fromkeys(table["held_out"]))
        self.model = self.models[0]
        self.held_out = self.held_out_classes[0]
        self.score = "zeta" if "zeta" in self.scores else self.scores[0]
        self.bandwidth = bandwidth
        self.threshold = float(threshold)
        self.figure = go.FigureWidget(self._kde_figure())
        self.thumbnails = go.FigureWidget(self._thumbnail_figure())
        self._controls: dict[str, widgets.Widget] | None = None

    # ------------------------------------------------------------------ data
    @property
    def scores(self) -> list[str]:
        """The scores the table holds for the selected model."""
        t = self.table
        return list(dict.fromkeys(t.loc[t["model"] == self.model, "score"]))

    @property
    def current(self) -> pd.DataFrame:
        """Rows of the selected model, held-out class and score."""
        t = self.table
        return t[(t["model"] == self.model) & (t["held_out"] == self.held_out)
                 & (t["score"] == self.score)]

    def flagged(self) -> pd.DataFrame:
        """Rows flagged as abnormal (certainty below the threshold), least certain first."""
        cur = self.current
        return cur[cur["certainty_norm"] < self.threshold].sort_values("certainty_norm")

    def rates(self) -> dict[str, float]:
        """``tpr`` (abnormal flagged), ``fpr`` (normal flagged), counts and the threshold."""
        cur = self.current
        ab = cur["is_abnormal"].to_numpy(bool)
        below = cur["certainty_norm"].to_numpy(float) < self.threshold
        n_ab, n_no = int(ab.sum()), int((~ab).sum())
        return {
            "threshold": self.threshold,
            "tpr": float(below[ab].mean()) if n_ab else float("nan"),
            "fpr": float(below[~ab].mean()) if n_no else float("nan"),
            "n_flagged": int(below.sum()),
            "n_abnormal": n_ab,
            "n_normal": n_no,
        }

    def readout(self) -> str:
        """HTML readout of the rates and the AUC of the current panel."""
        r = self.rates()
        cur = self.current
        ab = cur["is_abnormal"].to_numpy(bool)
        scores = cur["certainty"].to_numpy(float)
        # the point AUC only: the bootstrap interval is drawn in the figure (anomaly_auc)
        auc = (roc_auc(scores[~ab], scores[ab]) if r["n_abnormal"] and r["n_normal"]
               else float("nan"))
        return (
            f"<b>{MODEL_LABELS.get(self.model, self.model)}</b>, {self.held_out} held out, "
            f"score {self.score}: "
            f"threshold {r['threshold']:.2f}; <b>TPR {r['tpr']:.3f}</b> (abnormal flagged), "
            f"<b>FPR {r['fpr']:.3f}</b> (normal flagged); {r['n_flagged']} flagged of "
            f"{r['n_abnormal'] + r['n_normal']}; AUC {auc:.3f}"
        )

    # ------------------------------------------------------------------ figures
    def _kde_figure(self) -> go.Figure:
        cur = self.current
        fig = anomaly_kde(certainty_kde(cur, bandwidth=self.bandwidth), anomaly_auc(cur),
                          models=[self.model], held_out=[self.held_out], score=self.score,
                          title="")
        fig.add_vline(x=self.threshold, line=dict(color="#222", dash="dash", width=1))
        fig.update_layout(width=520, height=320)
        return fig

    def _montage(self) -> np.ndarray:
        """Flagged cells tiled into one image (a blank tile when none is flagged)."""
        if self.images is None:
            return np.full((8, 8, 3), 255, dtype=np.uint8)
        idx = self.flagged()["image"].to_numpy(int)[: self.max_thumbnails]
        h, w = self.images.shape[1:3]
        if idx.size == 0:
            return np.full((h, w, 3), 255, dtype=np.uint8)
        cols = min(8, idx.size)
        rows = int(np.ceil(idx.size / cols))
        pad = 2
        out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), 255, dtype=np.uint8)
        for k, i in enumerate(idx):
            r, c = divmod(k, cols)
            out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = self.images[i]
        return out

    def _thumbnail_figure(self) -> go.Figure:
        import plotly.graph_objects as go

        fig = go.Figure(go.Image(z=self._montage(), hoverinfo="skip"))
        fig.update_layout(template=TEMPLATE_NAME, width=520, height=260,
                          margin=dict(l=5, r=5, t=30, b=5), title=self._thumb_title())
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return fig

    def _thumb_title(self) -> str:
        f = self.flagged()
        shown = min(len(f), self.max_thumbnails)
        n_ab = int(f["is_abnormal"].sum())
        return f"flagged cells: {len(f)} ({n_ab} abnormal); showing {shown}"

    def _refresh(self, kde: bool = True) -> None:
        if kde:
            fresh = self._kde_figure()
            with self.figure.batch_update():
                for old, new in zip(self.figure.data, fresh.data, strict=False):
                    old.x, old.y = new.x, new.y
                    old.meta = new.meta
                self.figure.layout.annotations = fresh.layout.annotations
                self.figure.layout.shapes = fresh.layout.shapes
        else:
            with self.figure.batch_update():
                self.figure.layout.shapes = self._kde_figure().layout.shapes
        with self.thumbnails.batch_update():
            self.thumbnails.data[0].z = self._montage()
            self.thumbnails.layout.title.text = self._thumb_title()
        if self._controls is not None:
            self._controls["readout"].value = self.readout()

    # ------------------------------------------------------------------ callbacks
    def set_model(self, model: str) -> None:
        """Show another model."""
        if model not in self.models:
            raise ValueError(f"unknown model {model!r}; the table has {self.models}")
        self.model = model
        if self.score not in self.scores:
            self.score = "zeta" if "zeta" in self.scores else self.scores[0]
        if self._controls is not None:
            self._controls["score"].options = self.scores
            self._controls["score"].value = self.score
        self._refresh()

    def set_score(self, score: str) -> None:
        """Show another score of the selected model."""
        if score not in self.scores:
            raise ValueError(f"unknown score {score!r} for {self.model}; the table has "
                             f"{self.scores}")
        self.score = score
        self._refresh()

    def set_held_out(self, held_out: str) -> None:
        """Show another held-out class."""
        if held_out not in self.held_out_classes:
            raise ValueError(f"unknown held-out class {held_out!r}; the table has {self.held_out_classes}")
        self.held_out = held_out
        self._refresh()

    def set_bandwidth(self, bandwidth: float | None) -> None:
        """Change the KDE bandwidth (``None``: Scott's rule)."""
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth must be positive or None, got {bandwidth}")
        self.bandwidth = None if bandwidth is None else float(bandwidth)
        self._refresh()

    def set_threshold(self, threshold: float) -> None:
        """Move the threshold on the normalised certainty (flag cells below it)."""
        self.threshold = float(threshold)
        self._refresh(kde=False)

    # ------------------------------------------------------------------ layout
    def controls(self) -> dict[str, widgets.Widget]:
        """The ipywidgets controls, wired to the callbacks."""
        import ipywidgets as widgets

        if self._controls is not None:
            return self._controls
        model = widgets.Dropdown(options=[(MODEL_LABELS.get(m, m), m) for m in self.models],
                                 value=self.model, description="model")
        held = widgets.Dropdown(options=self.held_out_classes, value=self.held_out,
                                description="held out")
        score = widgets.Dropdown(options=self.scores, value=self.score, description="score")
        bw = widgets.FloatSlider(value=self.bandwidth or 0.05, min=0.005, max=0.3, step=0.005,
                                 description="bandwidth", readout_format=".3f")
        thr = widgets.FloatSlider(value=self.threshold, min=-0.2, max=1.0, step=0.01,
                                  description="threshold", readout_format=".2f")
        readout = widgets.HTML(value=self.readout())

        def on(fn: Any) -> Any:
            return lambda change: fn(change["new"])

        model.observe(on(self.set_model), names="value")
        held.observe(on(self.set_held_out), names="value")
        score.observe(lambda change: change["new"] != self.score and self.set_score(change["new"]),
                      names="value")
        bw.observe(on(self.set_bandwidth), names="value")
        thr.observe(on(self.set_threshold), names="value")
        self._controls = {"model": model, "held_out": held, "bandwidth": bw, "threshold": thr,
                          "score": score, "readout": readout}
        return self._controls

    def show(self) -> widgets.Widget:
        """The assembled widget (controls, KDE, readout, thumbnails)."""
        import ipywidgets as widgets

        c = self.controls()
        return widgets.VBox([
            widgets.HBox([c["model"], c["held_out"], c["score"]]),
            widgets.HBox([c["bandwidth"], c["threshold"]]),
            self.figure, c["readout"], self.thumbnails,
        ])

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a notebook
        from IPython.display import display

        display(self.show())
