"""Prototype conditioning (IMPROVE, METHOD.md section 8) and a Frechet distance on features.

IMPROVE learns class prototypes on image embeddings by convolutional prototype learning and uses
them, frozen, in place of the learnable class embedding of a class-conditional diffusion model.
Here:

1. :func:`embed` gives image embeddings: the baseline's penultimate layer
   (:meth:`~cytoviz.evaluation.BaselineClassifier.features`) or the VAE encoder's latent mean,
   flattened.
2. :func:`learn_prototypes` learns ``M`` prototypes ``m_kj`` per class on the (standardised)
   embeddings ``f(x)`` with the loss ``DCE + lambda * PL`` (:func:`prototype_loss`):
   ``d_kj = ||f(x) - m_kj||^2``, ``p(x in m_kj) = exp(-g d_kj) / sum_kl exp(-g d_kl)``,
   ``DCE = -log sum_j p(x in m_yj)``, ``PL = min_j d_yj`` (distance to the nearest prototype of
   the true class). The embeddings themselves stay fixed.
3. :func:`prototype_conditioning` projects each class's prototype (the mean of its ``M``) to the
   conditioning width ``token_dim`` by a fixed random orthogonal projection or by PCA of the
   embeddings, scales each row to unit norm (like a one-hot row), and writes it into the
   conditioning rows in place of the one-hot vector; the null condition stays the zero row.
4. The UNet must learn this conditioning: :func:`train_prototype_conditioned` fine-tunes a copy
   of a model with the eps-prediction loss of :mod:`cytoviz.diffusion.train` (min-SNR weighted),
   class dropout to the null condition for classifier-free guidance.
5. :func:`compare_generators` compares generators by class agreement of a baseline and by the
   Frechet distance between baseline features of generated and real images
   (:func:`frechet_distance`). This is a "Frechet distance on baseline features", not the
   Inception FID: the numbers are not comparable with published FIDs.

The module runs past 600 lines on purpose: it is this one five-step pipeline, kept in the order
above so that it reads from embedding to comparison.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cytoviz._config import Config
from cytoviz._io import FORMAT_VERSION, load_npz, save_npz
from cytoviz.augment import to_tensor
from cytoviz.diffusion.generate import generate
from cytoviz.diffusion.model import DiffusionModel, label_matrix
from cytoviz.diffusion.train import diffusion_loss

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from cytoviz.data import CellDataset
    from cytoviz.diffusion import GenerateConfig
    from cytoviz.evaluation import BaselineClassifier

__all__ = [
    "PrototypeConditioning",
    "PrototypeConfig",
    "PrototypeGenerator",
    "Prototypes",
    "compare_generators",
    "embed",
    "frechet_distance",
    "learn_prototypes",
    "prototype_conditioning",
    "prototype_loss",
    "train_prototype_conditioned",
]

PROJECTIONS = ("orthogonal", "pca")


# ------------------------------------------------------------------------------------------------
# embeddings


def embed(data: CellDataset | np.ndarray, *, baseline: BaselineClassifier | None = None,
          model: DiffusionModel | None = None, batch_size: int = 64) -> np.ndarray:
    """Image embeddings for prototype learning.

    Parameters
    ----------
    data
        A :class:`~cytoviz.data.CellDataset` or ``uint8`` images ``(N, H, W, 3)``.
    baseline
        Use the baseline's penultimate-layer features ``(N, channels[-1])``.
    model
        Use the diffusion model's VAE encoder: the latent mean (scaled), flattened to
        ``(N, C * h * w)``. Pass exactly one of ``baseline`` and ``model``.
    batch_size
        Images per forward pass.
    """
    if (baseline is None) == (model is None):
        raise ValueError("pass exactly one of baseline= (penultimate features) or model= (VAE latents)")
    if baseline is not None:
        return baseline.features(data, batch_size=batch_size)
    import torch

    assert model is not None
    images = model.crop_input(data.images if hasattr(data, "images") else np.asarray(data))
    out = []
    with torch.inference_mode():
        for s in range(0, images.shape[0], batch_size):
            z = model.encode(to_tensor(images[s:s + batch_size]), sample=False)
            out.append(z.float().flatten(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


# ------------------------------------------------------------------------------------------------
# convolutional prototype learning


@dataclasses.dataclass(frozen=True)
class PrototypeConfig(Config):
    """Settings of :func:`learn_prototypes`.

    Parameters
    ----------
    n_prototypes
        Prototypes per class (``M``).
    gamma
        Temperature ``g`` of ``p(x in m) ~ exp(-g d)``.
    lam
        Weight ``lambda`` of the prototype loss PL.
    epochs
        Passes over the embeddings.
    batch_size
        Embeddings per step.
    lr
        Adam learning rate.
    init
        ``"class_mean"``: each class's prototypes start at its mean embedding plus small noise;
        ``"random"``: at randomly drawn embeddings of any class.
    standardize
        Learn on embeddings standardised per dimension (mean 0, sd 1 over the training set);
        the prototypes are reported back in the original units.
    seed
        Seed of the initialisation and the batch order.
    """

    n_prototypes: int = 1
    gamma: float = 1.0
    lam: float = 0.01
    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.05
    init: str = "class_mean"
    standardize: bool = True
    seed: int = 0

    def validate(self) -> None:
        if self.n_prototypes < 1:
            raise ValueError(f"n_prototypes must be >= 1, got {self.n_prototypes}")
        if self.gamma <= 0 or self.lam < 0 or self.lr <= 0:
            raise ValueError(f"need gamma > 0, lam >= 0, lr > 0; got {self.gamma}, {self.lam}, {self.lr}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.init not in ("class_mean", "random"):
            raise ValueError(f"init must be 'class_mean' or 'random', got {self.init!r}")


def prototype_loss(features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, *,
                   gamma: float = 1.0, lam: float = 0.01
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Convolutional-prototype-learning loss ``DCE + lam * PL`` (batch means).

    Parameters
    ----------
    features
        ``(B, D)`` embeddings ``f(x)``.
    labels
        ``(B,)`` class indices.
    prototypes
        ``(K, M, D)``: ``M`` prototypes for each of ``K`` classes.
    gamma, lam
        Temperature ``g`` and weight ``lambda``.

    Returns
    -------
    (total, dce, pl)
        ``d_kj = ||f - m_kj||^2``; ``DCE = -log sum_j softmax_{kl}(-g d)_{y j}``;
        ``PL = min_j d_{y j}``.
    """
    import torch

    b = features.shape[0]
    k, m, _ = prototypes.shape
    d = (features[:, None, None, :] - prototypes[None]).pow(2).sum(-1)  # (B, K, M)
    logp = torch.log_softmax(-gamma * d.reshape(b, k * m), dim=1).reshape(b, k, m)
    rows = torch.arange(b, device=features.device)
    dce = -torch.logsumexp(logp[rows, labels], dim=1).mean()
    pl = d[rows, labels].min(dim=1).values.mean()
    return dce + lam * pl, dce, pl


@dataclasses.dataclass(frozen=True, eq=False)
class Prototypes:
    """Learned class prototypes.

    Attributes
    ----------
    prototypes
        ``(K, M, D)`` prototypes in the units of the embeddings.
    class_names
        The ``K`` classes.
    mean, scale
        ``(D,)`` standardisation used while learning (zeros and ones without).
    config
        The :class:`PrototypeConfig`.
    history
        Loss per epoch: ``(epochs, 3)`` total, DCE, PL (means over the epoch's batches).
    """

    prototypes: np.ndarray
    class_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    config: PrototypeConfig
    history: np.ndarray

    @property
    def class_embeddings(self) -> np.ndarray:
        """``(K, D)`` mean of each class's prototypes (original units)."""
        return self.prototypes.mean(axis=1)

    def _std(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.prototypes.shape[2]:
            raise ValueError(f"features must be (N, {self.prototypes.shape[2]}), got {features.shape}")
        return (features - self.mean) / self.scale

    def distances(self, features: np.ndarray) -> np.ndarray:
        """``(N, K, M)`` squared distances in the standardised space where they were learned."""
        f = self._std(features)
        p = (self.prototypes - self.mean) / self.scale
        return ((f[:, None, None, :] - p[None]) ** 2).sum(-1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``(N,)`` class of the nearest prototype."""
        d = self.distances(features)
        return d.min(axis=2).argmin(axis=1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to one ``.npz`` (atomically)."""
        import json

        return save_npz(
            path, kind=np.asarray("Prototypes"), format_version=np.asarray(FORMAT_VERSION),
            prototypes=self.prototypes, class_names=np.asarray(self.class_names, dtype=str),
            mean=self.mean, scale=self.scale, history=self.history,
            config=np.asarray(json.dumps(self.config.to_dict())),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Prototypes:
        """Read prototypes written by :meth:`save`."""
        import json

        data = load_npz(path)
        if str(data.get("kind", "")) != "Prototypes":
            raise ValueError(f"{path}: not a cytoviz Prototypes file")
        return cls(data["prototypes"], tuple(str(c) for c in data["class_names"]), data["mean"],
                   data["scale"], PrototypeConfig.from_dict(json.loads(str(data["config"]))),
                   data["history"])


def learn_prototypes(features: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                     *, config: PrototypeConfig | None = None) -> Prototypes:
    """Learn class prototypes on fixed embeddings with ``DCE + lambda * PL``.

    Parameters
    ----------
    features
        ``(N, D)`` embeddings (see :func:`embed`).
    labels
        ``(N,)`` class indices into ``class_names``; every class needs at least one image.
    class_names
        The classes.
    config
        :class:`PrototypeConfig`.

    Returns
    -------
    Prototypes
        With the loss history (total, DCE, PL per epoch).
    """
    import torch

    config = config or PrototypeConfig()
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    k = len(class_names)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"features must be (N, D) and labels (N,), got {x.shape} and {y.shape}")
    missing = [class_names[c] for c in range(k) if not (y == c).any()]
    if missing or (y.size and (y.min() < 0 or y.max() >= k)):
        raise ValueError(f"every class needs embeddings with labels in [0, {k - 1}]; "
                         f"missing {missing}")
    mean = x.mean(0) if config.standardize else np.zeros(x.shape[1])
    scale = x.std(0) if config.standardize else np.ones(x.shape[1])
    scale = np.where(scale > 1e-8, scale, 1.0)
    xs = (x - mean) / scale
    rng = np.random.default_rng(config.seed)
    m = config.n_prototypes
    if config.init == "class_mean":
        init = np.stack([np.repeat(xs[y == c].mean(0)[None], m, 0) for c in range(k)])
        init = init + 0.01 * rng.standard_normal(init.shape)
    else:
        init = xs[rng.choice(x.shape[0], size=k * m, replace=x.shape[0] < k * m)].reshape(k, m, -1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        protos = torch.nn.Parameter(torch.tensor(init, dtype=torch.float32))
        opt = torch.optim.Adam([protos], lr=config.lr)
        ft = torch.tensor(xs, dtype=torch.float32)
        yt = torch.from_numpy(y)
        history = []
        for _ in range(config.epochs):
            order = rng.permutation(x.shape[0])
            sums, count = np.zeros(3), 0
            for s in range(0, x.shape[0], config.batch_size):
                idx = torch.from_numpy(order[s:s + config.batch_size])
                total, dce, pl = prototype_loss(ft[idx], yt[idx], protos, gamma=config.gamma,
                                                lam=config.lam)
                opt.zero_grad()
                total.backward()
                opt.step()
                sums += np.array([total.item(), dce.item(), pl.item()]) * len(idx)
                count += len(idx)
            history.append(sums / count)
    p = protos.detach().double().numpy() * scale + mean
    return Prototypes(p, tuple(class_names), mean, scale, config, np.asarray(history))


# ------------------------------------------------------------------------------------------------
# conditioning with frozen prototypes


class PrototypeConditioning:
    """Frozen conditioning rows: one projected prototype per class instead of a one-hot vector.

    Call it like :meth:`DiffusionModel.conditioning`: ``(B,)`` class indices (``-1`` = null,
    the zero row) or ``(B, K)`` soft labels (mixed rows) give ``(B, n_tokens, token_dim)``.

    Parameters
    ----------
    rows
        ``(K, token_dim)`` conditioning row of each class.
    class_names
        The classes, in row order.
    n_tokens
        Tokens per conditioning (the row is repeated over them).
    method
        How the rows were made (recorded for saving).
    """

    def __init__(self, rows: np.ndarray, class_names: Sequence[str], n_tokens: int,
                 method: str = "orthogonal") -> None:
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] != len(class_names):
            raise ValueError(f"rows must be (K={len(class_names)}, token_dim), got {rows.shape}")
        self.rows = rows
        self.class_names = tuple(class_names)
        self.n_tokens = int(n_tokens)
        self.method = method

    def __repr__(self) -> str:
        return (f"PrototypeConditioning({len(self.class_names)} classes, {self.n_tokens}x"
                f"{self.rows.shape[1]}, {self.method})")

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        import torch

        table = torch.as_tensor(self.rows, device=labels.device)
        row = label_matrix(labels, table.shape[0]) @ table
        return row[:, None, :].expand(-1, self.n_tokens, -1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to ``.npz`` (atomically)."""
        return save_npz(path, kind=np.asarray("PrototypeConditioning"), rows=self.rows,
                        class_names=np.asarray(self.class_names, dtype=str),
                        n_tokens=np.asarray(self.n_tokens), method=np.asarray(self.method))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrototypeConditioning:
        """Read a conditioning written by :meth:`save`."""
        data = load_npz(path)
        if str(data.get("kind", "")) != "PrototypeConditioning":
            raise ValueError(f"{path}: not a cytoviz PrototypeConditioning file")
        return cls(data["rows"], [str(c) for c in data["class_names"]], int(data["n_tokens"]),
                   str(data["method"]))


def prototype_conditioning(prototypes: Prototypes, model: DiffusionModel, *,
                           method: str = "orthogonal", features: np.ndarray | None = None,
                           seed: int = 0) -> PrototypeConditioning:
    """Project each class's prototype to the model's conditioning width.

    Parameters
    ----------
    prototypes
        From :func:`learn_prototypes`; its classes must be the model's.
    model
        Supplies ``token_dim`` and ``n_tokens``.
    method
        ``"orthogonal"``: a fixed random projection with orthonormal columns (or rows when the
        embedding is narrower than ``token_dim``), seeded, applied to the standardised
        prototypes centred on their mean over classes. ``"pca"``: the leading principal axes of
        ``features`` (standardised); zero-padded when there are fewer than ``token_dim``.
    features
        Embeddings for ``"pca"``.
    seed
        Seed of the orthogonal projection.

    Returns
    -------
    PrototypeConditioning
        Rows scaled to unit norm, like the one-hot rows they replace.
    """
    if tuple(prototypes.class_names) != tuple(model.class_names):
        raise ValueError(f"prototypes are for classes {list(prototypes.class_names)}, the model "
                         f"has {list(model.class_names)}; learn them on the model's classes")
    if method not in PROJECTIONS:
        raise ValueError(f"method must be one of {PROJECTIONS}, got {method!r}")
    width = model.token_dim
    e = (prototypes.class_embeddings - prototypes.mean) / prototypes.scale  # (K, D)
    dim = e.shape[1]
    if method == "orthogonal":
        rng = np.random.default_rng(seed)
        if dim >= width:
            q, _ = np.linalg.qr(rng.standard_normal((dim, width)))  # (D, W) orthonormal columns
        else:
            q, _ = np.linalg.qr(rng.standard_normal((width, dim)))
            q = q.T  # (D, W) orthonormal rows: an isometry
        rows = (e - e.mean(0)) @ q
    else:
        if features is None:
            raise ValueError("method='pca' needs features= (the embeddings to fit the axes on)")
        f = (np.asarray(features, dtype=np.float64) - prototypes.mean) / prototypes.scale
        centre = f.mean(0)
        _, _, vt = np.linalg.svd(f - centre, full_matrices=False)
        axes = vt[:width]
        rows = np.zeros((e.shape[0], width))
        rows[:, :axes.shape[0]] = (e - centre) @ axes.T
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if np.any(norms < 1e-8):
        raise ValueError("two classes project to the same point (a zero row); use method='pca' "
                         "or another seed, or learn prototypes on more informative embeddings")
    return PrototypeConditioning(rows / norms, model.class_names, model.n_tokens, method)


# ------------------------------------------------------------------------------------------------
# fine-tuning the UNet for a conditioning


@dataclasses.dataclass
class PrototypeGenerator:
    """A fine-tuned model with the conditioning it was trained for.

    Attributes
    ----------
    model
        The fine-tuned :class:`~cytoviz.diffusion.DiffusionModel` (a copy; the input model is
        left as it was).
    conditioning
        The :class:`PrototypeConditioning`, or ``None`` for one-hot rows (the control).
    history
        Loss of every fine-tuning step.
    """

    model: DiffusionModel
    conditioning: PrototypeConditioning | None
    history: list[float] = dataclasses.field(default_factory=list)

    def generate(self, classes: str | Sequence[str] | Sequence[int], n_per_class: int,
                 config: GenerateConfig | None = None, *, progress: bool = True) -> CellDataset:
        """:func:`~cytoviz.diffusion.generate` with this generator's conditioning."""
        return generate(self.model, classes, n_per_class, config=config, progress=progress,
                        conditioning=self.conditioning)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """``folder/model`` (save_pretrained) and ``folder/conditioning.npz``."""
        folder = Path(folder)
        self.model.save_pretrained(folder / "model")
        if self.conditioning is not None:
            self.conditioning.save(folder / "conditioning.npz")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> PrototypeGenerator:
        """Read a generator written by :meth:`save`."""
        folder = Path(folder)
        cond_path = folder / "conditioning.npz"
        cond = PrototypeConditioning.load(cond_path) if cond_path.is_file() else None
        return cls(DiffusionModel.from_pretrained(folder / "model"), cond)


def train_prototype_conditioned(
    model: DiffusionModel,
    train: CellDataset,
    conditioning: PrototypeConditioning | None,
    *,
    steps: int = 500,
    batch_size: int = 16,
    lr: float = 1e-4,
    class_dropout: float = 0.1,
    min_snr_gamma: float | None = 5.0,
    flips: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> PrototypeGenerator:
    """Fine-tune a copy of ``model``'s UNet to a (prototype) conditioning.

    :func:`cytoviz.diffusion.train` builds its conditioning from one-hot labels and offers no
    hook for another, so this is a small loop with the same loss
    (:func:`cytoviz.diffusion.train.diffusion_loss`: eps-prediction MSE, min-SNR weighting):
    AdamW, a frozen VAE (stochastic encode), random flips, and class dropout to the null (zero)
    condition so that classifier-free guidance works.

    Parameters
    ----------
    model
        The starting model (typically the trained one-hot model); it is not modified.
    train
        Training images; class names must match the model's.
    conditioning
        The frozen prototype rows from :func:`prototype_conditioning`, or ``None`` to fine-tune
        with the one-hot rows for the same number of steps (the fair control).
    steps, batch_size, lr
        Optimiser steps, images per step, AdamW learning rate.
    class_dropout
        Probability of the null condition per image.
    min_snr_gamma
        Min-SNR gamma of the loss (``None``: plain MSE).
    flips
        Random horizontal and vertical flips.
    seed
        Seed of the batches, noise, timesteps and dropout.
    progress
        tqdm progress bar.
    """
    import torch

    if tuple(train.class_names) != tuple(model.class_names):
        raise ValueError(f"training classes {list(train.class_names)} differ from the model's "
                         f"{list(model.class_names)}; use CellDataset.select_classes")
    train = model.crop_input(train)  # checks the size; the model's input_crop, if any
    if steps < 1 or batch_size < 1 or not 0 <= class_dropout < 1:
        raise ValueError(f"need steps >= 1, batch_size >= 1, 0 <= class_dropout < 1; got "
                         f"{steps}, {batch_size}, {class_dropout}")
    tuned = copy.deepcopy(model)
    tuned.vae.requires_grad_(False).eval()
    unet = tuned.unet
    unet.requires_grad_(True).train()
    cond_fn = conditioning if conditioning is not None else tuned.conditioning
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = tuned.device
    t_max = int(tuned.scheduler.config.num_train_timesteps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="fine-tune", unit="step")
    history: list[float] = []
    try:
        for _ in range(steps):
            idx = rng.choice(len(train), size=batch_size, replace=len(train) < batch_size)
            x = to_tensor(train.images[idx])
            if flips:
                fh = torch.rand(batch_size, generator=g) < 0.5
                fv = torch.rand(batch_size, generator=g) < 0.5
                x = torch.where(fh[:, None, None, None], x.flip(3), x)
                x = torch.where(fv[:, None, None, None], x.flip(2), x)
            labels = torch.from_numpy(train.labels[idx])
            drop = torch.rand(batch_size, generator=g) < class_dropout
            labels = torch.where(drop, torch.full_like(labels, -1), labels)
            with torch.no_grad():
                latents = tuned.encode(x.to(device), sample=True, generator=g).float()
            noise = torch.randn(latents.shape, generator=g).to(device)
            t = torch.randint(0, t_max, (batch_size,), generator=g).to(device)
            cond = cond_fn(labels.to(device)).to(device, next(unet.parameters()).dtype)
            loss = diffusion_loss(tuned, latents, cond, t, noise, gamma=min_snr_gamma)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{history[-1]:.4f}")
    finally:
        if bar is not None:
            bar.close()
    unet.requires_grad_(False)
    tuned.eval()
    return PrototypeGenerator(tuned, conditioning, history)


# ------------------------------------------------------------------------------------------------
# comparing generators


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, *, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with sample means and covariances;
    the matrix square root is ``scipy.linalg.sqrtm`` (with ``eps * I`` added to both covariances
    if the product is singular). On a baseline's features this is a "Frechet distance on
    baseline features", not the Inception FID.

    Parameters
    ----------
    feats_a, feats_b
        ``(N_a, D)`` and ``(N_b, D)`` features, at least 2 rows each.
    eps
        Regularisation used when the square root is not finite.
    """
    import warnings

    from scipy.linalg import LinAlgWarning, sqrtm

    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"need at least 2 feature rows per set, got {a.shape[0]} and {b.shape[0]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # singular covariances (fewer images than feature dimensions) are expected here
        warnings.simplefilter("ignore", LinAlgWarning)
        covmean = sqrtm(s_a @ s_b)
    if not np.all(np.isfinite(covmean)):
        off = eps * np.eye(s_a.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LinAlgWarning)
            covmean = sqrtm((s_a + off) @ (s_b + off))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def compare_generators(samples: Mapping[str, CellDataset], real: CellDataset,
                       baseline: BaselineClassifier, *, per_class: bool = True) -> pd.DataFrame:
    """Compare generators by baseline class agreement and Frechet distance on baseline features.

    Parameters
    ----------
    samples
        Generator name -> its generated images (labels = intended classes), e.g.
        ``{"one-hot": ..., "prototype": ...}``.
    real
        Real images to compare with (classes matched by name).
    baseline
        Supplies the class predictions and the penultimate-layer features.
    per_class
        Also report every class (the Frechet distance within the class); otherwise only ``"all"``.

    Returns
    -------
    pandas.DataFrame
        One row per generator and class (``"all"`` = every image): ``generator``, ``intended``,
        ``n``, ``agreement`` (baseline prediction = intended class) and
        ``frechet_baseline_features`` (to the real images of that class; NaN with fewer than 2
        images on either side).
    """
    import pandas as pd

    real_feats = baseline.features(real)
    real_names = real.label_names
    rows = []
    for name, ds in samples.items():
        feats = baseline.features(ds)
        pred = np.asarray(baseline.class_names, dtype=str)[baseline.predict(ds)]
        intended = ds.label_names
        classes = [c for c in ds.class_names if (intended == c).any()] if per_class else []
        for cls in [*classes, "all"]:
            sel = np.ones(len(ds), bool) if cls == "all" else intended == cls
            rsel = np.ones(len(real), bool) if cls == "all" else real_names == cls
            fd = (frechet_distance(feats[sel], real_feats[rsel])
                  if sel.sum() >= 2 and rsel.sum() >= 2 else float("nan"))
            rows.append({"generator": name, "intended": cls, "n": int(sel.sum()),
                         "agreement": float(np.mean(pred[sel] == intended[sel])),
                         "frechet_baseline_features": fd})
    return pd.DataFrame(rows)
