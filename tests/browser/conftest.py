"""Fixtures of the browser tests: a JupyterLab server in fast mode and a headless Chromium page.

Every test here carries the ``browser`` marker. They skip (with the reason) where Debian's
Chromium, the Playwright package or the default model is missing. Screenshots and server logs go
to ``test-artifacts/`` at the repository root (CI keeps that folder).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    SCREENSHOTS,
    have_chromium,
    jupyter_server,
    server_env,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.browser)


def _require_browser() -> None:
    if not have_chromium():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    from cytoviz.diffusion import default_model_path

    if not default_model_path().exists():
        pytest.skip(f"no default model at {default_model_path()} (train it or set "
                    "CYTOVIZ_DEFAULT_MODEL)")


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def lab(browser, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """``(base url, token)`` of a JupyterLab server in fast mode, on a copy of the notebooks.

    JupyterLab autosaves open notebooks with their outputs: the server works on copies in a
    temporary folder so that the stored notebooks stay without outputs.
    """
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns("outputs", ".ipynb_checkpoints"))
    with jupyter_server(root, ARTIFACTS / "jupyterlab.log", env=server_env(tmp)) as base:
        url, token = base.split("|")
        yield url, token


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
    finally:
        context.close()
