"""The ``sd15`` path at full size, on CUDA: Stable Diffusion 1.5's architecture, random weights.

The UNet (860 M parameters) and VAE are built from diffusers' configs with SD-1.5's values
(nothing is downloaded) and saved as a local diffusers folder, which
:meth:`DiffusionModel.from_sd15` wraps as ``cytoviz train --preset sd15`` does. On the paper's
360 px images (a 45 x 45 latent) the test conditions with 77 x 768 tokens, trains one step with
the VAE frozen, classifies with error maps and decodes a heatmap. Marked ``gpu``: the conftest
skips it where torch sees no CUDA device (tests/test_train.py covers the same path on a tiny
SD-shaped model on the CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cytoviz.data import CellDataset
from cytoviz.diffusion import DiffusionModel, TrainConfig, train
from cytoviz.heatmaps import classify_for_heatmaps, counterfactual_heatmaps

pytestmark = pytest.mark.gpu

CLASSES = ("basophil", "eosinophil", "neutrophil")
#: The paper's image size; the SD VAE downsamples by 8 to a 45 x 45 latent.
IMAGE_SIZE = 360

#: SD-1.5's UNet (its unet/config.json); the fields not given are diffusers' defaults, which
#: are SD-1.x's (blocks CrossAttnDown x 3 + Down, Up + CrossAttnUp x 3, 32 norm groups).
SD15_UNET: dict[str, Any] = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
)
#: SD-1.5's VAE (its vae/config.json).
SD15_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512), sample_size=512, scaling_factor=0.18215,
)
SD15_SCHEDULER: dict[str, Any] = dict(
    beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000,
)


def write_sd_folder(root: Path, *, unet: dict[str, Any] = SD15_UNET,
                    vae: dict[str, Any] = SD15_VAE, device: str = "cuda") -> Path:
    """Save a randomly initialised SD-style diffusers folder (unet/, vae/, scheduler/)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: seconds instead of a minute
        parts = {"unet": UNet2DConditionModel(**unet), "vae": AutoencoderKL(**vae)}
    for name, part in parts.items():
        part.save_pretrained(root / name)
    DDPMScheduler(**SD15_SCHEDULER).save_pretrained(root / "scheduler")
    return root


def check_sd_path(folder: Path, out_dir: Path, *, device: str, image_size: int) -> None:
    """Condition, train one step, classify and decode a heatmap through the sd15 path."""
    model = DiffusionModel.from_sd15(folder, CLASSES, device=device)
    assert model.config.preset == "sd15" and model.device.type == device
    cond = model.conditioning(torch.tensor([1, -1], device=model.device))
    assert cond.shape == (2, 77, 768)
    assert torch.equal(cond[0, :, :3], torch.tensor([[0.0, 1.0, 0.0]], device=cond.device)
                       .expand(77, 3))
    assert cond[0, :, 3:].abs().sum() == 0 and cond[1].abs().sum() == 0

    # As `cytoviz train --preset sd15` does: the SD UNet is size-agnostic, the config records
    # the training images' size.
    model.config = model.config.replace(image_size=image_size)
    latent = image_size // 8
    assert model.config.latent_size == latent
    rng = np.random.default_rng(0)
    cells = CellDataset(rng.integers(0, 256, (6, image_size, image_size, 3), dtype=np.uint8),
                        np.arange(6) % 3, CLASSES)

    vae0 = {k: v.clone() for k, v in model.vae.state_dict().items()}
    conv0 = model.unet.conv_in.weight.detach().clone()
    cfg = TrainConfig.sd15(steps=1, batch_size=2, warmup_steps=0, checkpoint_every=1,
                           val_every=0, val_accuracy_images=0, augment=None, ema_decay=0.5)
    model = train(model, cells, None, config=cfg, out_dir=out_dir, progress=False)
    assert model.device.type == device
    for k, v in model.vae.state_dict().items():
        assert torch.equal(v, vae0[k]), f"the frozen VAE changed: {k}"
    assert not torch.equal(model.unet.conv_in.weight, conv0), "the UNet did not train"

    result = classify_for_heatmaps(model, cells, trials=4, batch_size=12, progress=False)
    assert result.prediction.shape == (6,) and result.n_classes == 3
    assert (result.class_trials == 4).all()
    assert result.error_maps.shape[-2:] == (latent, latent)
    assert np.isfinite(result.scores).all()
    heat = counterfactual_heatmaps(result, model, cells, indices=[0])
    assert heat.heatmaps.shape == (1, 3, image_size, image_size, 3)
    assert np.isfinite(heat.magnitude).all()


@pytest.fixture(scope="module")
def sd15_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sd_folder(tmp_path_factory.mktemp("sd15"))


def test_sd15_path_at_full_size(sd15_folder: Path, tmp_path: Path) -> None:
    check_sd_path(sd15_folder, tmp_path / "run", device="cuda", image_size=IMAGE_SIZE)
