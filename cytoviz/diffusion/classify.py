"""The diffusion classifier (METHOD.md sections 1 and 3): adaptive trials, pruning, error maps.

:func:`classify` runs one pass of the CytoDiffusion decision rule over a set of images and returns
a :class:`~cytoviz.diffusion.result.ClassificationResult` that holds everything later views need
(predictions, confidence, anomaly certainty, counterfactual heatmaps).

One trial of one image draws a timestep ``t`` (from the stratified grid), one noise ``eps``, one
fresh test-time augmentation and one stochastic VAE encode; every class still in play is evaluated
on that same noisy latent. The error of class ``c`` is ``w(t) * sum_{disc} (eps - eps_theta)^2``
over the latent pixels of the centre disc and all channels.

The batched engine packs (image, class) pairs of many images into each UNet forward pass. Images
finish at different times (pruning ends easy images early), and a finished image's slots go to the
next image of the queue, so memory stays bounded by the batch, not by the data set. Every image
draws its randomness from its own generator seeded by ``(seed, image index)``, so the result does
not depend on the batch size or on which images share a batch (up to floating-point rounding of
batched convolutions), nor on classifying the data set in pieces (``first_index``). Finished
images' trials go to one growing buffer, not one small array per image, so a long run's resident
memory stays flat.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz import augment
from cytoviz.data import CellDataset
from cytoviz.diffusion.classify_config import ClassifyConfig, default_mask_radius, latent_mask
from cytoviz.diffusion.result import ClassificationResult
from cytoviz.diffusion.weighting import MULTIPLICATIVE, timestep_weights, weight_errors

if TYPE_CHECKING:
    import torch

    from cytoviz.diffusion.model import DiffusionModel

__all__ = ["classify", "prune"]


# ------------------------------------------------------------------------------------------------
# the classifier


def classify(model: DiffusionModel, images: CellDataset | np.ndarray,
             config: ClassifyConfig | None = None, *, labels: np.ndarray | None = None,
             progress: bool = True, first_index: int = 0,
             image_callback: Callable[[int], None] | None = None) -> ClassificationResult:
    """Classify images with the diffusion classifier (one pass; METHOD.md sections 1 and 3).

    Parameters
    ----------
    model
        A :class:`~cytoviz.diffusion.DiffusionModel`; its class names define the classes.
    images
        A :class:`~cytoviz.data.CellDataset` (its labels are kept, matched to the model's
        classes by name: it may hold only some of them; see :func:`model_labels`) or
        ``uint8`` images ``(N, H, W, 3)`` of the model's image size (or of its ``input_crop``; see
        :meth:`~cytoviz.diffusion.DiffusionModel.crop_input`).
    config
        :class:`ClassifyConfig` (default: the paper's settings).
    labels
        Optional true labels ``(N,)`` (overrides the data set's), for accuracy views.
    progress
        Show a tqdm progress bar over images.
    first_index
        Position of ``images[0]`` in the whole data set: image ``i`` draws its noise, encode
        and augmentation from the stream of image ``first_index + i``. Classifying a data set
        in pieces, each with its ``first_index``, so draws the same randomness as one call
        (:func:`~cytoviz.diffusion.classify_to_folder`'s resumable chunks do this).
    image_callback
        Called with the index (into ``images``) of each image as it finishes, in finishing
        order (progress reporting, memory probes).

    Returns
    -------
    ClassificationResult
        Per-trial errors, timesteps, trial and evaluation counts, classes in play, and the
        per-class mean error maps; predictions, confidence and certainty are its views.

    Examples
    --------
    >>> result = classify(model, dataset, ClassifyConfig(max_trials=100))  # doctest: +SKIP
    >>> result.prediction_names[:3], result.accuracy  # doctest: +SKIP
    """
    import torch

    # 1. check the inputs; the model in eval mode on the config's device; resolve the config
    config = config or ClassifyConfig()
    if isinstance(first_index, bool) or not isinstance(first_index, int | np.integer) or first_index < 0:
        raise ValueError(f"first_index must be a non-negative integer, got {first_index!r}")
    arr, labels = _as_images(images, labels, model.class_names)
    arr = model.crop_input(arr)
    if config.device is not None and torch.device(config.device) != model.device:
        model.to(config.device)
    model.eval()
    config = config.resolved(model)

    # 2. plan timesteps: one shuffled stratified grid and its weights, shared by all images
    plan = _plan_timesteps(model, config)

    # 3. the centre disc where errors count, and the test-time augmentation
    lat = model.config.latent_size
    radius = config.mask_radius if config.mask_radius is not None else default_mask_radius(lat)
    mask = torch.from_numpy(latent_mask(lat, radius)).to(device=model.device, dtype=torch.float32)
    tta = (augment.AugmentConfig.test_time(rotation90=config.tta_rotation == "right")
           if config.tta else None)

    # 4. the queue of images, the images in flight, and the per-image outputs
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=arr.shape[0], desc="classify", unit="img")
    callbacks: list[Callable[[int], None]] = []
    if bar is not None:
        callbacks.append(lambda _: bar.update(1))
    if image_callback is not None:
        callbacks.append(image_callback)
    out = _Outputs(arr.shape[0], model, config, callbacks)
    queue = deque(range(arr.shape[0]))
    active: list[_Slot] = []

    with torch.inference_mode():
        while queue or active:
            _admit(queue, active, model, config, first_index)
            # 5. encode: a fresh augmentation and VAE encode of every image in flight
            z0, params = _encode(model, arr, active, config, tta)
            # 6. noise: each latent noised at its image's next timestep of the plan
            eps, t_idx, tt, zt = _add_noise(z0, active, plan)
            # 7. UNet errors of every (image, class) pair still in play, weighted by w(t)
            pair_img, pair_cls = _pairs(active)
            sq, maps = _unet_errors(model, zt, tt, eps, mask, pair_img, pair_cls, config)
            raw = np.full((len(active), model.n_classes), np.nan)
            raw[pair_img, pair_cls] = sq.cpu().double().numpy()
            weighted = plan.weigh(raw, t_idx)
            # 8. error maps, the augmentation undone
            if maps is not None:
                _add_error_maps(active, maps, params, pair_img, pair_cls, mask)
            # 9. update and prune: record the trial, test for pruning, finish images
            active = _update_and_prune(active, weighted, config, out.finish)
    if bar is not None:
        bar.close()

    # 10. the result: every image ran the first n_trials entries of the plan
    return out.result(model, config, plan, labels, int(radius))


def paired_t_pvalues(diff: np.ndarray) -> np.ndarray:
    """Two-sided p-values of the paired t-test on each column of ``diff`` (``(n, m)``, n >= 2).

    The same test as ``scipy.stats.ttest_rel(a, b, axis=0)`` with ``diff = a - b`` (equal
    to rounding, ``tests/test_classify.py``), without its per-call overhead: the pruning
    test runs after every trial of every image. A column with zero variance gives 0 (or NaN
    when its mean is zero too), as scipy does.
    """
    from scipy import special

    n = diff.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = diff.mean(axis=0) / np.sqrt(diff.var(axis=0, ddof=1) / n)
        return 2.0 * special.stdtr(n - 1, -np.abs(t))


def prune(errors: np.ndarray, remaining: np.ndarray, p_threshold: float = 2e-3) -> np.ndarray:
    """One pruning test (METHOD.md section 1): the classes still in play afterwards.

    Parameters
    ----------
    errors
        ``(n, K)`` weighted errors of the trials so far (NaN for classes not evaluated).
    remaining
        ``(K,)`` booleans, the classes in play (evaluated on all ``n`` trials).
    p_threshold
        Significance level.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` booleans: a class is dropped when the paired t-test (two-sided, the test of
        ``scipy.stats.ttest_rel``, computed by :func:`paired_t_pvalues`) against the class
        with the lowest mean gives ``p < p_threshold`` and its mean is higher.
    """
    remaining = np.asarray(remaining, dtype=bool)
    idx = np.flatnonzero(remaining)
    if idx.size < 2 or errors.shape[0] < 2:
        return remaining.copy()
    sub = np.asarray(errors, dtype=np.float64)[:, idx]
    means = sub.mean(axis=0)
    best = int(np.argmin(means))
    others = np.delete(np.arange(idx.size), best)
    p = paired_t_pvalues(sub[:, others] - sub[:, [best]])
    drop = (p < p_threshold) & (means[others] > means[best])
    out = remaining.copy()
    out[idx[others[drop]]] = False
    return out


def keep_lowest(errors: np.ndarray, remaining: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` classes in play with the lowest mean error over ``errors`` (``(n, K)``)."""
    remaining = np.asarray(remaining, dtype=bool)
    idx = np.flatnonzero(remaining)
    if idx.size <= k:
        return remaining.copy()
    means = np.asarray(errors, dtype=np.float64)[:, idx].mean(axis=0)
    out = np.zeros_like(remaining)
    out[idx[np.argsort(means, kind="stable")[:k]]] = True
    return out


def decide(errors: np.ndarray, remaining: np.ndarray, config: ClassifyConfig) -> np.ndarray:
    """The classes in play after the trials in ``errors`` (``(n, K)``, NaN for dropped classes).

    The decision rule of ``config``, run after every trial (by :func:`classify` and by
    :func:`cytoviz.diffusion.replay.replay_pruning`): a top-k cut of ``config.keep_top`` at
    its trial, then the paired t-test (:func:`prune`) when due, at ``min_trials`` and every
    ``prune_every`` trials after. Without ``config.pruning`` every class stays.
    """
    if not config.pruning:
        return remaining
    n = errors.shape[0]
    for at, k in config.top_k_cuts():
        if n == at:
            remaining = keep_lowest(errors, remaining, k)
    if n >= config.min_trials and (n - config.min_trials) % config.prune_every == 0:
        remaining = prune(errors, remaining, config.p_threshold)
    return remaining


# ------------------------------------------------------------------------------------------------
# inputs and state


def _as_images(images: Any, labels: Any, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(images, CellDataset):
        if labels is None:
            labels = model_labels(images, class_names)
        arr = images.images
    else:
        arr = np.asarray(images)
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(
                f"images must be a CellDataset or a uint8 (N, H, W, 3) array, got "
                f"{arr.dtype} {arr.shape}"
            )
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (arr.shape[0],):
            raise ValueError(f"labels must have shape ({arr.shape[0]},), got {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise ValueError(
                f"labels must lie in [0, {len(class_names) - 1}], got [{labels.min()}, {labels.max()}]"
            )
    return arr, labels


def model_labels(data: CellDataset, class_names: Sequence[str]) -> np.ndarray:
    """The labels of ``data`` as indices into a model's ``class_names``.

    The data set may hold all of the model's classes or only some of them, in any order (a
    folder with two cell types, classified by a ten-class model): its labels are matched by
    class name.

    Parameters
    ----------
    data
        The labelled images.
    class_names
        The model's classes.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` int64 indices into ``class_names``.

    Raises
    ------
    ValueError
        When the data set has classes the model does not know, naming them.
    """
    names = tuple(class_names)
    if tuple(data.class_names) == names:
        return data.labels
    unknown = [c for c in data.class_names if c not in names]
    if unknown:
        raise ValueError(
            f"the data set has classes the model does not know: {unknown} (the model knows "
            f"{list(names)}); leave them out with dataset.select_classes (for image folders and "
            f"manifests on the command line: --class-map {unknown[0]}=none) or map them onto "
            "the model's classes"
        )
    remap = np.asarray([names.index(c) for c in data.class_names], dtype=np.int64)
    return remap[data.labels] if len(data) else data.labels


def _image_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


@dataclasses.dataclass
class _Slot:
    """State of one image in the engine."""

    index: int
    gen: torch.Generator
    remaining: np.ndarray
    errors: np.ndarray  # (max_trials, K) weighted, NaN for classes not evaluated
    n: int = 0
    n_evals: int = 0
    z0: torch.Tensor | None = None  # cached latent when the encode is deterministic
    map_sum: torch.Tensor | None = None  # (K, C, h, w)
    map_count: np.ndarray | None = None  # (K,)


class _TrialStore:
    """Finished images' per-trial errors, appended in finishing order to one growing buffer.

    One ``(rows, K)`` float32 array that doubles when full, instead of one small array per
    image: a long run then holds no per-image Python objects, and no small long-lived
    allocations pin the heap between the engine's large temporary tensors.
    """

    def __init__(self, n_img: int, k: int, rows: int) -> None:
        self.buf = np.empty((max(rows, 1), k), dtype=np.float32)
        self.start = np.zeros(n_img, dtype=np.int64)
        self.used = 0

    def add(self, i: int, errors: np.ndarray) -> None:
        end = self.used + errors.shape[0]
        if end > self.buf.shape[0]:
            grown = np.empty((max(end, 2 * self.buf.shape[0]), self.buf.shape[1]), np.float32)
            grown[: self.used] = self.buf[: self.used]
            self.buf = grown
        self.buf[self.used: end] = errors
        self.start[i] = self.used
        self.used = end

    def in_image_order(self, n_trials: np.ndarray) -> np.ndarray:
        """``(sum(n_trials), K)`` rows, image 0's trials first."""
        col = _trial_column(n_trials)
        return self.buf[np.repeat(self.start, n_trials) + col]


def _trial_column(n_trials: np.ndarray) -> np.ndarray:
    """For the flat trial rows of images with ``n_trials`` trials each: the trial number."""
    offsets = np.cumsum(n_trials) - n_trials
    return np.arange(int(n_trials.sum()), dtype=np.int64) - np.repeat(offsets, n_trials)


@dataclasses.dataclass(frozen=True)
class _TimestepPlan:
    """The shuffled stratified timestep grid that every image runs, and its weights."""

    t_order: np.ndarray  # (max_trials,) timestep of trial n
    w_order: np.ndarray  # (max_trials,) w(t) of trial n (NaN for the row-wise weightings)
    sqrt_ab: torch.Tensor  # (T,) sqrt(alphas_cumprod)
    sqrt_1mab: torch.Tensor  # (T,) sqrt(1 - alphas_cumprod)
    weighting: str
    weight_kw: dict[str, Any]

    def weigh(self, raw: np.ndarray, t_idx: np.ndarray) -> np.ndarray:
        """``(a, K)`` weighted errors of raw errors ``raw`` at trial numbers ``t_idx``."""
        if self.weighting in MULTIPLICATIVE:
            return raw * self.w_order[t_idx][:, None]
        return weight_errors(raw, self.t_order[t_idx], self.weighting, **self.weight_kw)[0]


def _plan_timesteps(model: DiffusionModel, config: ClassifyConfig) -> _TimestepPlan:
    import torch

    t_total = int(model.scheduler.config.num_train_timesteps)
    grid = np.rint(np.linspace(1, t_total - 1, config.max_trials)).astype(np.int64)
    t_order = grid[np.random.default_rng(config.seed).permutation(config.max_trials)]
    abar = model.scheduler.alphas_cumprod.detach().cpu().double().numpy()
    weight_kw: dict[str, Any] = {
        "poly_coeffs": config.poly_coeffs, "bucket_weights": config.bucket_weights,
        "alphas_cumprod": abar, "num_train_timesteps": t_total,
    }
    if config.weighting in MULTIPLICATIVE:
        w_order = timestep_weights(t_order, config.weighting, **weight_kw)
    else:
        w_order = np.full(config.max_trials, np.nan)
    return _TimestepPlan(
        t_order=t_order, w_order=w_order, sqrt_ab=torch.from_numpy(np.sqrt(abar)).float(),
        sqrt_1mab=torch.from_numpy(np.sqrt(1.0 - abar)).float(), weighting=config.weighting,
        weight_kw=weight_kw,
    )


class _Outputs:
    """Per-image outputs, filled in as images finish (the only arrays that grow with the data)."""

    def __init__(self, n_img: int, model: DiffusionModel, config: ClassifyConfig,
                 callbacks: Sequence[Callable[[int], None]]) -> None:
        k, ch, lat = model.n_classes, model.config.latent_channels, model.config.latent_size
        self.device = model.device
        self.callbacks = list(callbacks)
        self.n_trials = np.zeros(n_img, dtype=np.int64)
        self.n_evals = np.zeros(n_img, dtype=np.int64)
        self.remaining = np.zeros((n_img, k), dtype=bool)
        self.store = _TrialStore(n_img, k, n_img * min(config.min_trials, config.max_trials))
        self.error_maps = (np.zeros((n_img, k, ch, lat, lat), dtype=np.float32)
                           if config.keep_error_maps else None)

    def finish(self, slot: _Slot) -> None:
        import torch

        i = slot.index
        self.n_trials[i] = slot.n
        self.n_evals[i] = slot.n_evals
        self.remaining[i] = slot.remaining
        self.store.add(i, slot.errors[: slot.n])
        if self.error_maps is not None and slot.map_sum is not None and slot.map_count is not None:
            cnt = torch.from_numpy(np.maximum(slot.map_count, 1)).to(self.device).float()
            self.error_maps[i] = (slot.map_sum / cnt.view(-1, 1, 1, 1)).cpu().numpy()
        for callback in self.callbacks:
            callback(i)

    def result(self, model: DiffusionModel, config: ClassifyConfig, plan: _TimestepPlan,
               labels: np.ndarray | None, radius: int) -> ClassificationResult:
        col = _trial_column(self.n_trials)
        return ClassificationResult(
            class_names=model.class_names,
            config=config,
            trial_errors=self.store.in_image_order(self.n_trials),
            trial_timesteps=plan.t_order[col].astype(np.int32),
            trial_weights=plan.w_order[col].astype(np.float32),
            n_trials=self.n_trials,
            n_evals=self.n_evals,
            remaining=self.remaining,
            labels=labels,
            error_maps=self.error_maps,
            mask_radius=radius,
            num_train_timesteps=int(model.scheduler.config.num_train_timesteps),
        )


# ------------------------------------------------------------------------------------------------
# the steps of one trial


def _admit(queue: deque[int], active: list[_Slot], model: DiffusionModel, config: ClassifyConfig,
           first_index: int) -> None:
    """Move images from the queue into flight while their classes fit in one UNet batch."""
    import torch

    k, ch, lat = model.n_classes, model.config.latent_channels, model.config.latent_size
    load = sum(int(s.remaining.sum()) for s in active)
    while queue and (not active or load + k <= config.batch_size):
        i = queue.popleft()
        gen = torch.Generator().manual_seed(_image_seed(config.seed, first_index + i))
        slot = _Slot(
            index=i, gen=gen, remaining=np.ones(k, dtype=bool),
            errors=np.full((config.max_trials, k), np.nan, dtype=np.float32),
        )
        if config.keep_error_maps:
            slot.map_sum = torch.zeros(k, ch, lat, lat, device=model.device)
            slot.map_count = np.zeros(k, dtype=np.int64)
        active.append(slot)
        load += k


def _encode(model: DiffusionModel, arr: np.ndarray, active: list[_Slot], config: ClassifyConfig,
            tta: augment.AugmentConfig | None
            ) -> tuple[torch.Tensor, augment.GeometryParams | None]:
    """``(a, C, h, w)`` clean latents of this trial, and the augmentation's geometry.

    Each image gets a fresh augmentation and encode from its own generator; when neither is
    random (no augmentation, posterior mean) its latent is encoded once and cached.
    """
    import torch

    ch, lat = model.config.latent_channels, model.config.latent_size
    cache = not config.tta and not config.stochastic_encode
    z0 = torch.empty(len(active), ch, lat, lat, device=model.device)
    todo = [j for j, s in enumerate(active) if not (cache and s.z0 is not None)]
    for j, s in enumerate(active):
        if j not in todo:
            z0[j] = s.z0  # type: ignore[assignment]
    params = None
    if todo:
        gens = [active[j].gen for j in todo]
        x = augment.to_tensor(arr[[active[j].index for j in todo]])
        if tta is not None:
            x, params = augment.augment_per_image(x, tta, generators=gens)
        z = model.encode(x, sample=config.stochastic_encode, generator=gens,
                         precision=config.encode_precision)
        for jj, j in enumerate(todo):
            z0[j] = z[jj]
            if cache:
                active[j].z0 = z[jj].clone()
    return z0, params


def _add_noise(z0: torch.Tensor, active: list[_Slot], plan: _TimestepPlan
               ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, torch.Tensor]:
    """Noise ``eps``, trial numbers, timesteps and noisy latents ``z_t`` of this trial."""
    import torch

    device = z0.device
    eps = torch.stack([torch.randn(z0.shape[1:], generator=s.gen) for s in active]).to(device)
    t_idx = np.array([s.n for s in active])
    tt = torch.from_numpy(plan.t_order[t_idx])
    zt = (plan.sqrt_ab[tt].view(-1, 1, 1, 1).to(device) * z0
          + plan.sqrt_1mab[tt].view(-1, 1, 1, 1).to(device) * eps)
    return eps, t_idx, tt, zt


def _pairs(active: list[_Slot]) -> tuple[np.ndarray, np.ndarray]:
    """The (image in flight, class) pairs still in play, image by image."""
    pair_img = np.concatenate([np.full(int(s.remaining.sum()), j) for j, s in enumerate(active)])
    pair_cls = np.concatenate([np.flatnonzero(s.remaining) for s in active])
    return pair_img, pair_cls


def _unet_errors(model: DiffusionModel, zt: torch.Tensor, tt: torch.Tensor, eps: torch.Tensor,
                 mask: torch.Tensor, pair_img: np.ndarray, pair_cls: np.ndarray,
                 config: ClassifyConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per pair, ``sum (eps - eps_theta)^2`` inside the mask, and the masked difference maps."""
    import torch

    device = model.device
    ch, lat = model.config.latent_channels, model.config.latent_size
    pi = torch.from_numpy(pair_img).to(device)
    pc = torch.from_numpy(pair_cls).to(device)
    sq = torch.empty(len(pair_img), device=device)
    maps = (torch.empty(len(pair_img), ch, lat, lat, device=device)
            if config.keep_error_maps else None)
    for lo in range(0, len(pair_img), config.batch_size):
        hi = min(lo + config.batch_size, len(pair_img))
        bi, bc = pi[lo:hi], pc[lo:hi]
        cond = model.conditioning(bc)
        pred = model.unet(
            zt[bi].to(model.unet.dtype), tt.to(device)[bi], encoder_hidden_states=cond,
            **model.unet_kwargs(cond),
        ).sample.float()
        diff = (eps[bi] - pred) * mask
        sq[lo:hi] = diff.square().sum(dim=(1, 2, 3))
        if maps is not None:
            maps[lo:hi] = diff
    return sq, maps


def _add_error_maps(active: list[_Slot], maps: torch.Tensor,
                    params: augment.GeometryParams | None, pair_img: np.ndarray,
                    pair_cls: np.ndarray, mask: torch.Tensor) -> None:
    """Add each pair's difference map, rotated back to the image's orientation, to its class."""
    import torch

    if params is not None:
        maps = augment.invert_geometry(maps, params[torch.from_numpy(pair_img)]) * mask
    for j, s in enumerate(active):
        sel = torch.from_numpy(np.flatnonzero(pair_img == j)).to(maps.device)
        cls = torch.from_numpy(pair_cls[pair_img == j]).to(maps.device)
        s.map_sum.index_add_(0, cls, maps[sel])  # type: ignore[union-attr]
        s.map_count[pair_cls[pair_img == j]] += 1  # type: ignore[index]


def _update_and_prune(active: list[_Slot], weighted: np.ndarray, config: ClassifyConfig,
                      finish: Callable[[_Slot], None]) -> list[_Slot]:
    """Record the trial, run the pruning test when due, finish images; the images still running."""
    still: list[_Slot] = []
    for j, s in enumerate(active):
        s.errors[s.n] = weighted[j]
        s.n_evals += int(s.remaining.sum())
        s.n += 1
        s.remaining = decide(s.errors[: s.n], s.remaining, config)
        if s.remaining.sum() <= 1 or s.n >= config.max_trials:
            finish(s)
        else:
            still.append(s)
    return still
