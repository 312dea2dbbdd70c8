"""The class-conditional latent diffusion model (VAE + UNet + DDPM scheduler).

The model is assembled from plain diffusers parts (STYLE.md, diffusers anchor), described by a
:class:`~cytoviz.diffusion.model_config.ModelConfig`, and saved in a diffusers-style folder::

    model_dir/
      cytoviz.json      ModelConfig, class names, format version
      unet/             UNet2DConditionModel (safetensors + config.json)
      vae/              AutoencoderKL (safetensors + config.json)
      scheduler/        DDPMScheduler config

Class conditioning follows METHOD.md section 1: the class is a one-hot vector of length K written
into the first K entries of a token row of width D, and that row is repeated for every token
(77 x 768 for Stable Diffusion 1.5). Soft labels (mixup) use the same slots; the all-zero row is the
unconditional ("null") condition used for classifier-free guidance.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from cytoviz._io import FORMAT_VERSION, load_json, save_json
from cytoviz._paths import MODEL_ENV, default_model_dir
from cytoviz.classes import check_class_names
from cytoviz.data import CellDataset
from cytoviz.diffusion.model_config import ModelConfig

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

__all__ = ["DiffusionModel", "ModelConfig", "default_model_path", "load_default_model"]


class DiffusionModel:
    """A class-conditional latent diffusion model: VAE, UNet, scheduler and class names.

    Build a new one with :meth:`build` (random weights), load a saved one with
    :meth:`from_pretrained`, or wrap a local Stable Diffusion 1.5 folder with :meth:`from_sd15`.

    Attributes
    ----------
    vae : diffusers.AutoencoderKL
    unet : diffusers.UNet2DConditionModel
    scheduler : diffusers.DDPMScheduler
        The training noise schedule (its ``alphas_cumprod`` define the forward process).
    class_names : tuple of str
    config : ModelConfig
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: DDPMScheduler,
        class_names: Sequence[str],
        config: ModelConfig,
    ) -> None:
        self.vae = vae
        self.unet = unet
        self.scheduler = scheduler
        self.class_names = tuple(class_names)
        self.config = config
        if len(self.class_names) < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {self.class_names}")
        if len(self.class_names) > self.token_dim:
            raise ValueError(
                f"{len(self.class_names)} classes do not fit in conditioning rows of width "
                f"{self.token_dim}; use a larger token_dim"
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, class_names: Sequence[str], config: ModelConfig | None = None, *,
              seed: int = 0) -> DiffusionModel:
        """A new model with random weights (deterministic for a given ``seed``)."""
        import torch
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

        config = config or ModelConfig()
        torch.manual_seed(seed)
        n = len(config.vae_channels)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=config.vae_channels,
            latent_channels=config.latent_channels,
            norm_num_groups=config.norm_num_groups,
            layers_per_block=1,
            sample_size=config.vae_size,
            scaling_factor=1.0,
        )
        m = len(config.unet_channels)
        unet = UNet2DConditionModel(
            sample_size=config.latent_size,
            in_channels=config.latent_channels,
            out_channels=config.latent_channels,
            layers_per_block=config.layers_per_block,
            block_out_channels=config.unet_channels,
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (m - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (m - 1) + ("UpBlock2D",),
            cross_attention_dim=config.token_dim,
            attention_head_dim=config.attention_head_dim,
            norm_num_groups=config.norm_num_groups,
            **({"class_embed_type": "projection",
                "projection_class_embeddings_input_dim": config.token_dim}
               if config.class_embedding else {}),
        )
        scheduler = DDPMScheduler(
            num_train_timesteps=config.num_train_timesteps,
            beta_schedule=config.beta_schedule,
            beta_start=config.beta_start,
            beta_end=config.beta_end,
            prediction_type="epsilon",
        )
        return cls(vae, unet, scheduler, class_names, config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, class_names: Sequence[str] | None = None,
                        device: str | None = None) -> DiffusionModel:
        """Load a model folder written by :meth:`save_pretrained`, or any local diffusers folder.

        Parameters
        ----------
        path
            A folder with ``unet/``, ``vae/`` and ``scheduler/`` subfolders. Loading is always
            local (``local_files_only=True``); nothing is downloaded.
        class_names
            Required for a plain diffusers folder (e.g. Stable Diffusion 1.5), which has no
            ``cytoviz.json``; for a cytoviz folder it must match the saved names if given.
        device
            ``"cpu"``, ``"cuda"``, ... (default: CPU).
        """
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: model folder not found")
        missing = [s for s in ("unet", "vae", "scheduler") if not (path / s).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{path}: not a diffusers model folder, missing subfolder(s) {missing} "
                "(expected unet/, vae/ and scheduler/ as written by save_pretrained)"
            )
        meta_path = path / "cytoviz.json"
        if meta_path.is_file():
            config, saved = _read_meta(meta_path)
            _check_training_summary(path / "train_summary.json", saved, meta_path)
            if class_names is not None and tuple(class_names) != saved:
                raise ValueError(
                    f"{path}: the model was trained on classes {list(saved)}, "
                    f"not {list(class_names)}"
                )
            class_names = saved
        else:
            if class_names is None:
                raise ValueError(
                    f"{path}: a plain diffusers folder has no class list; pass class_names=[...] "
                    "in the order of the one-hot conditioning"
                )
            config = None
        kw = dict(local_files_only=True, use_safetensors=True)
        parts = {}
        for name, loader in (("unet", lambda p: UNet2DConditionModel.from_pretrained(p, **kw)),
                             ("vae", lambda p: AutoencoderKL.from_pretrained(p, **kw)),
                             ("scheduler", lambda p: DDPMScheduler.from_pretrained(
                                 p, local_files_only=True))):
            try:
                parts[name] = loader(path / name)
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                # diffusers builds the part from its config.json: a value of the wrong type
                # surfaces as a TypeError deep inside torch
                raise ValueError(f"{path / name / _PART_CONFIG[name]}: could not load the "
                                 f"model's {name} ({type(exc).__name__}: {exc})") from exc
        unet, vae, scheduler = parts["unet"], parts["vae"], parts["scheduler"]
        if config is None:
            config = _config_from_parts(vae, unet, scheduler)
        else:
            _check_parts(config, vae, unet, scheduler, path, meta_path)
        if len(class_names) > int(unet.config.cross_attention_dim):
            raise ValueError(
                f"{meta_path if meta_path.is_file() else path}: {len(class_names)} class names "
                f"do not fit in the conditioning rows of width "
                f"{unet.config.cross_attention_dim} of {path / 'unet' / 'config.json'}"
            )
        model = cls(vae, unet, scheduler, class_names, config)
        if device is not None:
            model.to(device)
        return model

    @classmethod
    def from_sd15(cls, path: str | os.PathLike[str], class_names: Sequence[str],
                  device: str | None = None) -> DiffusionModel:
        """Wrap a local Stable Diffusion 1.5 folder (diffusers format; the text encoder is unused)."""
        return cls.from_pretrained(path, class_names=class_names, device=device)

    def save_pretrained(self, path: str | os.PathLike[str], *, fp16: bool = False) -> Path:
        """Write the model folder (safetensors weights, configs, class names).

        Each part is written to a temporary folder first and moved into place, so an interrupted
        save never leaves a half-written model.
        """
        import shutil
        import tempfile

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        variant_dtype = None
        if fp16:
            import torch

            variant_dtype = torch.float16
        for name, part in (("unet", self.unet), ("vae", self.vae), ("scheduler", self.scheduler)):
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=path))
            try:
                if variant_dtype is not None and name != "scheduler":
                    orig = next(part.parameters()).dtype
                    part.to(variant_dtype)
                    try:
                        part.save_pretrained(tmp, safe_serialization=True)
                    finally:
                        part.to(orig)
                elif name == "scheduler":
                    part.save_pretrained(tmp)
                else:
                    part.save_pretrained(tmp, safe_serialization=True)
                final = path / name
                if final.exists():
                    shutil.rmtree(final)
                _usual_permissions(tmp)  # mkdtemp creates 0700
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp)
        save_json(
            {
                "format_version": FORMAT_VERSION,
                "class_names": list(self.class_names),
                # the one-hot width the model is trained with: a hand-edited, shorter list of
                # class names is refused on loading
                "n_classes": self.n_classes,
                "config": self.config.to_dict(),
            },
            path / "cytoviz.json",
        )
        return path

    # ------------------------------------------------------------------ helpers
    @property
    def n_classes(self) -> int:
        """Number of classes the model is conditioned on."""
        return len(self.class_names)

    @property
    def n_tokens(self) -> int:
        """Number of conditioning tokens per class (``config.n_tokens``)."""
        return int(self.config.n_tokens)

    @property
    def token_dim(self) -> int:
        """Width of a conditioning token (the UNet's ``cross_attention_dim``)."""
        return int(self.unet.config.cross_attention_dim)

    @property
    def scaling_factor(self) -> float:
        """Latent scaling factor (``vae.config.scaling_factor``)."""
        return float(self.vae.config.scaling_factor)

    @property
    def device(self) -> torch.device:
        """The device the UNet's weights are on."""
        return next(self.unet.parameters()).device

    def to(self, device: str | torch.device) -> DiffusionModel:
        """Move the VAE and UNet to ``device`` (in place); returns ``self``."""
        self.vae.to(device)
        self.unet.to(device)
        return self

    def eval(self) -> DiffusionModel:
        """Put the VAE and UNet in evaluation mode (in place); returns ``self``."""
        self.vae.eval()
        self.unet.eval()
        return self

    def class_index(self, name: str) -> int:
        """Index of a class name, with a clear error for unknown names."""
        try:
            return self.class_names.index(name)
        except ValueError:
            raise ValueError(
                f"unknown class {name!r}; this model knows {list(self.class_names)}"
            ) from None

    def conditioning(self, labels: torch.Tensor) -> torch.Tensor:
        """The conditioning tensor for class indices or soft labels.

        Parameters
        ----------
        labels
            ``(B,)`` integer class indices (``-1`` for the unconditional null condition), or
            ``(B, K)`` soft labels (mixup) whose rows are written as they are.

        Returns
        -------
        torch.Tensor
            ``(B, n_tokens, token_dim)``: the one-hot (or soft) vector in the first K entries of
            each token row, zeros elsewhere, repeated over the tokens (METHOD.md section 1).
        """
        import torch

        onehot = label_matrix(labels, self.n_classes)
        k = self.n_classes
        row = torch.zeros(onehot.shape[0], self.token_dim, device=onehot.device, dtype=onehot.dtype)
        row[:, :k] = onehot
        dtype = next(self.unet.parameters()).dtype
        return row[:, None, :].expand(-1, self.n_tokens, -1).to(dtype)

    def unet_kwargs(self, cond: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra UNet inputs for the conditioning ``cond`` (see ``ModelConfig.class_embedding``).

        ``{"class_labels": cond[:, 0, :]}`` when the UNet has a projection class embedding (the
        conditioning row: one-hot, soft or null label), ``{}`` otherwise. Every UNet call passes
        ``encoder_hidden_states=cond, **model.unet_kwargs(cond)``.
        """
        if getattr(self.unet.config, "class_embed_type", None) == "projection":
            return {"class_labels": cond[:, 0, :]}
        return {}

    @overload
    def crop_input(self, images: np.ndarray) -> np.ndarray: ...

    @overload
    def crop_input(self, images: CellDataset) -> CellDataset: ...

    def crop_input(self, images: np.ndarray | CellDataset) -> np.ndarray | CellDataset:
        """What the model sees of ``images``: their centre ``input_crop`` pixels.

        Parameters
        ----------
        images
            ``uint8`` ``(N, H, W, 3)`` images or a :class:`~cytoviz.data.CellDataset` (its masks
            are cropped too), either ``image_size`` pixels wide (cropped to the centre
            ``input_crop`` pixels) or already ``input_crop`` pixels wide (e.g. generated cells,
            taken as they are). Without ``input_crop`` they must be ``image_size`` wide.

        Returns
        -------
        numpy.ndarray or CellDataset
            The same kind as ``images``, ``config.vae_size`` pixels wide (a view, no copy).

        Raises
        ------
        ValueError
            For any other image size, naming the sizes this model takes.
        """
        size, crop = self.config.image_size, self.config.vae_size
        arr = images.images if isinstance(images, CellDataset) else np.asarray(images)
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"images must have shape (N, H, W, 3), got {arr.shape}")
        h, w = arr.shape[1:3]
        if h != w or h not in (size, crop):
            taken = f"{size}x{size} px"
            if crop != size:
                taken += f" images (it sees their centre {crop} px) or {crop}x{crop} px crops"
            raise ValueError(
                f"images are {h}x{w} px but the model takes {taken}; resize or crop them "
                "first (e.g. load them with image_size= in cytoviz.data loaders)"
            )
        if h == crop:
            return images
        lo = (h - crop) // 2
        if isinstance(images, CellDataset):
            return images.centre_crop(crop)
        return arr[:, lo:lo + crop, lo:lo + crop]

    def encode(self, images: torch.Tensor, *, sample: bool = True,
               generator: torch.Generator | Sequence[torch.Generator] | None = None,
               precision: str = "float32") -> torch.Tensor:
        """Encode images in ``[-1, 1]`` to scaled float32 latents.

        Parameters
        ----------
        images
            ``(B, 3, H, W)`` images as the VAE takes them (already cropped by
            :meth:`crop_input`); moved to the model's device and the VAE's dtype.
        sample
            Draw from the VAE posterior, ``mean + std * noise`` (the stochastic encode of the
            reference code); ``False`` takes its mean.
        generator
            Source of the posterior noise: one generator for the batch, or one per image (image
            ``j`` then draws from ``generator[j]`` alone, as the classifier's trials do).
        precision
            ``"float32"`` or ``"bfloat16"`` (the VAE runs under bfloat16 autocast; see
            :class:`~cytoviz.diffusion.ClassifyConfig`'s ``encode_precision``).

        Returns
        -------
        torch.Tensor
            ``(B, C, h, w)`` float32 latents times :attr:`scaling_factor`; the noise is added
            in float32.
        """
        import torch

        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
        device = self.device
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                    if precision == "bfloat16" else contextlib.nullcontext())
        with autocast:
            dist = self.vae.encode(images.to(device, self.vae.dtype)).latent_dist
        z = dist.mean.float()
        if sample:
            z = z + dist.std.float() * _posterior_noise(z, generator)
        return z * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode scaled latents to images in about ``[-1, 1]``."""
        return self.vae.decode(latents / self.scaling_factor).sample

    def __repr__(self) -> str:
        n_unet = sum(p.numel() for p in self.unet.parameters()) / 1e6
        n_vae = sum(p.numel() for p in self.vae.parameters()) / 1e6
        crop = f" (centre {self.config.input_crop}px)" if self.config.input_crop else ""
        return (
            f"DiffusionModel(preset={self.config.preset!r}, {self.n_classes} classes, "
            f"{self.config.image_size}px{crop} -> latent {self.config.latent_channels}x"
            f"{self.config.latent_size}x{self.config.latent_size}, conditioning "
            f"{self.n_tokens}x{self.token_dim}, UNet {n_unet:.2f}M + VAE {n_vae:.2f}M params)"
        )


#: The config file of each part of a model folder (named in load errors).
_PART_CONFIG = {"unet": "config.json", "vae": "config.json",
                "scheduler": "scheduler_config.json"}


def _read_meta(meta_path: Path) -> tuple[ModelConfig, tuple[str, ...]]:
    """The ModelConfig and class names of a ``cytoviz.json``, every field checked."""
    meta = load_json(meta_path)
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: holds a JSON {type(meta).__name__}, not an object with "
                         "format_version, class_names and config")
    missing = [k for k in ("format_version", "class_names", "config") if k not in meta]
    if missing:
        raise ValueError(f"{meta_path}: lacks {missing}; a cytoviz model folder's cytoviz.json "
                         "has format_version, class_names and config (save_pretrained writes "
                         "them)")
    version = meta["format_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{meta_path}: format_version must be an integer, got {version!r}")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path}: model format version {version}, this cytoviz reads version "
            f"{FORMAT_VERSION}; re-save the model with a matching cytoviz"
        )
    try:
        config = ModelConfig.from_dict(meta["config"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{meta_path}, config: {exc}") from exc
    names = meta["class_names"]
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        raise ValueError(f"{meta_path}: class_names must be a list of strings, got {names!r}")
    saved = tuple(names)
    check_class_names(saved, source=f"{meta_path}, class_names")  # they name folders
    if len(saved) < 2:
        raise ValueError(f"{meta_path}: a classifier needs at least 2 class names, got "
                         f"{list(saved)}")
    n = meta.get("n_classes", len(saved))
    if isinstance(n, bool) or not isinstance(n, int) or n != len(saved):
        raise ValueError(f"{meta_path}: n_classes is {n!r} but class_names has {len(saved)} "
                         "names; the model was trained on n_classes classes: list them all, in "
                         "the order of the one-hot conditioning")
    if len(saved) > config.token_dim:
        raise ValueError(f"{meta_path}: {len(saved)} class names do not fit in conditioning "
                         f"rows of width token_dim={config.token_dim}")
    return config, saved


def _check_training_summary(summary_path: Path, saved: tuple[str, ...], meta_path: Path) -> None:
    """Refuse class names that differ from those the model was trained on (train_summary.json)."""
    if not summary_path.is_file():
        return
    summary = load_json(summary_path)
    trained = summary.get("class_names") if isinstance(summary, dict) else None
    if isinstance(trained, list) and tuple(trained) != saved:
        raise ValueError(
            f"{meta_path}: class_names {list(saved)} differ from the {len(trained)} classes the "
            f"model was trained on, {trained} ({summary_path}); restore them"
        )


def _check_parts(config: ModelConfig, vae: AutoencoderKL, unet: UNet2DConditionModel,
                 scheduler: DDPMScheduler, path: Path, meta_path: Path) -> None:
    """Refuse a cytoviz.json whose architecture disagrees with the saved parts' configs."""
    embed = getattr(unet.config, "class_embed_type", None) == "projection"
    checks = (
        ("token_dim", config.token_dim, "unet", "cross_attention_dim",
         unet.config.cross_attention_dim),
        ("latent_channels", config.latent_channels, "unet", "in_channels", unet.config.in_channels),
        ("latent_channels", config.latent_channels, "vae", "latent_channels",
         vae.config.latent_channels),
        ("unet_channels", config.unet_channels, "unet", "block_out_channels",
         tuple(unet.config.block_out_channels)),
        ("vae_channels", config.vae_channels, "vae", "block_out_channels",
         tuple(vae.config.block_out_channels)),
        ("class_embedding", config.class_embedding, "unet", "class_embed_type", embed),
        ("num_train_timesteps", config.num_train_timesteps, "scheduler", "num_train_timesteps",
         scheduler.config.num_train_timesteps),
    )
    for field, ours, part, key, theirs in checks:
        if ours != theirs:
            raise ValueError(
                f"{meta_path}: config {field}={ours!r} disagrees with {key}={theirs!r} in "
                f"{path / part / _PART_CONFIG[part]}; the files do not belong to one model"
            )


def _config_from_parts(vae: AutoencoderKL, unet: UNet2DConditionModel,
                       scheduler: DDPMScheduler) -> ModelConfig:
    """Describe a plain diffusers model (e.g. SD-1.5) as a ModelConfig."""
    n_vae = len(vae.config.block_out_channels)
    image_size = int(unet.config.sample_size) * 2 ** (n_vae - 1)
    is_sd = int(unet.config.cross_attention_dim) == 768
    return ModelConfig(
        preset="sd15" if is_sd else "custom",
        image_size=image_size,
        latent_channels=int(vae.config.latent_channels),
        vae_channels=tuple(vae.config.block_out_channels),
        unet_channels=tuple(unet.config.block_out_channels),
        layers_per_block=int(unet.config.layers_per_block),
        n_tokens=77 if is_sd else 1,
        token_dim=int(unet.config.cross_attention_dim),
        attention_head_dim=int(unet.config.attention_head_dim)
        if isinstance(unet.config.attention_head_dim, int) else 8,
        norm_num_groups=int(unet.config.norm_num_groups),
        beta_schedule=str(scheduler.config.beta_schedule),
        beta_start=float(scheduler.config.beta_start),
        beta_end=float(scheduler.config.beta_end),
        num_train_timesteps=int(scheduler.config.num_train_timesteps),
    )




def label_matrix(labels: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, k)`` float rows: one-hot for class indices (all zero for ``-1``), soft labels as given.

    Parameters
    ----------
    labels
        ``(B,)`` integer class indices (``-1``: the unconditional null condition) or ``(B, k)``
        soft labels (mixup).
    k
        Number of classes.
    """
    import torch

    if labels.ndim == 1:
        onehot = torch.zeros(labels.shape[0], k, device=labels.device)
        valid = labels >= 0
        onehot[valid] = torch.nn.functional.one_hot(labels[valid].long(), k).float()
        return onehot
    if labels.ndim == 2 and labels.shape[1] == k:
        return labels.float()
    raise ValueError(f"labels must be (B,) indices or (B, {k}) soft labels, got {tuple(labels.shape)}")


def _posterior_noise(z: torch.Tensor,
                     generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    """Standard normal noise shaped like ``z`` on its device (CPU generators draw on the CPU)."""
    import torch

    if isinstance(generator, Sequence):
        if len(generator) != z.shape[0]:
            raise ValueError(f"got {len(generator)} generators for {z.shape[0]} images")
        return torch.stack([torch.randn(z.shape[1:], generator=g) for g in generator]).to(z.device)
    on_cpu = generator is not None and generator.device.type == "cpu"
    return torch.randn(z.shape, generator=generator,
                       device="cpu" if on_cpu else z.device).to(z.device)


def _usual_permissions(folder: Path) -> None:
    """Give a folder made by ``mkdtemp`` (and its files) the usual umask-based modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for f in folder.rglob("*"):
        os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~umask)


def default_model_path() -> Path:
    """Folder of the shipped default model (:func:`cytoviz._paths.default_model_dir`).

    ``CYTOVIZ_DEFAULT_MODEL`` overrides it (e.g. a model you trained yourself).
    """
    return default_model_dir()


def load_default_model(*, device: str | None = None) -> DiffusionModel:
    """Load the shipped default ``tiny`` model (trained on the embedded synthetic data).

    Parameters
    ----------
    device
        ``"cpu"``, ``"cuda"``, ... (default: CPU).

    Returns
    -------
    DiffusionModel
        The model, in evaluation mode.

    Raises
    ------
    FileNotFoundError
        When the folder is missing, with the command that trains it.
    """
    path = default_model_path()
    if not (path / "cytoviz.json").is_file():
        raise FileNotFoundError(
            f"{path}: no default model there; train it with `bash scripts/train_default_model.sh` "
            f"or point {MODEL_ENV} at a model folder"
        )
    return DiffusionModel.from_pretrained(path, device=device).eval()
