"""The discriminative baseline: a small residual CNN trained from scratch.

It plays the role of the paper's ViT-B/16 and EfficientNetV2-M baselines (METHOD.md section 7),
whose pretrained weights cannot be had here, at a size comparable to the tiny diffusion UNet
(about 1.2 M parameters with the default channels). Group normalisation makes every prediction
independent of the other images in the batch.

The logits (before the softmax) are kept: the anomaly certainty of a discriminative model is the
same score as for CytoDiffusion computed on the negated logits (METHOD.md section 2).

A trained classifier is saved as a folder::

    model_dir/
      model.safetensors   the weights
      config.json         BaselineConfig, class names, image size, training history

The module runs past 600 lines on purpose: config, network, classifier, persistence and the
training loop of one model, which a reader follows top to bottom.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz._config import Config
from cytoviz._io import FORMAT_VERSION, atomic_path, load_json, save_json
from cytoviz._metrics import classification_metrics
from cytoviz.augment import AugmentConfig, augment, to_tensor
from cytoviz.data._dataset import CellDataset

if TYPE_CHECKING:
    import torch

__all__ = ["BaselineClassifier", "BaselineConfig", "train_baseline"]

_KIND = "BaselineClassifier"
_WEIGHTS = "model.safetensors"
_CONFIG = "config.json"


@dataclasses.dataclass(frozen=True)
class BaselineConfig(Config):
    """Architecture and training recipe of the CNN baseline.

    Parameters
    ----------
    channels
        Output channels of the stages; every stage after the first halves the resolution.
    blocks_per_stage
        Residual blocks per stage.
    stem_stride
        Stride of the first convolution. The default 2 makes a 64 px image 32 px wide before
        the first stage (a training step then costs about 10 ms per image on one CPU core,
        against about 50 ms with stride 1).
    norm_groups
        Groups of the group normalisation (must divide every entry of ``channels``).
    dropout
        Dropout before the final linear layer.
    epochs
        Passes over the training set.
    batch_size
        Images per optimisation step.
    lr, weight_decay
        AdamW learning rate (peak of the cosine schedule) and weight decay.
    warmup_fraction
        Fraction of the steps spent on a linear learning-rate warm-up.
    label_smoothing
        Label smoothing of the cross-entropy loss.
    balanced_sampling
        Draw training images with probabilities inversely proportional to their class size.
    augment
        Training augmentations (:class:`cytoviz.augment.AugmentConfig`).
    seed
        Seed of the initialisation, the shuffling and the augmentations.
    val_every
        Validate every this many epochs (and after the last one).
    max_minutes
        Wall-clock budget for training; ``None`` for no limit. Training stops after the epoch
        that exceeds it.
    eval_batch_size
        Images per batch at prediction time.
    """

    channels: tuple[int, ...] = (32, 64, 128, 256)
    blocks_per_stage: int = 1
    stem_stride: int = 2
    norm_groups: int = 8
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    label_smoothing: float = 0.0
    balanced_sampling: bool = False
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    seed: int = 0
    val_every: int = 1
    max_minutes: float | None = None
    eval_batch_size: int = 128

    def validate(self) -> None:
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise ValueError(f"channels must be positive integers, got {self.channels}")
        bad = [c for c in self.channels if c % self.norm_groups]
        if bad:
            raise ValueError(
                f"norm_groups={self.norm_groups} must divide every entry of channels; "
                f"{bad} are not multiples"
            )
        for name in ("blocks_per_stage", "stem_stride", "epochs", "batch_size", "val_every",
                     "eval_batch_size", "norm_groups"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must lie in [0, 1), got {self.warmup_fraction}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive or None, got {self.max_minutes}")
        if not isinstance(self.augment, AugmentConfig):
            raise ValueError(f"augment must be an AugmentConfig, got {type(self.augment).__name__}")


# --------------------------------------------------------------------------------------------
# the network


def _build_net(config: BaselineConfig, n_classes: int) -> torch.nn.Module:
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            g = config.norm_groups
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.norm1 = nn.GroupNorm(g, c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.norm2 = nn.GroupNorm(g, c_out)
            self.act = nn.SiLU()
            self.skip: nn.Module = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.skip = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.GroupNorm(g, c_out)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.norm1(self.conv1(x)))
            h = self.norm2(self.conv2(h))
            return self.act(h + self.skip(x))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c0 = config.channels[0]
            self.stem = nn.Sequential(
                nn.Conv2d(3, c0, 3, config.stem_stride, 1, bias=False),
                nn.GroupNorm(config.norm_groups, c0),
                nn.SiLU(),
            )
            blocks: list[nn.Module] = []
            c_in = c0
            for i, c in enumerate(config.channels):
                for j in range(config.blocks_per_stage):
                    blocks.append(Block(c_in, c, 2 if (i > 0 and j == 0) else 1))
                    c_in = c
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.dropout = nn.Dropout(config.dropout)
            self.head = nn.Linear(c_in, n_classes)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(self.blocks(self.stem(x))).flatten(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.dropout(self.features(x)))

    return Net()


# --------------------------------------------------------------------------------------------
# helpers


def _as_images(data: CellDataset | np.ndarray) -> np.ndarray:
    if isinstance(data, CellDataset):
        return data.images
    arr = np.asarray(data)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(
            "data must be a CellDataset or uint8 images of shape (N, H, W, 3), "
            f"got dtype {arr.dtype} and shape {arr.shape}"
        )
    return arr


def _label_map(
    data_classes: Sequence[str], model_classes: Sequence[str], what: str
) -> np.ndarray:
    """Index into ``model_classes`` of every class of ``data_classes`` (clear error otherwise)."""
    missing = [c for c in data_classes if c not in model_classes]
    if missing:
        raise ValueError(
            f"{what} has class(es) {missing} that the model does not know; the model's classes "
            f"are {list(model_classes)}. Select matching classes with CellDataset.select_classes "
            "or train a model on these classes."
        )
    return np.asarray([list(model_classes).index(c) for c in data_classes], dtype=np.int64)


def _scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """:func:`cytoviz._metrics.classification_metrics`, refusing an empty data set."""
    if np.asarray(y_true).size == 0:
        raise ValueError("cannot evaluate on an empty data set")
    return classification_metrics(y_true, y_pred)


def _state_copy(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# --------------------------------------------------------------------------------------------
# the classifier


class BaselineClassifier:
    """A trained CNN baseline with its class names and config.

    Build one with :func:`train_baseline` or :meth:`load`.

    Attributes
    ----------
    net
        The torch module (``net.features(x)`` gives the penultimate embeddings).
    class_names
        Class names, in logit order.
    config
        The :class:`BaselineConfig` it was trained with.
    image_size
        Side length of the images it expects.
    history
        Per-epoch training record (loss, learning rate, validation scores, seconds).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        class_names: Sequence[str],
        config: BaselineConfig,
        image_size: int,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        self.net = net.eval()
        self.class_names: tuple[str, ...] = tuple(str(c) for c in class_names)
        self.config = config
        self.image_size = int(image_size)
        self.history: list[dict[str, Any]] = list(history or [])

    def __repr__(self) -> str:
        return (
            f"BaselineClassifier({len(self.class_names)} classes, {self.image_size} px, "
            f"{self.n_parameters / 1e6:.2f} M parameters)"
        )

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return int(sum(p.numel() for p in self.net.parameters()))

    # ---- prediction -------------------------------------------------------------------------

    def _batches(self, data: CellDataset | np.ndarray, batch_size: int | None) -> Any:
        import torch

        images = _as_images(data)
        if images.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"images are {images.shape[1]}x{images.shape[2]} px but this model expects "
                f"{self.image_size}x{self.image_size}; resize them (e.g. load them with "
                f"image_size={self.image_size} in cytoviz.data loaders)"
            )
        bs = int(batch_size or self.config.eval_batch_size)
        device = next(self.net.parameters()).device
        self.net.eval()
        with torch.inference_mode():
            for start in range(0, images.shape[0], bs):
                yield to_tensor(images[start : start + bs]).to(device)

    def predict_logits(
        self, data: CellDataset | np.ndarray, *, batch_size: int | None = None
    ) -> np.ndarray:
        """Logits (before the softmax) for every image.

        Parameters
        ----------
        data
            A :class:`~cytoviz.data.CellDataset` or ``uint8`` images ``(N, H, W, 3)``.
        batch_size
            Images per forward pass (default ``config.eval_batch_size``).

        Returns
        -------
        numpy.ndarray
            ``(N, K)`` float32 logits, columns in :attr:`class_names` order.
        """
        out = [self.net(x).float().cpu().numpy() for x in self._batches(data, batch_size)]
        if not out:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def predict_proba(
        self, data: CellDataset | np.ndarray, *, batch_size: int | None = None
    ) -> np.ndarray:
        """Softmax probabilities ``(N, K)``."""
        from scipy.special import softmax

        return softmax(self.predict_logits(data, batch_size=batch_size), axis=1)

    def predict(self, data: CellDataset | np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Predicted class indices ``(N,)`` (into :attr:`class_names`)."""
        return self.predict_logits(data, batch_size=batch_size).argmax(axis=1).astype(np.int64)

    def features(self, data: CellDataset | np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Penultimate-layer embeddings ``(N, channels[-1])`` (after global average pooling)."""
        out = [self.net.features(x).float().cpu().numpy() for x in self._batches(data, batch_size)]
        if not out:
            return np.zeros((0, self.config.channels[-1]), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def labels_for(self, ds: CellDataset) -> np.ndarray:
        """The labels of ``ds`` as indices into this model's classes (matched by name)."""
        return _label_map(ds.class_names, self.class_names, "the data set")[ds.labels]

    def evaluate(self, ds: CellDataset, *, batch_size: int | None = None) -> dict[str, float]:
        """Accuracy and balanced accuracy on a labelled data set.

        Classes are matched by name, so ``ds`` may hold a subset of the model's classes in any
        order; a class the model does not know raises a ``ValueError``. Balanced accuracy is the
        mean recall over the classes present in ``ds``.

        Returns
        -------
        dict
            ``accuracy``, ``balanced_accuracy`` and ``n_images``.
        """
        y = self.labels_for(ds)
        return _scores(y, self.predict(ds, batch_size=batch_size))

    # ---- adaptation -------------------------------------------------------------------------

    def fine_tune(
        self,
        ds: CellDataset,
        val: CellDataset | None = None,
        *,
        epochs: int = 20,
        lr: float = 2e-4,
        batch_size: int | None = None,
        augment: AugmentConfig | None = None,
        seed: int | None = None,
        max_minutes: float | None = None,
        progress: bool = True,
    ) -> BaselineClassifier:
        """Fine-tune the whole network on a few labelled images (few-shot domain adaptation).

        Parameters
        ----------
        ds
            Target-domain training images; its classes must be among the model's.
        val
            Optional validation set: the epoch with the best balanced accuracy is kept.
        epochs, lr, batch_size, augment, seed, max_minutes
            Override the training recipe of :attr:`config` (small ``lr`` by default).
        progress
            Show a tqdm progress bar.

        Returns
        -------
        BaselineClassifier
            A new classifier; this one is left unchanged.
        """
        changes: dict[str, Any] = {"epochs": epochs, "lr": lr, "max_minutes": max_minutes}
        if batch_size is not None:
            changes["batch_size"] = batch_size
        if augment is not None:
            changes["augment"] = augment
        if seed is not None:
            changes["seed"] = seed
        import torch

        config = self.config.replace(**changes)
        net = copy.deepcopy(self.net)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # dropout draws from the global generator
            history = _fit(net, ds, val, config, self.class_names, progress=progress)
        return BaselineClassifier(
            net, self.class_names, self.config, self.image_size,
            [*self.history, *({**h, "stage": "fine_tune"} for h in history)],
        )

    # ---- persistence ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into the folder ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(path / _WEIGHTS) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "kind": _KIND})
        save_json(
            {
                "kind": _KIND,
                "format_version": FORMAT_VERSION,
                "class_names": list(self.class_names),
                "image_size": self.image_size,
                "config": self.config.to_dict(),
                "history": self.history,
            },
            path / _CONFIG,
        )
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        class_names: Sequence[str] | None = None,
        device: str = "cpu",
    ) -> BaselineClassifier:
        """Read a classifier written by :meth:`save`.

        Parameters
        ----------
        path
            The model folder.
        class_names
            If given, the class list the caller expects; a different stored list raises a
            ``ValueError`` naming both.
        device
            Where to put the network.
        """
        from safetensors.torch import load_file

        path = Path(path)
        cfg_file, weights = path / _CONFIG, path / _WEIGHTS
        for f in (cfg_file, weights):
            if not f.is_file():
                raise FileNotFoundError(
                    f"{f}: no such file; {path} is not a folder written by BaselineClassifier.save"
                )
        meta = load_json(cfg_file)
        if meta.get("kind") != _KIND:
            raise ValueError(f"{cfg_file}: holds a {meta.get('kind')!r}, not a {_KIND}")
        if int(meta.get("format_version", -1)) != FORMAT_VERSION:
            raise ValueError(
                f"{cfg_file}: format version {meta.get('format_version')}, this cytoviz reads "
                f"version {FORMAT_VERSION}; retrain or install a matching cytoviz"
            )
        stored = tuple(meta["class_names"])
        if class_names is not None and tuple(class_names) != stored:
            raise ValueError(
                f"{path}: the model's classes are {list(stored)}, not the expected "
                f"{list(class_names)}; pass matching class names or retrain"
            )
        config = BaselineConfig.from_dict(meta["config"])
        net = _build_net(config, len(stored))
        try:
            net.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{weights}: weights do not match the stored config ({exc})") from exc
        return cls(net.to(device), stored, config, int(meta["image_size"]), meta.get("history"))


# --------------------------------------------------------------------------------------------
# training


def _fit(
    net: torch.nn.Module,
    train: CellDataset,
    val: CellDataset | None,
    config: BaselineConfig,
    class_names: Sequence[str],
    *,
    progress: bool,
) -> list[dict[str, Any]]:
    """Train ``net`` in place; load the best validation state at the end; return the history."""
    import torch
    from tqdm.auto import tqdm

    y_train = _label_map(train.class_names, class_names, "the training set")[train.labels]
    y_val = None if val is None else _label_map(val.class_names, class_names, "the validation set")[val.labels]
    n = len(train)
    if n == 0:
        raise ValueError("the training set is empty")
    if val is not None and val.image_size != train.image_size:
        raise ValueError(
            f"validation images are {val.image_size} px, training images {train.image_size} px"
        )
    generator = torch.Generator().manual_seed(config.seed)
    device = next(net.parameters()).device
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = int(config.warmup_fraction * total)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_)))

    opt = torch.optim.AdamW(
        net.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=config.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if config.balanced_sampling:
        counts = np.bincount(y_train, minlength=len(class_names)).astype(np.float64)
        weights = torch.from_numpy(1.0 / counts[y_train])

    def evaluate_val() -> dict[str, float]:
        assert val is not None and y_val is not None
        clf = BaselineClassifier(net, class_names, config, train.image_size)
        scores = _scores(y_val, clf.predict(val))
        net.train()
        return scores

    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    t0 = time.monotonic()
    bar = tqdm(range(config.epochs), desc="baseline", disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        if config.balanced_sampling:
            order = torch.multinomial(weights, n, replacement=True, generator=generator)
        else:
            order = torch.randperm(n, generator=generator)
        total_loss = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size].numpy()
            x = to_tensor(train.images[idx])
            x = augment(x, config.augment, generator=generator).to(device)
            target = torch.from_numpy(y_train[idx]).to(device)
            loss = loss_fn(net(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": total_loss / n,
            "lr": float(opt.param_groups[0]["lr"]),
            "seconds": time.monotonic() - t0,
        }
        out_of_time = (
            config.max_minutes is not None and record["seconds"] > 60.0 * config.max_minutes
        )
        last = epoch + 1 == config.epochs or out_of_time
        if val is not None and ((epoch + 1) % config.val_every == 0 or last):
            scores = evaluate_val()
            record["val_accuracy"] = scores["accuracy"]
            record["val_balanced_accuracy"] = scores["balanced_accuracy"]
            if best is None or scores["balanced_accuracy"] >= best[0]:
                best = (scores["balanced_accuracy"], _state_copy(net))
                record["best"] = True
        history.append(record)
        bar.set_postfix(
            loss=f"{record['train_loss']:.3f}",
            **({"val_bacc": f"{record['val_balanced_accuracy']:.3f}"} if "val_balanced_accuracy" in record else {}),
        )
        if out_of_time:
            record["stopped"] = f"time budget of {config.max_minutes} min reached"
            break
    bar.close()
    if best is not None:
        net.load_state_dict(best[1])
    net.eval()
    return history


def train_baseline(
    train: CellDataset,
    val: CellDataset | None = None,
    config: BaselineConfig = BaselineConfig(),
    *,
    progress: bool = True,
    device: str = "cpu",
) -> BaselineClassifier:
    """Train the CNN baseline from scratch.

    Parameters
    ----------
    train
        Training images; the model learns ``train.class_names``.
    val
        Optional validation set (classes matched by name); the checkpoint with the best
        validation balanced accuracy is kept (the latest among ties). Without it the final
        weights are kept.
    config
        Architecture and recipe: AdamW, linear warm-up then cosine decay, augmentations from
        :mod:`cytoviz.augment`.
    progress
        Show a tqdm progress bar.
    device
        Torch device to train on.

    Returns
    -------
    BaselineClassifier
        The trained classifier; ``.history`` records every epoch.

    Notes
    -----
    Training is deterministic on the CPU for a given ``config.seed`` (and thread count); the
    global torch random state is left as it was.
    """
    import torch

    if not isinstance(train, CellDataset):
        raise TypeError(f"train must be a CellDataset, got {type(train).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = _build_net(config, len(train.class_names)).to(device)
        history = _fit(net, train, val, config, train.class_names, progress=progress)
    return BaselineClassifier(net, train.class_names, config, train.image_size, history)
