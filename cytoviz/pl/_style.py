"""Publication style and figure export (private; re-exported by :mod:`cytoviz.pl`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from cytoviz._io import atomic_path
from cytoviz.classes import CANONICAL_CLASSES

__all__ = ["COLUMN_WIDTH_PX", "TEMPLATE_NAME", "class_colors", "save_figure", "set_style"]

TEMPLATE_NAME = "cytoviz"
#: Figure widths in plotly layout pixels for one and two journal columns (89 mm and 183 mm at
#: 100 px per inch); PNGs are written at ``scale=3`` (300 dpi).
COLUMN_WIDTH_PX: dict[str, int] = {"single": 350, "double": 720}
_FONT = "Arial, Helvetica, 'DejaVu Sans', sans-serif"

#: One colour per canonical class (colour-blind-safe, Okabe-Ito plus two).
_CLASS_COLORS = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
    "#56B4E9", "#F0E442", "#000000", "#999999", "#882255",
)


def class_colors(class_names: Iterable[str]) -> dict[str, str]:
    """A fixed colour for each class name, stable across figures.

    Parameters
    ----------
    class_names
        The classes to colour. A canonical class (:data:`cytoviz.classes.CANONICAL_CLASSES`)
        always gets the same colour; any other name gets the colour of its position.

    Returns
    -------
    dict
        Class name -> hex colour.
    """
    out = {}
    for i, name in enumerate(class_names):
        j = CANONICAL_CLASSES.index(name) if name in CANONICAL_CLASSES else i
        out[name] = _CLASS_COLORS[j % len(_CLASS_COLORS)]
    return out


def _template() -> go.layout.Template:
    t = go.layout.Template(pio.templates["simple_white"])
    t.layout.font = dict(family=_FONT, size=10, color="#222")
    t.layout.title = dict(font=dict(size=11), x=0.02, xanchor="left")
    t.layout.margin = dict(l=50, r=15, t=35, b=45)
    t.layout.legend = dict(font=dict(size=9), bgcolor="rgba(255,255,255,0)")
    t.layout.colorway = list(_CLASS_COLORS)
    for axis in ("xaxis", "yaxis"):
        t.layout[axis].update(ticks="outside", ticklen=3, tickwidth=0.8, linewidth=0.8,
                              title=dict(font=dict(size=10)), tickfont=dict(size=9))
    return t


def set_style() -> None:
    """Register the ``cytoviz`` plotly template (all cytoviz figures use it explicitly)."""
    pio.templates[TEMPLATE_NAME] = _template()


set_style()


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


#: Seconds one static export may take before the browser behind it is presumed hung.
EXPORT_TIMEOUT_ENV = "CYTOVIZ_EXPORT_TIMEOUT"


def _browser_descendants() -> set[int]:
    """PIDs of Chromium processes started (directly or not) by this process (Linux /proc)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                names[int(entry)] = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    me, found = os.getpid(), set()
    for pid in parents:
        p, seen = pid, 0
        while p in parents and p != me and p > 1 and seen < 64:
            p, seen = parents[p], seen + 1
        if p == me and pid != me and "chrom" in names.get(pid, ""):
            found.add(pid)
    return found


def _write_static(fig: go.Figure, tmp: Path, fmt: str, width: int, height: int,
                  scale: float, out: Path) -> None:
    """``fig.write_image`` with a watchdog: kaleido can wait forever for a page of its headless
    browser that never reports ready. After ``CYTOVIZ_EXPORT_TIMEOUT`` seconds (default 120) the
    browser processes this call started are killed, which makes the call fail, and the export is
    tried once more."""
    import signal
    import threading

    timeout = float(os.environ.get(EXPORT_TIMEOUT_ENV, "120"))
    for attempt in (1, 2):
        done, errors = threading.Event(), list[BaseException]()
        before = _browser_descendants()

        def run(done: threading.Event = done, errors: list[BaseException] = errors) -> None:
            try:
                fig.write_image(tmp, format=fmt, width=width, height=height, scale=scale)
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, daemon=True, name="cytoviz-export").start()
        if done.wait(timeout):
            if errors:
                raise errors[0]
            return
        for pid in _browser_descendants() - before:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not done.wait(60):  # the hung call did not give up: do not write twice at once
            break
        if attempt == 1:
            print(f"cytoviz: the {fmt.upper()} export of {out} hung for {timeout:.0f} s; "
                  "its browser was stopped, trying again")
    raise RuntimeError(
        f"the {fmt.upper()} export of {out} hung (twice {timeout:.0f} s): kaleido's headless "
        f"Chromium did not answer. Try again, raise {EXPORT_TIMEOUT_ENV}, or export HTML only"
    )


def save_figure(
    fig: go.Figure,
    path: str | os.PathLike[str],
    *,
    formats: Iterable[str] = ("png", "svg", "pdf"),
    width: int | str | None = None,
    height: int | None = None,
    scale: float = 3.0,
) -> list[Path]:
    """Export a figure to PNG, SVG and/or PDF (and HTML), each written atomically.

    Parameters
    ----------
    fig
        The figure.
    path
        Destination without suffix (a suffix, if given, is replaced for each format).
    formats
        Any of ``"png"``, ``"svg"``, ``"pdf"``, ``"html"``.
    width
        Width in layout pixels, or ``"single"`` / ``"double"`` for one or two journal columns;
        defaults to the figure's own width.
    height
        Height in layout pixels; defaults to the figure's own height.
    scale
        Pixel scale for PNG (3 gives about 300 dpi at the column widths).

    Returns
    -------
    list of Path
        The files written.

    Notes
    -----
    Static export uses kaleido, which drives a local Chromium (Debian's ``chromium``;
    ``scripts/setup.sh`` installs it). Nothing is downloaded.
    """
    path = Path(path)
    if isinstance(width, str):
        if width not in COLUMN_WIDTH_PX:
            raise ValueError(f"width must be a number or one of {list(COLUMN_WIDTH_PX)}, got {width!r}")
        width = COLUMN_WIDTH_PX[width]
    own_w, own_h = fig.layout.width, fig.layout.height
    width = width or own_w or COLUMN_WIDTH_PX["double"]
    if height is None:
        # keep the figure's own aspect ratio when only the width changes
        height = round(own_h * width / own_w) if own_w and own_h else (own_h or int(width * 0.7))
    written: list[Path] = []
    formats = [f.lower().lstrip(".") for f in formats]
    unknown = sorted(set(formats) - {"png", "svg", "pdf", "html"})
    if unknown:
        raise ValueError(f"unknown figure format(s) {unknown}; use png, svg, pdf or html")
    static = [f for f in formats if f != "html"]
    if static and _find_chromium() is None and not os.environ.get("BROWSER_PATH"):
        raise RuntimeError(
            "static figure export needs Chromium: run `bash scripts/setup.sh` "
            "(it installs Debian's chromium) or set BROWSER_PATH"
        )
    for fmt in formats:
        out = path.with_suffix(f".{fmt}")
        with atomic_path(out) as tmp:
            if fmt == "html":
                fig.write_html(tmp, include_plotlyjs="cdn", full_html=True)
            else:
                _write_static(fig, tmp, fmt, width, height, scale if fmt == "png" else 1, out)
        written.append(out)
    return written
