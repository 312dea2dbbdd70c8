"""Classification across processes (issue 22 item 2): ``classify_to_folder(num_processes=N)`` and
``cytoviz classify --num-processes N`` give the single-process result image by image, and a killed
multi-process run resumes with any number of processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytoviz.cli import main
from cytoviz.data import CellDataset
from cytoviz.diffusion import ClassificationResult, ClassifyConfig, DiffusionModel
from cytoviz.diffusion.resumable import PARTIAL_DIR, classify_to_folder

pytestmark = pytest.mark.slow  # each multi-process run spawns workers that import torch (~5 s)

#: The classifier flags of every run here, and the same as a config.
FLAGS = ("--max-trials", "6", "--min-trials", "3", "--p-threshold", "0.2", "--batch-size", "6",
         "--seed", "4", "--chunk-size", "2", "--quiet")
CONFIG = ClassifyConfig(max_trials=6, min_trials=3, p_threshold=0.2, batch_size=6, seed=4)
#: Discrete fields (equal whatever the arithmetic) and float fields of a result.
EXACT = ("trial_timesteps", "n_trials", "n_evals", "remaining", "labels", "prediction")
FLOATS = ("trial_errors", "trial_weights", "error_maps", "scores")


def _argv(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["classify", "--model", str(model_dir), "--data", str(data), "--out", str(out),
            *FLAGS, *extra]


@pytest.fixture(scope="module")
def setup(tiny_model_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Path, Path, Path]:
    """(model folder, data file, folder of the single-process reference run): 8 images in 4
    chunks of 2."""
    root = tmp_path_factory.mktemp("multiprocess")
    imgs = np.random.default_rng(11).integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
    data = root / "cells.npz"
    model_dir = tiny_model_dir()
    names = DiffusionModel.from_pretrained(model_dir).class_names
    CellDataset(imgs, np.arange(8) % len(names), names).save(data)
    assert main(_argv(model_dir, data, root / "ref")) == 0
    return model_dir, data, root / "ref"


def _assert_same(r: ClassificationResult, ref: ClassificationResult) -> None:
    """Image by image the same result: discrete fields equal; the float fields bit-identical
    where the workers ran on as many torch threads as this process (the chunks and their UNet
    batches are the same), within float32 rounding otherwise (as the resume tests hold)."""
    import torch

    assert len(r) == len(ref) and r.config == ref.config
    for name in EXACT:
        np.testing.assert_array_equal(getattr(r, name), getattr(ref, name), err_msg=name)
    same_threads = max(1, (os.cpu_count() or 1) // 2) == torch.get_num_threads()
    for name in FLOATS:
        if same_threads:
            np.testing.assert_array_equal(getattr(r, name), getattr(ref, name), err_msg=name)
        else:
            np.testing.assert_allclose(getattr(r, name), getattr(ref, name), rtol=1e-5,
                                       atol=1e-7, err_msg=name)


def test_two_processes_give_the_single_process_result(setup, tmp_path) -> None:
    model_dir, data, ref_dir = setup
    ref = ClassificationResult.load(ref_dir / "result.npz")
    model = DiffusionModel.from_pretrained(model_dir)
    r = classify_to_folder(model, CellDataset.load(data), tmp_path / "out", config=CONFIG,
                           chunk_size=2, progress=False, num_processes=2)
    _assert_same(r, ref)
    _assert_same(ClassificationResult.load(tmp_path / "out" / "result.npz"), ref)
    assert not (tmp_path / "out" / PARTIAL_DIR).exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "predictions.csv"),
                                  pd.read_csv(ref_dir / "predictions.csv"))


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_cli_multiprocess_run_killed_then_resumed(setup, tmp_path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL `cytoviz classify --num-processes 2` after its first chunk: its workers stop, and
    the command again (with another number of processes) resumes and ends with the reference."""
    model_dir, data, ref_dir = setup
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cytoviz.cli", *_argv(model_dir, data, out, "--num-processes", "2")]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    partial = out / PARTIAL_DIR
    deadline = time.monotonic() + 120
    while (not any(partial.glob("chunk-*.npz")) and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    workers = _children(proc.pid)
    assert len(workers) >= 2 or not Path("/proc").is_dir()  # the two workers (and a tracker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(partial.glob("chunk-*.npz")), proc.stdout.read().decode() if proc.stdout else ""
    assert proc.returncode == -signal.SIGKILL
    # The workers notice that their parent is gone and stop.
    deadline = time.monotonic() + 30
    while any(_running(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(p) for p in workers)
    # Worker 0 does chunks 0 and 2, worker 1 chunks 1 and 3: the run cannot have finished.
    chunks = sorted(partial.glob("chunk-*.npz"))
    assert 1 <= len(chunks) < 4 and not (out / "result.npz").exists()

    # Resumed with three processes (any number works: the chunks are the same).
    assert main(_argv(model_dir, data, out, "--num-processes", "3")) == 0
    assert f"{len(chunks)} of 4 chunks done" in capsys.readouterr().out
    assert not partial.exists()
    ref = ClassificationResult.load(ref_dir / "result.npz")
    _assert_same(ClassificationResult.load(out / "result.npz"), ref)
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"),
                                  pd.read_csv(ref_dir / "predictions.csv"))


@pytest.mark.parametrize("value", ["0", "-2"])
def test_cli_refuses_a_non_positive_number_of_processes(setup, tmp_path, value: str,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    model_dir, data, _ = setup
    assert main(_argv(model_dir, data, tmp_path / "out", "--num-processes", value)) == 2
    err = capsys.readouterr().err
    assert f"--num-processes must be a positive integer (worker processes), got {value}" in err
    assert not (tmp_path / "out" / PARTIAL_DIR).exists()


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_library_refuses_a_bad_number_of_processes(setup, value: object) -> None:
    model_dir, data, _ = setup
    model = DiffusionModel.from_pretrained(model_dir)
    with pytest.raises(ValueError, match="num_processes must be a positive integer"):
        classify_to_folder(model, CellDataset.load(data), "unused", config=CONFIG,
                           num_processes=value)  # type: ignore[arg-type]
