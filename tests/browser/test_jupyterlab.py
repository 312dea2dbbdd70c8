"""JupyterLab: the heatmap (04) and psychometric (05) notebooks run, their widgets render and react.

Each test opens a notebook in JupyterLab (fast mode), runs all cells, checks that there are no
error outputs, that the explorer widget shows plotly figures and ipywidgets controls, changes a
control and waits until the widget's figure changes. Screenshots go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import pytest
from _harness import NOTEBOOK_TIMEOUT_MS

pytestmark = pytest.mark.browser

# The output area that holds the explorer (the one output with an ipywidgets slider), in the
# notebook tab on show: JupyterLab restores the tabs of earlier tests in hidden panels.
WIDGET_OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output:has(.widget-slider)"

# A fingerprint of every plotly figure inside the widget output: data and layout title.
FINGERPRINT_JS = """() => {
  const out = document.querySelector('WIDGET_OUTPUT');
  if (!out) return null;
  return JSON.stringify([...out.querySelectorAll('.js-plotly-plot')].map(p => [
    (p.data || []).map(t => [t.type, t.z, t.x, t.y, t.source]),
    p.layout && p.layout.title && p.layout.title.text,
    p.layout && p.layout.shapes]));
}""".replace("WIDGET_OUTPUT", WIDGET_OUTPUT)

LAST_CELL_DONE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.sessionContext.session || !w.sessionContext.session.kernel) return false;
  const code = w.content.widgets.filter(c => c.model.type === 'code');
  const last = code[code.length - 1];
  return last.model.executionCount !== null
      && w.sessionContext.session.kernel.status === 'idle';
}"""

ERRORS_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const errs = [];
  for (const c of w.content.widgets) {
    if (c.model.type !== 'code') continue;
    for (const o of c.model.outputs.toJSON())
      if (o.output_type === 'error') errs.push(o.ename + ': ' + o.evalue);
  }
  return errs;
}"""


def open_and_run(page, lab: tuple[str, str], notebook: str) -> None:
    """Open ``notebooks/<notebook>`` in JupyterLab, run all cells, wait for the last one."""
    url, token = lab
    # A workspace of its own, reset: only this notebook is open (no tabs of earlier tests).
    space = notebook.split(".")[0].replace("_", "-")
    page.goto(f"{url}/lab/workspaces/{space}/tree/notebooks/{notebook}?token={token}&reset")
    try:  # a "Select Kernel" dialog may appear
        page.get_by_role("button", name="Select").click(timeout=8000)
    except Exception:
        pass
    page.wait_for_function(
        "window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=180_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(LAST_CELL_DONE_JS, timeout=NOTEBOOK_TIMEOUT_MS, polling=1000)
    errors = page.evaluate(ERRORS_JS)
    assert not errors, f"{notebook} raised: {errors}"


WIDGET_DRAWN_JS = """n => {
  const out = document.querySelector('WIDGET_OUTPUT');
  if (!out) return false;
  const plots = [...out.querySelectorAll('.js-plotly-plot')];
  return plots.length >= n && plots.every(p => p.data && p.data.length > 0);
}""".replace("WIDGET_OUTPUT", WIDGET_OUTPUT)


def tidy_lab(page) -> None:
    """Room for the notebook: close the right side bar, hide notification toasts."""
    page.evaluate("window.jupyterapp.shell.collapseRight && window.jupyterapp.shell.collapseRight()")
    page.add_style_tag(content=".Toastify { display: none !important; }")  # notifications


def widget_ready(page, n_figures: int) -> None:
    """The explorer rendered: its ``n_figures`` plotly figures drawn with data, and controls."""
    # "attached", not "visible": the explorer may sit below the fold; WIDGET_DRAWN_JS checks data
    page.wait_for_selector(f"{WIDGET_OUTPUT} .js-plotly-plot", state="attached", timeout=120_000)
    page.wait_for_function(WIDGET_DRAWN_JS, arg=n_figures, timeout=600_000, polling=1000)
    tidy_lab(page)
    assert page.locator(".js-plotly-plot").count() >= 2  # static figures and the widget's
    assert page.locator(f"{WIDGET_OUTPUT} .widget-slider").count() >= 1
    assert page.locator(f"{WIDGET_OUTPUT} .widget-dropdown").count() >= 1


def set_slider(page, description: str, value: str) -> None:
    """Type ``value`` into the readout of the slider labelled ``description``."""
    slider = page.locator(f"{WIDGET_OUTPUT} .widget-slider", has_text=description).first
    readout = slider.locator(".widget-readout")
    readout.scroll_into_view_if_needed()
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def wait_contains(page, text: str, timeout: int = 600_000) -> str:
    """Wait until the widget's figures are redrawn with ``text`` (e.g. in a title); return them.

    A redraw passes through intermediate states (traces removed, then added), so waiting for
    "any change" can return too early.
    """
    page.wait_for_function(
        "text => { const f = (" + FINGERPRINT_JS + ")(); return f && f.includes(text) && "
        "!f.startsWith('[[[]'); }", arg=text, timeout=timeout, polling=500)
    return page.evaluate(FINGERPRINT_JS)


def wait_changed(page, before: str, timeout: int = 600_000) -> str:
    """Wait until the widget's figures differ from the fingerprint ``before``; return the new one."""
    page.wait_for_function("before => (" + FINGERPRINT_JS + ")() !== before", arg=before,
                           timeout=timeout, polling=500)
    return page.evaluate(FINGERPRINT_JS)


def test_heatmap_notebook_transition_explorer(page, lab, screenshot_dir):
    open_and_run(page, lab, "04_counterfactual_heatmaps.ipynb")
    widget_ready(page, 2)  # the transition grid and the enlarged cell
    out = page.locator(WIDGET_OUTPUT).first
    out.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "04_transition_explorer.png"))
    before = page.evaluate(FINGERPRINT_JS)
    assert before

    # the overlay threshold: only the overlay changes (no model run)
    set_slider(page, "threshold", "0")
    after_threshold = wait_changed(page, before)
    # the gain: the heatmaps are decoded again
    set_slider(page, "gain", "300")
    wait_changed(page, after_threshold)
    # another source image for the first column, from the dropdown
    image = out.locator(".widget-dropdown", has_text="image").locator("select")
    options = image.locator("option").all_text_contents()
    if len(options) > 1:
        current = page.evaluate(FINGERPRINT_JS)
        image.select_option(label=options[-1])
        wait_changed(page, current)
    out.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "04_transition_explorer_changed.png"))


def test_psychometric_notebook_bins_explorer(page, lab, screenshot_dir):
    open_and_run(page, lab, "05_psychometric.ipynb")
    widget_ready(page, 1)
    out = page.locator(WIDGET_OUTPUT).first
    out.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "05_bins_explorer.png"))
    before = page.evaluate(FINGERPRINT_JS)
    assert before and "8 equal-width bins" in before

    # fewer bins: a new fit, another figure (its title names the bin count)
    set_slider(page, "bins", "5")
    after_bins = wait_contains(page, "5 equal-width bins")
    assert after_bins != before
    # another observer from the dropdown: an expert
    observer = out.locator(".widget-dropdown", has_text="observer").locator("select")
    options = observer.locator("option").all_text_contents()
    assert len(options) >= 2, options
    observer.select_option(label=options[1])
    after_observer = wait_contains(page, f"{options[1]}: 5 equal-width bins")
    assert after_observer != after_bins
    out.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "05_bins_explorer_changed.png"))
