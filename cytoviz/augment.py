"""Image augmentations shared by diffusion training, the baseline and test-time augmentation.

Built on kornia (METHOD.md section 4): random flips (horizontal, vertical and diagonal, i.e. a
transpose), rotation uniform in ``[0, 359]`` degrees (or multiples of 90), colour jitter
(brightness, contrast, saturation 0.25, hue 0.125, torchvision conventions) and optionally
RandAugment.

All functions work on float tensors ``(N, C, H, W)``; images use the range ``[-1, 1]``
(:func:`to_tensor` / :func:`to_uint8` convert from and to ``uint8`` arrays). Every random choice
is drawn from an optional :class:`torch.Generator`, so a seeded generator gives the same result
every time.

The geometric part is invertible, for the test-time augmentation of the classifier: draw
parameters with :func:`sample_geometry`, apply them to an image with :func:`apply_geometry`, and
undo them on a latent error map of any size with :func:`invert_geometry`. Flips and rotations by
multiples of 90 degrees invert exactly; other angles invert exactly inside the central disc (the
corners are filled by reflection and interpolated).

torch and kornia are imported inside the functions, so importing :class:`AugmentConfig` (e.g. into
another config) stays light.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from cytoviz._config import Config

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

__all__ = [
    "AugmentConfig",
    "GeometryParams",
    "apply_geometry",
    "augment",
    "augment_per_image",
    "augment_with_params",
    "color_jitter",
    "invert_geometry",
    "random_zoom",
    "sample_geometry",
    "to_tensor",
    "to_uint8",
]

PADDING_MODES = ("reflection", "border", "zeros")


@dataclasses.dataclass(frozen=True)
class AugmentConfig(Config):
    """Which augmentations to apply, and how strongly.

    Parameters
    ----------
    hflip, vflip, diagonal_flip
        Flip left-right, top-bottom, or transpose (swap the axes), each with probability
        ``flip_p``.
    flip_p
        Probability of each flip.
    rotation
        ``(low, high)`` range in degrees of the uniform random rotation; ``(0, 0)`` switches
        rotation off.
    rotation90
        Rotate by a random multiple of 90 degrees instead (exact, no interpolation).
    color_jitter
        ``(brightness, contrast, saturation, hue)`` strengths, torchvision conventions: factors
        uniform in ``[1 - s, 1 + s]`` for the first three, a hue shift uniform in
        ``[-hue, hue]`` turns (``hue <= 0.5``). All zeros switches jitter off.
    color_jitter_p
        Probability that an image is colour-jittered.
    randaugment
        Also apply kornia's RandAugment (``randaugment_n`` operations of magnitude
        ``randaugment_m``, out of 30).
    randaugment_n, randaugment_m
        Number of operations per image and their magnitude.
    zoom
        ``(low, high)`` range of a random magnification about the image centre, drawn
        log-uniformly (``(1, 1)``, the default, switches it off). Not in METHOD.md: a training
        augmentation against another microscope's magnification (the ``"strong"`` domain's
        0.85x). Applied after the colour changes; :func:`augment_with_params` refuses it,
        because :func:`invert_geometry` could not undo it.
    padding_mode
        How rotation fills the corners: ``"reflection"`` (default, suits centred cells on a
        background), ``"border"`` or ``"zeros"``.
    """

    hflip: bool = True
    vflip: bool = True
    diagonal_flip: bool = True
    flip_p: float = 0.5
    rotation: tuple[float, float] = (0.0, 359.0)
    rotation90: bool = False
    color_jitter: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.125)
    color_jitter_p: float = 1.0
    randaugment: bool = False
    randaugment_n: int = 2
    randaugment_m: int = 9
    zoom: tuple[float, float] = (1.0, 1.0)
    padding_mode: str = "reflection"

    def validate(self) -> None:
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"flip_p must lie in [0, 1], got {self.flip_p}")
        if len(self.rotation) != 2 or self.rotation[0] > self.rotation[1]:
            raise ValueError(
                f"rotation must be a (low, high) range in degrees with low <= high, got {self.rotation}"
            )
        if len(self.color_jitter) != 4:
            raise ValueError(
                "color_jitter must be (brightness, contrast, saturation, hue), "
                f"got {self.color_jitter}"
            )
        b, c, s, h = self.color_jitter
        for name, v in (("brightness", b), ("contrast", c), ("saturation", s)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"color_jitter {name} must lie in [0, 1], got {v}")
        if not 0.0 <= h <= 0.5:
            raise ValueError(f"color_jitter hue must lie in [0, 0.5] turns, got {h}")
        if not 0.0 <= self.color_jitter_p <= 1.0:
            raise ValueError(f"color_jitter_p must lie in [0, 1], got {self.color_jitter_p}")
        if self.randaugment_n < 1:
            raise ValueError(f"randaugment_n must be at least 1, got {self.randaugment_n}")
        if not 0 <= self.randaugment_m <= 30:
            raise ValueError(f"randaugment_m must lie in [0, 30], got {self.randaugment_m}")
        if len(self.zoom) != 2 or not 0.5 <= self.zoom[0] <= self.zoom[1] <= 2.0:
            raise ValueError(
                f"zoom must be a (low, high) range with 0.5 <= low <= high <= 2, got {self.zoom}"
            )
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {self.padding_mode!r}")

    @classmethod
    def none(cls) -> AugmentConfig:
        """A config that changes nothing (all augmentations off)."""
        return cls(
            hflip=False, vflip=False, diagonal_flip=False, rotation=(0.0, 0.0),
            color_jitter=(0.0, 0.0, 0.0, 0.0), randaugment=False,
        )

    @classmethod
    def test_time(cls, *, rotation90: bool = False) -> AugmentConfig:
        """The diffusion classifier's test-time augmentation (METHOD.md section 3).

        Horizontal and vertical flips (50 % each, no diagonal flip), a rotation uniform in
        ``[0, 359]`` degrees (or, with ``rotation90``, by a multiple of 90 degrees, exact) and
        colour jitter ``(0.25, 0.25, 0.25, 0.125)`` on every image; apply it with
        :func:`augment_per_image`.
        """
        return cls(
            hflip=True, vflip=True, diagonal_flip=False, flip_p=0.5,
            rotation=(0.0, 359.0), rotation90=rotation90,
            color_jitter=(0.25, 0.25, 0.25, 0.125), color_jitter_p=1.0,
        )

    @property
    def is_identity(self) -> bool:
        """True when no augmentation is switched on."""
        return (
            not (self.hflip or self.vflip or self.diagonal_flip)
            and not self.rotation90
            and self.rotation[0] == self.rotation[1] == 0.0
            and not any(self.color_jitter)
            and not self.randaugment
            and not self.zooms
        )

    @property
    def zooms(self) -> bool:
        """True when the random magnification is switched on."""
        return tuple(self.zoom) != (1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class GeometryParams:
    """Per-image geometric augmentation, applied in the order transpose, hflip, vflip, rotate.

    Attributes
    ----------
    angle
        ``(N,)`` rotation angles in degrees (counter-clockwise).
    hflip, vflip, transpose
        ``(N,)`` booleans.
    padding_mode
        How rotation fills the corners.
    """

    angle: torch.Tensor
    hflip: torch.Tensor
    vflip: torch.Tensor
    transpose: torch.Tensor
    padding_mode: str = "reflection"

    def __len__(self) -> int:
        return int(self.angle.shape[0])

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> GeometryParams:
        if isinstance(index, int):
            index = slice(index, index + 1)
        return GeometryParams(
            angle=self.angle[index], hflip=self.hflip[index], vflip=self.vflip[index],
            transpose=self.transpose[index], padding_mode=self.padding_mode,
        )

    @classmethod
    def identity(cls, n: int, padding_mode: str = "reflection") -> GeometryParams:
        """Parameters that change nothing, for ``n`` images."""
        import torch

        zeros = torch.zeros(n, dtype=torch.bool)
        return cls(torch.zeros(n), zeros, zeros.clone(), zeros.clone(), padding_mode)


# --------------------------------------------------------------------------------------------
# conversion


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """Convert ``uint8`` images ``(N, H, W, 3)`` (or one ``(H, W, 3)``) to float ``(N, 3, H, W)`` in ``[-1, 1]``."""
    import torch

    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"to_tensor expects uint8 images, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"to_tensor expects images of shape (N, H, W, 3), got {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Convert float ``(N, 3, H, W)`` in ``[-1, 1]`` back to ``uint8`` ``(N, H, W, 3)`` (clipped, rounded)."""
    import torch

    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"to_uint8 expects a (N, 3, H, W) tensor, got shape {tuple(x.shape)}")
    y = ((x.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return y.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _check_batch(x: torch.Tensor, name: str = "x") -> None:
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch tensor (N, C, H, W), got {type(x).__name__}; "
            "convert uint8 images with cytoviz.augment.to_tensor"
        )
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------
# geometry


def sample_geometry(
    n: int, config: AugmentConfig = AugmentConfig(), generator: torch.Generator | None = None
) -> GeometryParams:
    """Draw random flips and rotation angles for ``n`` images.

    Parameters
    ----------
    n
        Number of images.
    config
        Which flips and which rotation range.
    generator
        Source of randomness (a seeded generator makes the draw reproducible).

    Returns
    -------
    GeometryParams
        Apply with :func:`apply_geometry`, undo with :func:`invert_geometry`.
    """
    import torch

    # Always draw the same number of values, so that switching one option does not shift the
    # random stream of the others.
    u = torch.rand(n, 5, generator=generator)
    hflip = (u[:, 0] < config.flip_p) & config.hflip
    vflip = (u[:, 1] < config.flip_p) & config.vflip
    transpose = (u[:, 2] < config.flip_p) & config.diagonal_flip
    if config.rotation90:
        angle = torch.floor(u[:, 3] * 4).clamp(max=3) * 90.0
    else:
        lo, hi = config.rotation
        angle = lo + (hi - lo) * u[:, 4]
    return GeometryParams(angle.float(), hflip, vflip, transpose, config.padding_mode)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.where(mask.to(a.device).view(-1, 1, 1, 1), a, b)


def _transpose(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if not bool(mask.any()):
        return x
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"diagonal flips need square images, got {tuple(x.shape[-2:])}")
    return _where(mask, x.transpose(-1, -2), x)


def _rotate(x: torch.Tensor, angle: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Rotate counter-clockwise by ``angle`` degrees about the centre; multiples of 90 are exact."""
    import torch

    angle = angle.to(torch.float64)
    quarter = torch.remainder(angle, 360.0) / 90.0
    exact = torch.isclose(quarter, torch.round(quarter), atol=1e-9, rtol=0.0)
    k = torch.remainder(torch.round(quarter), 4).long()
    out = x
    need_interp = ~exact
    if bool(exact.any()):
        out = x.clone()
        for kk in (1, 2, 3):
            sel = exact & (k == kk)
            if bool(sel.any()):
                idx = torch.nonzero(sel).flatten().to(x.device)
                rotated = torch.rot90(x[idx], kk, dims=(-2, -1))
                if rotated.shape != x[idx].shape:
                    raise ValueError(
                        f"rotations by 90 degrees need square images, got {tuple(x.shape[-2:])}"
                    )
                out[idx] = rotated
    if bool(need_interp.any()):
        from kornia.geometry.transform import rotate

        idx = torch.nonzero(need_interp).flatten().to(x.device)
        sub = x[idx]
        rotated = rotate(
            sub.float(), angle[need_interp].to(device=x.device, dtype=torch.float32),
            mode="bilinear", padding_mode=padding_mode, align_corners=True,
        ).to(x.dtype)
        out = out.clone() if out is x else out
        out[idx] = rotated
    return out


def apply_geometry(x: torch.Tensor, params: GeometryParams) -> torch.Tensor:
    """Apply flips and rotations to any ``(N, C, H, W)`` tensor (images or latents).

    The order is transpose, horizontal flip, vertical flip, then rotation counter-clockwise
    about the centre.
    """
    _check_batch(x)
    if len(params) != x.shape[0]:
        raise ValueError(f"params are for {len(params)} images, x has {x.shape[0]}")
    x = _transpose(x, params.transpose)
    x = _where(params.hflip, x.flip(-1), x)
    x = _where(params.vflip, x.flip(-2), x)
    return _rotate(x, params.angle, params.padding_mode)


def invert_geometry(x: torch.Tensor, params: GeometryParams) -> torch.Tensor:
    """Undo :func:`apply_geometry` with the same parameters, on a tensor of any spatial size.

    Use it to bring per-trial error maps of an augmented image (e.g. latents, which are smaller
    than the image) back to the orientation of the original image.
    """
    _check_batch(x)
    if len(params) != x.shape[0]:
        raise ValueError(f"params are for {len(params)} images, x has {x.shape[0]}")
    x = _rotate(x, -params.angle, params.padding_mode)
    x = _where(params.vflip, x.flip(-2), x)
    x = _where(params.hflip, x.flip(-1), x)
    return _transpose(x, params.transpose)


# --------------------------------------------------------------------------------------------
# colour


def color_jitter(
    x: torch.Tensor, config: AugmentConfig = AugmentConfig(), generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue changes (torchvision conventions).

    Parameters
    ----------
    x
        ``(N, 3, H, W)`` images in ``[-1, 1]``.
    config
        ``config.color_jitter`` gives the strengths and ``config.color_jitter_p`` the probability.
    generator
        Source of randomness.

    Returns
    -------
    torch.Tensor
        Jittered images, still in ``[-1, 1]``. The four operations run in a random order (one
        order per call), as in torchvision's ``ColorJitter``.
    """
    import torch

    _check_batch(x)
    if x.shape[1] != 3:
        raise ValueError(f"color_jitter needs RGB images (N, 3, H, W), got {tuple(x.shape)}")
    b, c, s, h = config.color_jitter
    n = x.shape[0]
    u = torch.rand(n, 5, generator=generator)
    order = torch.randperm(4, generator=generator).tolist()
    if not any((b, c, s, h)) or config.color_jitter_p == 0.0:
        return x
    from kornia.color import rgb_to_grayscale
    from kornia.enhance import adjust_hue

    apply = (u[:, 4] < config.color_jitter_p).view(-1, 1, 1, 1).to(x.device)
    img = ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    out = img
    factors = [1.0 + strength * (2.0 * u[:, i] - 1.0) for i, strength in enumerate((b, c, s))]
    hue = h * (2.0 * u[:, 3] - 1.0)
    for op in order:
        if op == 0 and b:
            out = (out * factors[0].view(-1, 1, 1, 1).to(x.device)).clamp(0.0, 1.0)
        elif op == 1 and c:
            f = factors[1].view(-1, 1, 1, 1).to(x.device)
            mean = rgb_to_grayscale(out).mean(dim=(-3, -2, -1), keepdim=True)
            out = (out * f + mean * (1.0 - f)).clamp(0.0, 1.0)
        elif op == 2 and s:
            f = factors[2].view(-1, 1, 1, 1).to(x.device)
            grey = rgb_to_grayscale(out)
            out = (out * f + grey * (1.0 - f)).clamp(0.0, 1.0)
        elif op == 3 and h:
            out = adjust_hue(out, (2.0 * math.pi * hue).to(x.device)).clamp(0.0, 1.0)
    out = torch.where(apply, out, img)
    return (out * 2.0 - 1.0).to(x.dtype)


def _randaugment(
    x: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """kornia's RandAugment, seeded from ``generator`` (it draws from the global torch RNG)."""
    import torch
    from kornia.augmentation.auto import RandAugment

    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    op = RandAugment(n=config.randaugment_n, m=config.randaugment_m)
    img = ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = op(img)
    return (out.clamp(0.0, 1.0) * 2.0 - 1.0).to(x.dtype)


# --------------------------------------------------------------------------------------------
# everything


def augment_with_params(
    x: torch.Tensor,
    config: AugmentConfig = AugmentConfig(),
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, GeometryParams]:
    """Like :func:`augment`, also returning the geometry so that it can be undone.

    Returns
    -------
    (torch.Tensor, GeometryParams)
        The augmented images and the flips/rotations applied to them.

    Raises
    ------
    ValueError
        If ``config.zoom`` is on: a magnification is not part of :class:`GeometryParams`.
    """
    _check_batch(x)
    if config.zooms:
        raise ValueError(
            f"augment_with_params cannot return an invertible geometry with zoom={config.zoom}; "
            "use augment() (training) or set zoom=(1.0, 1.0)"
        )
    return _augment(x, config, generator)


def augment_per_image(
    x: torch.Tensor,
    config: AugmentConfig,
    *,
    generators: Sequence[torch.Generator],
) -> tuple[torch.Tensor, GeometryParams]:
    """Flip, rotate and colour-jitter each image from its own generator; undoable geometry.

    The test-time augmentation of the classifier: image ``j`` draws its flips, angle and
    colour jitter from ``generators[j]`` only, so its augmentation does not depend on which
    other images share the batch. The geometry is applied to the whole batch at once.

    Parameters
    ----------
    x
        ``(N, 3, H, W)`` float images in ``[-1, 1]``.
    config
        Flips, rotation and colour jitter (e.g. :meth:`AugmentConfig.test_time`).
    generators
        ``N`` generators, one per image.

    Returns
    -------
    (torch.Tensor, GeometryParams)
        The augmented images, clamped to ``[-1, 1]``, and their flips and rotations (undo them
        with :func:`invert_geometry`).

    Raises
    ------
    ValueError
        For a generator count other than ``N``, or a config with RandAugment or zoom (not
        drawn per image, and not undoable).
    """
    import torch

    _check_batch(x)
    if len(generators) != x.shape[0]:
        raise ValueError(f"need one generator per image: {x.shape[0]} images, "
                         f"{len(generators)} generators")
    if config.randaugment or config.zooms:
        raise ValueError("augment_per_image applies flips, rotation and colour jitter only; "
                         "switch randaugment and zoom off")
    ps = [sample_geometry(1, config, g) for g in generators]
    params = GeometryParams(
        angle=torch.cat([p.angle for p in ps]), hflip=torch.cat([p.hflip for p in ps]),
        vflip=torch.cat([p.vflip for p in ps]), transpose=torch.cat([p.transpose for p in ps]),
        padding_mode=config.padding_mode,
    )
    out = apply_geometry(x, params)
    out = torch.cat([color_jitter(out[j: j + 1], config, g) for j, g in enumerate(generators)])
    return out.clamp(-1.0, 1.0), params


def _augment(
    x: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None
) -> tuple[torch.Tensor, GeometryParams]:
    params = sample_geometry(x.shape[0], config, generator)
    out = apply_geometry(x, params)
    out = color_jitter(out, config, generator)
    if config.randaugment:
        out = _randaugment(out, config, generator)
    if config.zooms:
        out = random_zoom(out, config.zoom, config.padding_mode, generator)
    return out.clamp(-1.0, 1.0), params


def random_zoom(
    x: torch.Tensor,
    zoom: tuple[float, float],
    padding_mode: str = "reflection",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Magnify each image about its centre by a factor drawn log-uniformly from ``zoom``.

    A factor below 1 shrinks the content (the border is filled by ``padding_mode``), above 1
    enlarges it (the outside is cut off). Bilinear, one draw per image from ``generator``.
    """
    import torch
    from kornia.geometry.transform import scale

    _check_batch(x)
    lo, hi = math.log(zoom[0]), math.log(zoom[1])
    u = torch.rand(x.shape[0], generator=generator)
    factor = torch.exp(lo + (hi - lo) * u).to(device=x.device, dtype=torch.float32)
    out = scale(x.float(), factor[:, None].expand(-1, 2).contiguous(), mode="bilinear",
                padding_mode=padding_mode, align_corners=True)
    return out.to(x.dtype)


def augment(
    x: torch.Tensor,
    config: AugmentConfig = AugmentConfig(),
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Randomly flip, rotate and colour-jitter a batch of images (RandAugment and zoom if enabled).

    Parameters
    ----------
    x
        ``(N, 3, H, W)`` float images in ``[-1, 1]`` (see :func:`to_tensor`).
    config
        Which augmentations and how strong.
    generator
        Source of randomness; the same seed gives the same output.

    Returns
    -------
    torch.Tensor
        Augmented images, same shape, in ``[-1, 1]``.
    """
    _check_batch(x)
    return _augment(x, config, generator)[0]
