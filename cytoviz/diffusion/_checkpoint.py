"""Checkpoint files of a training run: tensors, optimizer, RNG states, data order (private).

Everything is safetensors or JSON (no pickles) and written atomically, so a run resumes exactly
from its newest complete checkpoint folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz._io import atomic_path, load_json

if TYPE_CHECKING:
    import torch

    from cytoviz.data import CellDataset

__all__ = [
    "CHECKPOINT_VERSION",
    "RESUMABLE_CHANGES",
    "DataOrder",
    "fingerprint",
    "latest_checkpoint",
    "load_tensors",
    "optimizer_from_files",
    "optimizer_to_files",
    "rng_state",
    "save_tensors",
    "set_rng_state",
]

#: Format version of the checkpoint folders written by :func:`~cytoviz.diffusion.train`.
CHECKPOINT_VERSION = 1

#: TrainConfig fields that may change when a run is resumed (they do not change the trajectory
#: of the steps already taken).
RESUMABLE_CHANGES = frozenset({
    "steps", "checkpoint_every", "keep_checkpoints", "val_every", "val_images",
    "val_accuracy_images", "val_accuracy_trials", "log_every", "max_minutes",
})


class DataOrder:
    """Epoch-wise shuffled order of the training images, determined by (seed, stage, epoch).

    The state is just ``(epoch, position)``, so it checkpoints as two integers.
    """

    def __init__(self, n: int, seed: int, stage: int, epoch: int = 0, position: int = 0) -> None:
        self.n, self.seed, self.stage = n, seed, stage
        self.epoch, self.position = epoch, position
        self._perm = self._permutation(epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, self.stage, epoch]).permutation(self.n)

    def next(self, count: int) -> np.ndarray:
        out: list[np.ndarray] = []
        while count > 0:
            if self.position >= self.n:
                self.epoch += 1
                self.position = 0
                self._perm = self._permutation(self.epoch)
            take = min(count, self.n - self.position)
            out.append(self._perm[self.position:self.position + take])
            self.position += take
            count -= take
        return np.concatenate(out)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}


def fingerprint(data: CellDataset) -> str:
    """SHA-1 of the images, labels and class names (to refuse resuming on different data)."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(data.images).tobytes())
    h.update(np.ascontiguousarray(data.labels).tobytes())
    h.update("\n".join(data.class_names).encode())
    return h.hexdigest()


def latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder under ``out_dir/checkpoints``, or ``None``."""
    ckpt_root = Path(out_dir) / "checkpoints"
    pointer = ckpt_root / "latest.json"
    if not pointer.is_file():
        return None
    path = ckpt_root / load_json(pointer)["name"]
    if not (path / "state.json").is_file():
        raise FileNotFoundError(
            f"{pointer} points to {path}, which is missing or incomplete; delete {ckpt_root} "
            "or pass resume=False (--no-resume) to start afresh"
        )
    return path


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file missing; the checkpoint is incomplete")
    return load_file(str(path))


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    import torch

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_files(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                          meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    import torch

    out = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"torch_cuda_{i}"] = s
    return out


def set_rng_state(generator: torch.Generator, tensors: dict[str, torch.Tensor]) -> None:
    import torch

    generator.set_state(tensors["generator"])
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
