"""The README stays short and true: generated tables up to date, real commands, no stray numbers.

- ``scripts/fill_readme_tables.py --check`` passes: every ``<!-- TABLE name -->`` block of
  README.md and of ``docs/**/*.md`` equals what the printers make of the stored results.
- README.md has at most :data:`MAX_LINES` lines.
- Every line of a fenced shell block (README and docs) that starts with ``cytoviz`` parses with
  the command line's own parser (:func:`cytoviz.cli.build_parser`), and every inline
  ```cytoviz ...``` span names commands that exist: the README can never again mention a
  command that is not there.
- README prose (outside code, links and generated blocks) holds no numbers but a citation's
  year: every measured number comes from a generated block.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cytoviz.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_LINES = 210
SHELL_LANGS = {"bash", "sh", "shell", "console"}
#: Folders under docs/ that the build writes.
DOCS_SKIP = ("_build", "generated", "notebooks")

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
TABLE = re.compile(r"<!-- TABLE (\w+) -->.*?<!-- /TABLE \1 -->", re.S)


def _pages() -> list[Path]:
    docs = sorted(p for p in (REPO / "docs").rglob("*.md")
                  if not any(part in DOCS_SKIP for part in p.relative_to(REPO / "docs").parts))
    return [README, *docs]


def _shell_commands(text: str) -> list[list[str]]:
    """The ``cytoviz`` command lines of the fenced shell blocks, split as a shell would."""
    out = []
    for lang, body in FENCE.findall(text):
        if lang not in SHELL_LANGS:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] in ("cytoviz", ".venv/bin/cytoviz"):
                out.append(words)
    return out


def _inline_commands(text: str) -> list[list[str]]:
    """Inline code spans that start with ``cytoviz `` (outside fenced blocks)."""
    text = FENCE.sub("", text)
    spans = re.findall(r"`(cytoviz [^`]+)`", text)
    return [span.split() for span in spans]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _parse(words: list[str]) -> str | None:
    """None when ``words`` (``cytoviz ...``) parses, else argparse's complaint."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(words[1:])
    except SystemExit as exc:
        if exc.code not in (0, None):  # --help exits 0
            return err.getvalue().strip().splitlines()[-1] if err.getvalue() else str(exc)
    return None


def _unknown_command(words: list[str]) -> str | None:
    """The first word of ``words`` naming a (sub)command that does not exist, if any."""
    parser = build_parser()
    for word in words[1:]:
        choices = _subparsers(parser)
        if not choices or word.startswith("-") or word.isupper():  # options, or a placeholder
            return None
        if word not in choices:
            return f"{word!r} is not one of {sorted(choices)}"
        parser = choices[word]
    return None


def test_tables_up_to_date():
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "fill_readme_tables.py"),
                          "--check"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, (
        f"{run.stdout}{run.stderr}\nrun `.venv/bin/python scripts/fill_readme_tables.py`")


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines (at most {MAX_LINES}): move detail to docs/"


def test_readme_has_commands_to_check():
    """The README shows the own-images recipe as commands (so the checks below bite)."""
    names = {words[1] for words in _shell_commands(README.read_text())}
    assert {"train", "classify", "psychometric", "figures"} <= names, names


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_shell_commands_parse(page):
    bad = [f"{' '.join(words)}\n    -> {problem}" for words in _shell_commands(page.read_text())
           if (problem := _unknown_command(words) or _parse(words))]
    assert not bad, f"{page.name}: commands the CLI does not accept:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_inline_commands_exist(page):
    bad = [f"`{' '.join(words)}`: {problem}" for words in _inline_commands(page.read_text())
           if (problem := _unknown_command(words))]
    assert not bad, f"{page.name}: inline commands that do not exist:\n" + "\n".join(bad)


def test_readme_prose_has_no_numbers():
    text = TABLE.sub("", README.read_text())
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`]*`", "", text)              # inline code
    text = re.sub(r"\]\([^)]*\)", "]", text)          # link targets
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"\b(19|20)\d\d\b", "", text)       # a citation's year
    stray = [line.strip() for line in text.splitlines() if re.search(r"\d", line)]
    assert not stray, ("numbers in README prose (put measured numbers in a generated "
                       "<!-- TABLE --> block):\n" + "\n".join(stray))


def test_the_checks_catch_a_bad_command():
    """The parser check rejects the command the old README named, and a misspelt flag."""
    assert _unknown_command(["cytoviz", "classify", "refit-weighting"]) is None  # a value here
    assert _parse(["cytoviz", "classify", "refit-weighting"]) is not None
    assert _unknown_command(["cytoviz", "refit-weightings"]) is not None
    assert _parse(["cytoviz", "figures", "--out", "f", "--relo"]) is not None
    assert _parse(["cytoviz", "figures", "--out", "f"]) is None
