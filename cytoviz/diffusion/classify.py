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

from cytoviz._config import Config
from cytoviz.diffusion.weighting import MULTIPLICATIVE, N_BUCKETS, POLY_COEFFS, WEIGHTINGS

if TYPE_CHECKING:
    import torch

    from cytoviz.data import CellDataset
    from cytoviz.diffusion.model import DiffusionModel
    from cytoviz.diffusion.result import ClassificationResult

__all__ = ["ClassifyConfig", "classify", "default_mask_radius", "latent_mask", "prune"]

#: Mask radius of the paper on its 45 x 45 latent (360 px images).
PAPER_RADIUS, PAPER_LATENT = 20, 45
TTA_ROTATIONS = ("any", "right")
ENCODE_PRECISIONS = ("auto", "float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class ClassifyConfig(Config):
    """Settings of the diffusion classifier (defaults: the paper's).

    Parameters
    ----------
    min_trials
        Trials before the first pruning test (20).
    max_trials
        Largest number of trials per image (2000); also the length of the timestep grid.
    prune_every
        Test for pruning every this many trials after ``min_trials`` (5).
    p_threshold
        Drop a class when the paired t-test against the best class gives ``p`` below this
        and its mean error is higher (2e-3).
    pruning
        ``False`` gives every class every trial (``max_trials`` each; the heatmap runs).
    weighting
        Timestep weighting, one of :data:`~cytoviz.diffusion.weighting.WEIGHTINGS`.
    poly_coeffs
        Coefficients of the ``"polynomial"`` weighting's ``f(s)``, increasing powers (the
        paper's, or refitted with :func:`~cytoviz.diffusion.weighting.fit_weighting`).
    bucket_weights
        The 20 weights of the ``"logistic"`` weighting
        (:func:`~cytoviz.diffusion.weighting.fit_logistic_weighting`).
    tta
        Fresh test-time augmentation per trial: flips (50 % each), rotation, colour jitter
        (0.25, 0.25, 0.25, hue 0.125); the error maps are rotated back before accumulating.
    tta_rotation
        ``"any"``: uniform in [0, 359] degrees; ``"right"``: multiples of 90 degrees (exact).
    stochastic_encode
        Sample the VAE posterior each trial (``latent_dist.sample()``) instead of its mean.
    mask_radius
        Radius in latent pixels of the centre disc where errors count. ``None``: the paper's
        20 on a 45-wide latent scaled to this latent, ``round(20 / 45 * L)`` (7 for L = 16;
        the 224 px reference runs used 8 on 28 x 28, where this rule gives 12: pass
        ``mask_radius=8`` to reproduce them). ``0`` or less is refused; a radius of at least
        ``L`` covers the whole latent.
    batch_size
        (image, class) pairs per UNet forward pass.
    seed
        Seed of the timestep shuffle and of every image's noise, encode and augmentation.
    keep_error_maps
        Accumulate the per-class mean latent error maps (``(N, K, C, h, w)`` float32) for
        counterfactual heatmaps.
    device
        Torch device to run on (``None``: the model's).
    encode_precision
        Arithmetic of the per-trial VAE encode: ``"float32"`` (the default, as the reference
        code), ``"bfloat16"`` (autocast), or ``"auto"``: ``"bfloat16"`` on a CPU with native
        bfloat16 instructions (AVX512-BF16 or AMX) running a float32 VAE, else ``"float32"``.
        The result records the resolved value. The bfloat16 encode is an opt-in speed-up, not
        in METHOD.md: the encode at full image resolution costs about two to three UNet
        evaluations of the tiny model and caps the engine's efficiency
        (``benchmarks/classify_engine.py`` measures both encodes); bfloat16 rounding is small
        next to the differences between test-time augmentations of one image, and every class
        of a trial shares it. The UNet, whose errors decide the class, stays
        float32.
    """

    min_trials: int = 20
    max_trials: int = 2000
    prune_every: int = 5
    p_threshold: float = 2e-3
    pruning: bool = True
    weighting: str = "polynomial"
    poly_coeffs: tuple[float, ...] = POLY_COEFFS
    bucket_weights: tuple[float, ...] | None = None
    tta: bool = True
    tta_rotation: str = "any"
    stochastic_encode: bool = True
    mask_radius: int | None = None
    batch_size: int = 64
    seed: int = 0
    keep_error_maps: bool = True
    device: str | None = None
    encode_precision: str = "float32"

    def resolved(self, model: DiffusionModel) -> ClassifyConfig:
        """This config with ``encode_precision="auto"`` replaced by what it means for ``model``.

        The result of :func:`classify` records the resolved config; compare against this.
        """
        import torch

        device = torch.device(self.device) if self.device is not None else model.device
        precision = resolve_encode_precision(self.encode_precision, device, model.vae.dtype)
        return dataclasses.replace(self, encode_precision=precision)

    def validate(self) -> None:
        if self.min_trials < 2:
            raise ValueError(f"min_trials must be >= 2 (a t-test needs 2 trials), got {self.min_trials}")
        if self.max_trials < self.min_trials:
            raise ValueError(
                f"max_trials ({self.max_trials}) must be >= min_trials ({self.min_trials})"
            )
        if self.prune_every < 1:
            raise ValueError(f"prune_every must be >= 1, got {self.prune_every}")
        if not 0.0 < self.p_threshold < 1.0:
            raise ValueError(f"p_threshold must lie in (0, 1), got {self.p_threshold}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.weighting == "polynomial" and len(self.poly_coeffs) < 1:
            raise ValueError("poly_coeffs is empty; pass the coefficients of f(s)")
        if self.weighting == "logistic" and (
            self.bucket_weights is None or len(self.bucket_weights) != N_BUCKETS
        ):
            raise ValueError(
                f"weighting='logistic' needs bucket_weights with {N_BUCKETS} values (fit them "
                "with cytoviz.diffusion.fit_logistic_weighting)"
            )
        if self.tta_rotation not in TTA_ROTATIONS:
            raise ValueError(f"tta_rotation must be one of {TTA_ROTATIONS}, got {self.tta_rotation!r}")
        if self.mask_radius is not None and self.mask_radius <= 0:
            raise ValueError(f"mask_radius must be positive or None, got {self.mask_radius}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.encode_precision not in ENCODE_PRECISIONS:
            raise ValueError(
                f"encode_precision must be one of {ENCODE_PRECISIONS}, got {self.encode_precision!r}"
            )


def resolve_encode_precision(precision: str, device: Any, vae_dtype: Any) -> str:
    """The encode arithmetic that ``precision`` means on ``device`` for a VAE of ``vae_dtype``.

    ``"auto"`` gives ``"bfloat16"`` only on a CPU with native bfloat16 instructions (where
    autocast is fast; elsewhere it is emulated and slower) and a float32 VAE.
    """
    import torch

    if precision not in ENCODE_PRECISIONS:
        raise ValueError(f"encode_precision must be one of {ENCODE_PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if torch.device(device).type != "cpu" or vae_dtype != torch.float32:
        return "float32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bfloat16" if native else "float32"


def default_mask_radius(latent_size: int) -> int:
    """The paper's radius (20 on a 45-wide latent) scaled to ``latent_size``, at least 1."""
    return max(1, round(PAPER_RADIUS / PAPER_LATENT * latent_size))


def latent_mask(latent_size: int, radius: int | None = None) -> np.ndarray:
    """Boolean ``(L, L)`` disc of latent pixels whose distance to the centre is ``<= radius``.

    The centre is ``((L - 1) / 2, (L - 1) / 2)``, so the disc is symmetric under flips and
    rotations by 90 degrees (the test-time augmentations map it onto itself).
    """
    if latent_size < 1:
        raise ValueError(f"latent_size must be positive, got {latent_size}")
    r = default_mask_radius(latent_size) if radius is None else radius
    c = (latent_size - 1) / 2.0
    yy, xx = np.mgrid[:latent_size, :latent_size]
    return (yy - c) ** 2 + (xx - c) ** 2 <= r * r


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
        ``(K,)`` booleans: a class is dropped when the paired t-test
        (``scipy.stats.ttest_rel``) against the class with the lowest mean gives
        ``p < p_threshold`` and its mean is higher.
    """
    from scipy.stats import ttest_rel

    remaining = np.asarray(remaining, dtype=bool)
    idx = np.flatnonzero(remaining)
    if idx.size < 2 or errors.shape[0] < 2:
        return remaining.copy()
    sub = np.asarray(errors, dtype=np.float64)[:, idx]
    means = sub.mean(axis=0)
    best = int(np.argmin(means))
    others = np.delete(np.arange(idx.size), best)
    with np.errstate(invalid="ignore", divide="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = ttest_rel(sub[:, others], np.broadcast_to(sub[:, [best]], (sub.shape[0], others.size)),
                            axis=0)
    p = np.asarray(res.pvalue)
    drop = (p < p_threshold) & (means[others] > means[best])
    out = remaining.copy()
    out[idx[others[drop]]] = False
    return out


# ------------------------------------------------------------------------------------------------
# inputs


def _as_images(images: Any, labels: Any, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    from cytoviz.data import CellDataset

    if isinstance(images, CellDataset):
        if tuple(images.class_names) != tuple(class_names):
            raise ValueError(
                f"the data set's classes {list(images.class_names)} differ from the model's "
                f"{list(class_names)}; relabel it with dataset.select_classes(model.class_names)"
            )
        if labels is None:
            labels = images.labels
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


# ------------------------------------------------------------------------------------------------
# the engine


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
        A :class:`~cytoviz.data.CellDataset` (its labels are kept) or ``uint8`` images
        ``(N, H, W, 3)`` of the model's image size (or of its ``input_crop``; see
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
        (the ``cytoviz classify`` command's resumable chunks do this).
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

    from cytoviz.diffusion.result import ClassificationResult
    from cytoviz.diffusion.weighting import weight_errors

    config = config or ClassifyConfig()
    if isinstance(first_index, bool) or not isinstance(first_index, int | np.integer) or first_index < 0:
        raise ValueError(f"first_index must be a non-negative integer, got {first_index!r}")
    arr, labels = _as_images(images, labels, model.class_names)
    arr = model.crop_input(arr)
    if config.device is not None and torch.device(config.device) != model.device:
        model.to(config.device)
    device = model.device
    model.eval()
    config = config.resolved(model)
    precision = config.encode_precision

    k = model.n_classes
    n_img = arr.shape[0]
    t_total = int(model.scheduler.config.num_train_timesteps)
    lat = model.config.latent_size
    ch = model.config.latent_channels
    radius = config.mask_radius if config.mask_radius is not None else default_mask_radius(lat)
    mask_np = latent_mask(lat, radius)
    mask = torch.from_numpy(mask_np).to(device=device, dtype=torch.float32)

    # The stratified timestep grid, shuffled once (shared by all images).
    grid = np.rint(np.linspace(1, t_total - 1, config.max_trials)).astype(np.int64)
    t_order = grid[np.random.default_rng(config.seed).permutation(config.max_trials)]
    abar_np = model.scheduler.alphas_cumprod.detach().cpu().double().numpy()
    weight_kw: dict[str, Any] = {
        "poly_coeffs": config.poly_coeffs, "bucket_weights": config.bucket_weights,
        "alphas_cumprod": abar_np, "num_train_timesteps": t_total,
    }
    if config.weighting in MULTIPLICATIVE:
        from cytoviz.diffusion.weighting import timestep_weights

        w_order = timestep_weights(t_order, config.weighting, **weight_kw)
    else:
        w_order = np.full(config.max_trials, np.nan)
    sqrt_ab = torch.from_numpy(np.sqrt(abar_np)).float()
    sqrt_1mab = torch.from_numpy(np.sqrt(1.0 - abar_np)).float()

    aug_cfg = None
    if config.tta:
        from cytoviz.augment import AugmentConfig

        aug_cfg = AugmentConfig(
            hflip=True, vflip=True, diagonal_flip=False, flip_p=0.5,
            rotation=(0.0, 359.0), rotation90=config.tta_rotation == "right",
            color_jitter=(0.25, 0.25, 0.25, 0.125), color_jitter_p=1.0,
        )
    cache_latent = not config.tta and not config.stochastic_encode

    # Per-image outputs (the only arrays that grow with the data set).
    n_trials = np.zeros(n_img, dtype=np.int64)
    n_evals = np.zeros(n_img, dtype=np.int64)
    remaining_out = np.zeros((n_img, k), dtype=bool)
    store = _TrialStore(n_img, k, n_img * min(config.min_trials, config.max_trials))
    error_maps = (
        np.zeros((n_img, k, ch, lat, lat), dtype=np.float32) if config.keep_error_maps else None
    )

    queue = deque(range(n_img))
    active: list[_Slot] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_img, desc="classify", unit="img")

    def admit() -> None:
        load = sum(int(s.remaining.sum()) for s in active)
        while queue and (not active or load + k <= config.batch_size):
            i = queue.popleft()
            gen = torch.Generator().manual_seed(_image_seed(config.seed, first_index + i))
            slot = _Slot(
                index=i, gen=gen, remaining=np.ones(k, dtype=bool),
                errors=np.full((config.max_trials, k), np.nan, dtype=np.float32),
            )
            if config.keep_error_maps:
                slot.map_sum = torch.zeros(k, ch, lat, lat, device=device)
                slot.map_count = np.zeros(k, dtype=np.int64)
            active.append(slot)
            load += k

    def finish(slot: _Slot) -> None:
        i = slot.index
        n_trials[i] = slot.n
        n_evals[i] = slot.n_evals
        remaining_out[i] = slot.remaining
        store.add(i, slot.errors[: slot.n])
        if error_maps is not None and slot.map_sum is not None and slot.map_count is not None:
            cnt = torch.from_numpy(np.maximum(slot.map_count, 1)).to(device).float()
            error_maps[i] = (slot.map_sum / cnt.view(-1, 1, 1, 1)).cpu().numpy()
        if bar is not None:
            bar.update(1)
        if image_callback is not None:
            image_callback(i)

    with torch.inference_mode():
        while queue or active:
            admit()
            a = len(active)
            # -- latents of this trial (augment, encode) ------------------------------------
            params = None
            z0 = torch.empty(a, ch, lat, lat, device=device)
            todo = [j for j, s in enumerate(active) if not (cache_latent and s.z0 is not None)]
            for j, s in enumerate(active):
                if j not in todo:
                    z0[j] = s.z0  # type: ignore[assignment]
            if todo:
                from cytoviz.augment import to_tensor

                x = to_tensor(arr[[active[j].index for j in todo]])
                if aug_cfg is not None:
                    x, params = _augment(x, [active[j].gen for j in todo], aug_cfg)
                with torch.autocast(device.type, dtype=torch.bfloat16,
                                    enabled=precision == "bfloat16"):
                    dist = model.vae.encode(x.to(device, model.vae.dtype)).latent_dist
                z = dist.mean.float()
                if config.stochastic_encode:
                    noise = torch.stack([
                        torch.randn(z.shape[1:], generator=active[j].gen) for j in todo
                    ]).to(device)
                    z = z + dist.std.float() * noise
                z = z * model.scaling_factor
                for jj, j in enumerate(todo):
                    z0[j] = z[jj]
                    if cache_latent:
                        active[j].z0 = z[jj].clone()
            # -- noise and timesteps ----------------------------------------------------------
            eps = torch.stack([torch.randn(ch, lat, lat, generator=s.gen) for s in active]).to(device)
            t_idx = np.array([s.n for s in active])
            t = t_order[t_idx]
            tt = torch.from_numpy(t)
            zt = (sqrt_ab[tt].view(-1, 1, 1, 1).to(device) * z0
                  + sqrt_1mab[tt].view(-1, 1, 1, 1).to(device) * eps)
            # -- (image, class) pairs -------------------------------------------------------
            pair_img = np.concatenate([np.full(int(s.remaining.sum()), j) for j, s in enumerate(active)])
            pair_cls = np.concatenate([np.flatnonzero(s.remaining) for s in active])
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
            raw = np.full((a, k), np.nan)
            raw[pair_img, pair_cls] = sq.cpu().double().numpy()
            if config.weighting in MULTIPLICATIVE:
                weighted = raw * w_order[t_idx][:, None]
            else:
                weighted, _ = weight_errors(raw, t, config.weighting, **weight_kw)
            # -- error maps, augmentation undone ---------------------------------------------
            if maps is not None:
                if params is not None:
                    from cytoviz.augment import invert_geometry

                    maps = invert_geometry(maps, params[torch.from_numpy(pair_img)]) * mask
                for j, s in enumerate(active):
                    sel = torch.from_numpy(np.flatnonzero(pair_img == j)).to(device)
                    cls = torch.from_numpy(pair_cls[pair_img == j]).to(device)
                    s.map_sum.index_add_(0, cls, maps[sel])  # type: ignore[union-attr]
                    s.map_count[pair_cls[pair_img == j]] += 1  # type: ignore[index]
            # -- bookkeeping, pruning, finishing ---------------------------------------------
            still: list[_Slot] = []
            for j, s in enumerate(active):
                s.errors[s.n] = weighted[j]
                s.n_evals += int(s.remaining.sum())
                s.n += 1
                if (config.pruning and s.n >= config.min_trials
                        and (s.n - config.min_trials) % config.prune_every == 0):
                    s.remaining = prune(s.errors[: s.n], s.remaining, config.p_threshold)
                if s.remaining.sum() <= 1 or s.n >= config.max_trials:
                    finish(s)
                else:
                    still.append(s)
            active = still
    if bar is not None:
        bar.close()

    # Every image ran the first n_trials entries of the shared timestep order.
    trial_errors = store.in_image_order(n_trials)
    col = _trial_column(n_trials)
    return ClassificationResult(
        class_names=model.class_names,
        config=config,
        trial_errors=trial_errors,
        trial_timesteps=t_order[col].astype(np.int32),
        trial_weights=w_order[col].astype(np.float32),
        n_trials=n_trials,
        n_evals=n_evals,
        remaining=remaining_out,
        labels=labels,
        error_maps=error_maps,
        mask_radius=int(radius),
        num_train_timesteps=t_total,
    )


def _augment(x: torch.Tensor, gens: list[torch.Generator], cfg: Any) -> tuple[torch.Tensor, Any]:
    """Per-image test-time augmentation, each image from its own generator; geometry batched."""
    import torch

    from cytoviz.augment import GeometryParams, apply_geometry, color_jitter, sample_geometry

    ps = [sample_geometry(1, cfg, g) for g in gens]
    params = GeometryParams(
        angle=torch.cat([p.angle for p in ps]), hflip=torch.cat([p.hflip for p in ps]),
        vflip=torch.cat([p.vflip for p in ps]), transpose=torch.cat([p.transpose for p in ps]),
        padding_mode=cfg.padding_mode,
    )
    out = apply_geometry(x, params)
    out = torch.cat([color_jitter(out[j: j + 1], cfg, g) for j, g in enumerate(gens)])
    return out.clamp(-1.0, 1.0), params
