"""Voila: the tour (00) renders as a web app with its plotly figures."""

from __future__ import annotations

import pytest
from _harness import ARTIFACTS, NOTEBOOK_TIMEOUT_MS, REPO, jupyter_server, server_env

pytestmark = pytest.mark.browser


def test_tour_renders_in_voila(page, tmp_path, screenshot_dir):
    notebook = REPO / "notebooks" / "00_tour.ipynb"
    with jupyter_server(REPO, ARTIFACTS / "voila.log", voila_notebook=notebook,
                        env=server_env(tmp_path)) as url:
        page.goto(url, timeout=NOTEBOOK_TIMEOUT_MS, wait_until="commit")
        # Voila streams the outputs as the cells run; the tour's last figure is a strip plot
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot').length >= 4",
            timeout=NOTEBOOK_TIMEOUT_MS, polling=1000)
        page.wait_for_load_state("load", timeout=NOTEBOOK_TIMEOUT_MS)
        text = page.inner_text("body")
        assert "There was an error when executing" not in text, text[-2000:]
        assert "Traceback" not in text, text[-2000:]
        assert "A tour of CytoDiffusion" in text
        n_plots = page.locator(".js-plotly-plot").count()
        assert n_plots >= 4, n_plots
        # the figures have data (not empty placeholders)
        assert page.evaluate(
            "[...document.querySelectorAll('.js-plotly-plot')].every(p => p.data && p.data.length)")
        page.screenshot(path=str(screenshot_dir / "00_tour_voila.png"), full_page=True)
