"""Generation with classifier-free guidance: determinism, shapes, the CFG formula, CLI."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import torch

from cytoviz.diffusion.generate import (
    GenerateConfig,
    _eps,
    generate,
    guided_eps,
    make_scheduler,
    resolve_classes,
)
from cytoviz.diffusion.model import DiffusionModel, ModelConfig

CLASSES = ("basophil", "blast", "lymphocyte")
FAST = GenerateConfig(num_inference_steps=3, batch_size=4)


def tiny_config() -> ModelConfig:
    return ModelConfig.tiny(image_size=16, vae_channels=(8, 8), unet_channels=(8, 16),
                            token_dim=8, norm_num_groups=4, attention_head_dim=4)


@pytest.fixture(scope="module")
def model() -> DiffusionModel:
    return DiffusionModel.build(CLASSES, tiny_config(), seed=0).eval()


def test_shape_dtype_labels_meta(model: DiffusionModel) -> None:
    ds = generate(model, ["lymphocyte", "basophil"], 2, config=FAST, progress=False)
    assert ds.images.shape == (4, 16, 16, 3) and ds.images.dtype == np.uint8
    assert ds.class_names == CLASSES
    assert list(ds.label_names) == ["lymphocyte"] * 2 + ["basophil"] * 2
    assert list(ds.meta["intended"]) == list(ds.label_names)
    assert ds.meta["id"].is_unique
    assert (ds.meta["steps"] == 3).all()


def test_same_seed_identical_other_seed_differs(model: DiffusionModel) -> None:
    a = generate(model, "all", 2, config=FAST, progress=False)
    b = generate(model, "all", 2, config=FAST, progress=False)
    c = generate(model, "all", 2, config=FAST.replace(seed=1), progress=False)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_image_independent_of_batch_and_other_classes(model: DiffusionModel) -> None:
    full = generate(model, "all", 2, config=FAST, progress=False)
    one = generate(model, ["blast"], 2, config=FAST.replace(batch_size=1), progress=False)
    sel = full.labels == CLASSES.index("blast")
    # batched convolutions may round differently; allow one grey level
    assert np.abs(full.images[sel].astype(int) - one.images.astype(int)).max() <= 1


def test_dpm_and_eta(model: DiffusionModel) -> None:
    dpm = generate(model, "blast", 2, config=FAST.replace(scheduler="dpm"), progress=False)
    ddim = generate(model, "blast", 2, config=FAST, progress=False)
    assert dpm.images.shape == ddim.images.shape
    assert not np.array_equal(dpm.images, ddim.images)
    e1 = generate(model, "blast", 2, config=FAST.replace(eta=1.0), progress=False)
    e2 = generate(model, "blast", 2, config=FAST.replace(eta=1.0), progress=False)
    np.testing.assert_array_equal(e1.images, e2.images)
    assert not np.array_equal(e1.images, ddim.images)
    with pytest.raises(ValueError, match="eta"):
        GenerateConfig(scheduler="dpm", eta=0.5)


def test_scheduler_from_training_config(model: DiffusionModel) -> None:
    sched = make_scheduler(model, FAST)
    assert type(sched).__name__ == "DDIMScheduler"
    assert sched.config.clip_sample is False
    torch.testing.assert_close(sched.alphas_cumprod, model.scheduler.alphas_cumprod)
    assert len(sched.timesteps) == 3


def test_guided_eps_formula() -> None:
    u, c = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(guided_eps(u, c, 0.0), u)
    torch.testing.assert_close(guided_eps(u, c, 1.0), c)
    torch.testing.assert_close(guided_eps(u, c, 5.0), u + 5.0 * (c - u))


class _StubUNet(torch.nn.Module):
    """eps depends on the conditioning row so that the guided combination is visible."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.calls: list[torch.Tensor] = []

    def forward(self, sample: torch.Tensor, t: torch.Tensor, encoder_hidden_states: torch.Tensor
                ) -> types.SimpleNamespace:
        self.calls.append(encoder_hidden_states.detach().clone())
        shift = encoder_hidden_states.sum(dim=(1, 2))[:, None, None, None]
        return types.SimpleNamespace(sample=0.5 * sample * self.w + shift)


def test_cfg_with_stub_unet(model: DiffusionModel) -> None:
    stub = _StubUNet()
    fake = types.SimpleNamespace(unet=stub, unet_kwargs=lambda cond: {})
    z = torch.randn(3, 4, 4, 4)
    labels = torch.tensor([0, 1, 2])
    cond = model.conditioning(labels)
    null = model.conditioning(torch.full_like(labels, -1))
    t = torch.tensor(500)
    e_u = 0.5 * z  # null rows are zero: no shift
    e_c = 0.5 * z + cond.sum(dim=(1, 2))[:, None, None, None]
    for s in (0.0, 1.0, 2.5, 5.0):
        torch.testing.assert_close(_eps(fake, z, t, cond, null, s), guided_eps(e_u, e_c, s))
        torch.testing.assert_close(_eps(fake, z, t, cond, null, s, shortcut=False),
                                   guided_eps(e_u, e_c, s))
    torch.testing.assert_close(_eps(fake, z, t, cond, null, 0.0), e_u)
    torch.testing.assert_close(_eps(fake, z, t, cond, null, 1.0), e_c)


def test_shortcuts_match_full_guidance_on_real_unet(model: DiffusionModel) -> None:
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2])
    cond, null = model.conditioning(labels), model.conditioning(torch.full_like(labels, -1))
    t = torch.tensor(300)
    with torch.no_grad():
        for s in (0.0, 1.0):
            torch.testing.assert_close(_eps(model, z, t, cond, null, s),
                                       _eps(model, z, t, cond, null, s, shortcut=False),
                                       atol=1e-5, rtol=1e-4)


def test_null_condition_used_for_guidance(model: DiffusionModel, monkeypatch) -> None:
    seen: list[torch.Tensor] = []
    original = model.unet.forward

    def recording(sample, t, encoder_hidden_states, **kw):
        seen.append(encoder_hidden_states.detach().clone())
        return original(sample, t, encoder_hidden_states=encoder_hidden_states, **kw)

    monkeypatch.setattr(model.unet, "forward", recording)
    generate(model, "blast", 2, config=FAST.replace(guidance_scale=0.0), progress=False)
    assert all(float(c.abs().sum()) == 0.0 for c in seen)  # unconditional only
    seen.clear()
    generate(model, "blast", 2, config=FAST.replace(guidance_scale=1.0), progress=False)
    assert all(torch.all(c[:, :, 1] == 1) for c in seen)  # conditional only, class 1 one-hot
    seen.clear()
    generate(model, "blast", 2, config=FAST.replace(guidance_scale=5.0), progress=False)
    for c in seen:  # one pass with null rows first, then the class rows
        assert c.shape[0] == 4
        assert float(c[:2].abs().sum()) == 0.0 and torch.all(c[2:, :, 1] == 1)


def test_guidance_changes_images(model: DiffusionModel) -> None:
    a = generate(model, "blast", 2, config=FAST.replace(guidance_scale=0.0), progress=False)
    b = generate(model, "blast", 2, config=FAST.replace(guidance_scale=5.0), progress=False)
    assert not np.array_equal(a.images, b.images)


def test_unknown_class_errors(model: DiffusionModel) -> None:
    with pytest.raises(ValueError, match=r"unknown class 'eosinofil'.*basophil"):
        generate(model, "eosinofil", 1, config=FAST, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        resolve_classes(CLASSES, [5])
    assert resolve_classes(CLASSES, "all") == [0, 1, 2]
    assert resolve_classes(CLASSES, [2, "basophil"]) == [2, 0]
    with pytest.raises(ValueError, match="n_per_class"):
        generate(model, "blast", 0, config=FAST, progress=False)
    with pytest.raises(ValueError, match="scheduler"):
        GenerateConfig(scheduler="euler")


def test_conditioning_override(model: DiffusionModel) -> None:
    calls = []

    def cond_fn(labels: torch.Tensor) -> torch.Tensor:
        calls.append(labels.clone())
        return model.conditioning(labels)

    a = generate(model, "blast", 2, config=FAST, progress=False, conditioning=cond_fn)
    b = generate(model, "blast", 2, config=FAST, progress=False)
    np.testing.assert_array_equal(a.images, b.images)
    assert any(bool((c == -1).all()) for c in calls) and any(bool((c == 1).all()) for c in calls)


def test_cli_help_and_tiny_run(model: DiffusionModel, tmp_path, capsys) -> None:
    from cytoviz.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["generate", "--help"])
    assert exc.value.code == 0
    assert "--guidance" in capsys.readouterr().out
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "gen"
    rc = main(["generate", "--model", str(tmp_path / "model"), "--class", "blast", "-n", "2",
               "--steps", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    pngs = sorted((out / "blast").glob("*.png"))
    assert len(pngs) == 2
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest["label"]) == ["blast", "blast"]
    assert not list(out.rglob(".*tmp*"))  # no temporary files left behind
    # same seed, same images as the Python API
    from PIL import Image

    ref = generate(model, "blast", 2, config=GenerateConfig(num_inference_steps=2), progress=False)
    got = np.stack([np.asarray(Image.open(out / p)) for p in manifest["path"]])
    np.testing.assert_array_equal(got, ref.images)
    # all classes; a second run into the same folder needs --overwrite
    assert main(["generate", "--model", str(tmp_path / "model"), "--class", "all", "-n", "1",
                 "--steps", "2", "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path / "model"), "--class", "all", "-n", "1",
                 "--steps", "2", "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert len(pd.read_csv(out / "manifest.csv")) == 3
    assert main(["generate", "--model", str(tmp_path / "model"), "--class", "monocyte", "-n", "1",
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "unknown class 'monocyte'" in capsys.readouterr().err


def test_generated_grid_figure(model: DiffusionModel) -> None:
    from cytoviz import pl

    ds = generate(model, ["blast", "basophil"], 3, config=FAST, progress=False)
    fig = pl.generated_grid(ds, n_per_class=3)
    assert len(fig.data) == 1 and fig.data[0].type == "image"
    z = np.asarray(fig.data[0].z)
    assert z.shape[0] == 2 * 16 + 2  # two class rows of 16 px with a 2 px gap
    rows = [a.text for a in fig.layout.annotations]
    assert rows == ["basophil", "blast"]  # class order of the model
    np.testing.assert_array_equal(z[:16, :16], ds.images[ds.labels == 0][0])
    with_real = pl.generated_grid(ds, 2, real=ds)
    assert any("generated" in str(a.text) for a in with_real.layout.annotations)
    with pytest.raises(ValueError, match="unknown class"):
        pl.generated_grid(ds, classes=["monocyte"])
