"""Start JupyterLab / Voila on 127.0.0.1 and drive Debian's headless Chromium with Playwright."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status < 500:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"server at {url} did not answer in {timeout} s")


@contextlib.contextmanager
def jupyter_server(root: Path, log: Path, *, voila_notebook: Path | None = None,
                   env: dict[str, str] | None = None) -> Iterator[str]:
    """Run JupyterLab (or Voila on one notebook) on 127.0.0.1; yield the base URL with token."""
    port = free_port()
    token = secrets.token_hex(16)
    bindir = Path(sys.executable).parent
    full_env = {**os.environ, **(env or {})}
    if voila_notebook is None:
        cmd = [str(bindir / "jupyter"), "lab", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               "--ServerApp.open_browser=False", "--LabApp.news_url=None", "--allow-root",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        url = f"http://127.0.0.1:{port}"
        probe = f"{url}/api/status?token={token}"
    else:
        cmd = [str(bindir / "voila"), str(voila_notebook), "--no-browser", f"--port={port}",
               "--Voila.ip=127.0.0.1", f"--Voila.root_dir={root}"]
        url = f"http://127.0.0.1:{port}"
        probe = url
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=root, env=full_env)
        try:
            _wait_http(probe, proc)
            yield url if voila_notebook is not None else f"{url}|{token}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def have_chromium() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


# -- shared by the browser tests (tests/browser/conftest.py, test_*.py) ---------------------------
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
NOTEBOOK_TIMEOUT_MS = 900_000  # run-all of a fast-mode notebook on a shared CPU


def server_env(tmp: Path) -> dict[str, str]:
    """Environment of a notebook server: fast mode, notebook outputs outside the repository."""
    return {"CYTOVIZ_FAST": "1", "CYTOVIZ_OUTPUT_DIR": str(tmp / "outputs"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "JUPYTERLAB_SETTINGS_DIR": str(lab_settings(tmp / "lab-settings"))}


def lab_settings(folder: Path) -> Path:
    """JupyterLab user settings for the tests: every cell rendered (no windowing).

    By default JupyterLab 4 renders off-screen cells lazily, so an output below the fold can be
    in the page but not visible, and waits for "visible" then depend on the screen size.
    """
    tracker = folder / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text('{"windowingMode": "none"}\n')
    return folder
