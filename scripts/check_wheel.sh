#!/usr/bin/env bash
# The installable package (issue 21): build the wheel, install it into a fresh virtual environment
# outside the repository with the pinned versions, and run cytoviz there, from a folder outside
# the repository, on the files the wheel ships (default model, CNN baseline, result tables):
#   - `cytoviz classify` with the shipped default model on a few synthetic cells;
#   - `cytoviz figures --only table1 table2 --fast`: table1 classifies with the shipped model and
#     evaluates the shipped baseline, table2 draws the shipped domain-shift table.
# The repository is not modified: the wheel is built from a copy of the working tree (tracked and
# untracked, not ignored files) in a temporary folder, which is removed at the end
# (KEEP=1 keeps it). Needs the package index (or its cache) for the dependencies, like setup.sh.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cytoviz-wheel.XXXXXX")
case "$TMP" in "$REPO"/*) echo "check_wheel: $TMP is inside the repository" >&2; exit 1 ;; esac
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$TMP"' EXIT
start=$(date +%s)

FIND_LINKS=()
[ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)

# 1. A copy of the working tree (the build writes build/ and *.egg-info next to the sources).
"$PY" - "$REPO" "$TMP/src" <<'PY'
import shutil, subprocess, sys
from pathlib import Path
repo, dest = Path(sys.argv[1]), Path(sys.argv[2])
names = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "-co", "--exclude-standard"],
                       check=True, capture_output=True).stdout.decode().split("\0")
for name in filter(None, names):
    src = repo / name
    if src.is_file():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
PY

# 2. The wheel.
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$TMP/dist" "$TMP/src"
WHEEL=$(ls "$TMP"/dist/cytoviz-*.whl)
echo "check_wheel: built $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"
"$PY" - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["cytoviz/_shipped/default_model/cytoviz.json",
        "cytoviz/_shipped/default_model/unet/diffusion_pytorch_model.safetensors",
        "cytoviz/_shipped/default_model/vae/diffusion_pytorch_model.safetensors",
        "cytoviz/_shipped/default_baseline/model.safetensors",
        "cytoviz/_shipped/results/domain_shift.csv"]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"check_wheel: the wheel lacks {missing}")
print(f"check_wheel: the wheel holds {sum(n.startswith('cytoviz/_shipped/') for n in names)} shipped files")
PY

# 3. A fresh virtual environment outside the repository, the wheel and its pinned dependencies.
"$PY" -m venv "$TMP/venv"
V="$TMP/venv/bin"
"$V/python" -m pip install -q --disable-pip-version-check "${FIND_LINKS[@]}" \
    -c "$REPO/requirements/constraints.txt" "$WHEEL"
echo "check_wheel: installed into $TMP/venv ($(( $(date +%s) - start )) s so far)"

# 4. Run it from a folder outside the repository (no editable install, no repository on the path).
mkdir "$TMP/work"
cd "$TMP/work"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} CYTOVIZ_FAST=1
unset CYTOVIZ_DEFAULT_MODEL CYTOVIZ_DEFAULT_BASELINE CYTOVIZ_RESULTS PYTHONPATH
MODEL=$("$V/python" - "$REPO" <<'PY'
import sys
from pathlib import Path
import cytoviz
from cytoviz._paths import default_model_dir, results_dir
repo = Path(sys.argv[1]).resolve()
for path in (Path(cytoviz.__file__), default_model_dir(), results_dir()):
    if path.resolve().is_relative_to(repo):
        sys.exit(f"check_wheel: {path} is inside the repository, not the installed wheel")
print(default_model_dir())
PY
)
echo "check_wheel: the installed default model is $MODEL"
# --model default: the shipped model as an installed user names it
"$V/cytoviz" classify --model default --data synthetic --split test --limit 8 \
    --max-trials 4 --min-trials 2 --out cls --quiet
"$V/cytoviz" figures --only table1 table2 --fast --formats svg --out figs --quiet
for f in cls/predictions.csv cls/result.npz figs/table1_accuracy.csv figs/table2_domain_shift.csv \
         figs/table2_domain_shift.svg; do
    [ -s "$f" ] || { echo "check_wheel: $f is missing" >&2; ls -R . >&2; exit 1; }
done
"$V/python" -c "import pandas as pd; t = pd.read_csv('figs/table1_accuracy.csv'); \
assert (t['model'] == 'CNN baseline').any(), t; print(t.to_string(index=False))"
echo "check_wheel: ok ($(wc -l < cls/predictions.csv) lines in predictions.csv; $(( $(date +%s) - start )) s)"
