"""Training of the diffusion model: loss pieces, the loop, exact resume, the sd15 path, the CLI."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from cytoviz.data import CellDataset
from cytoviz.diffusion.model import DiffusionModel
from cytoviz.diffusion.train import (
    TrainConfig,
    class_dropout,
    latest_checkpoint,
    min_snr_weights,
    mixup,
    train,
    validation_loss,
)

CLASSES = ("dark", "bright")


def _easy_data(n: int = 32, seed: int = 0) -> CellDataset:
    """Two classes that differ in brightness and colour of a centred disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16]
    disc = (yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 25
    labels = np.arange(n) % 2
    images = np.full((n, 16, 16, 3), 220, dtype=np.uint8)
    for i, y in enumerate(labels):
        colour = (60, 20, 90) if y == 0 else (240, 150, 200)
        images[i][disc] = colour
    noise = rng.integers(-8, 9, images.shape)
    images = np.clip(images.astype(int) + noise, 0, 255).astype(np.uint8)
    return CellDataset(images, labels, CLASSES)


def _tiny_config(**changes) -> TrainConfig:
    base = dict(steps=4, vae_steps=2, batch_size=4, vae_batch_size=4, warmup_steps=2,
                checkpoint_every=100, val_every=0, val_images=8, val_accuracy_images=0,
                log_every=1, augment=None)
    base.update(changes)
    return TrainConfig(**base)


# --------------------------------------------------------------------------- loss pieces
def test_min_snr_weights_match_hand_formula(tiny_model_config):
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0)
    abar = model.scheduler.alphas_cumprod
    t = torch.tensor([0, 10, 250, 500, 999])
    w = min_snr_weights(t, abar, 5.0)
    for ti, wi in zip(t.tolist(), w.tolist(), strict=True):
        a = float(abar[ti])
        snr = a / (1 - a)
        assert wi == pytest.approx(min(snr, 5.0) / snr, rel=1e-5)
    # small t has a huge SNR (weight < 1), t = 999 a tiny SNR (weight 1)
    assert w[0] < 0.01 and w[-1] == pytest.approx(1.0)
    assert torch.equal(min_snr_weights(t, abar, None), torch.ones(5))


def test_mixup_soft_labels_sum_to_one_and_mix_partners():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1] * 64)
    partner, lam, soft = mixup(labels, 3, alpha=0.3, prob=1.0, generator=g)
    assert soft.shape == (512, 3)
    torch.testing.assert_close(soft.sum(1), torch.ones(512))
    assert (soft >= 0).all()
    expected = lam[:, None] * torch.eye(3)[labels] + (1 - lam[:, None]) * torch.eye(3)[labels[partner]]
    torch.testing.assert_close(soft, expected)
    # Beta(0.3, 0.3) is U-shaped: mean 0.5, most mass near 0 and 1
    assert abs(float(lam.mean()) - 0.5) < 0.06
    assert float(((lam < 0.1) | (lam > 0.9)).float().mean()) > 0.4
    # prob=0: no mixing at all
    _, lam0, soft0 = mixup(labels, 3, alpha=0.3, prob=0.0, generator=g)
    assert torch.equal(lam0, torch.ones(512))
    assert torch.equal(soft0, torch.eye(3)[labels])


def test_class_dropout_rate_and_null_rows(tiny_model_config):
    g = torch.Generator().manual_seed(1)
    soft = torch.eye(4)[torch.arange(20000) % 4]
    out = class_dropout(soft, 0.1, generator=g)
    dropped = out.sum(1) == 0
    assert 0.09 < float(dropped.float().mean()) < 0.11
    assert torch.equal(out[~dropped], soft[~dropped])
    # the null row is the model's unconditional conditioning (label -1)
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0)
    null = model.conditioning(torch.tensor([-1]))
    assert torch.equal(model.conditioning(torch.zeros(1, 2)), null)


def test_config_validation_and_roundtrip(tmp_path):
    cfg = TrainConfig(steps=7)
    assert TrainConfig.load(cfg.save(tmp_path / "c.json")) == cfg
    assert TrainConfig.from_dict(_tiny_config().to_dict()).augment is None
    with pytest.raises(ValueError, match="class_dropout"):
        TrainConfig(class_dropout=1.5)
    with pytest.raises(ValueError, match="vae_loss"):
        TrainConfig(vae_loss="huber")
    sd = TrainConfig.sd15()
    assert not sd.train_vae and sd.total_steps == sd.steps and sd.lr == 1e-5


# --------------------------------------------------------------------------- the loop
@pytest.mark.slow
def test_training_lowers_the_loss(tmp_path, tiny_model_config):
    torch.manual_seed(0)
    data = _easy_data(32)
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0)
    cfg = _tiny_config(steps=40, vae_steps=30, lr=2e-3, vae_lr=3e-3, warmup_steps=5,
                       ema_decay=0.9, mixup_prob=0.0, class_dropout=0.0, batch_size=8)
    # the loss of the initial UNet with the VAE that the run will produce is measured after
    # the VAE stage: train the VAE only (stop_at), then the UNet
    model = train(model, data, None, config=cfg, out_dir=tmp_path, progress=False, stop_at=30)
    before = validation_loss(model, data, seed=3)
    model = train(model, data, None, config=cfg, out_dir=tmp_path, progress=False)
    after = validation_loss(model, data, seed=3)
    assert after < 0.8 * before, (before, after)
    hist = json.loads((tmp_path / "history.json").read_text())["history"]
    vae_losses = [h["loss"] for h in hist if h["kind"] == "train_vae"]
    assert np.mean(vae_losses[-5:]) < np.mean(vae_losses[:5])
    # the VAE scaling factor makes the training latents unit-variance
    with torch.no_grad():
        from cytoviz.augment import to_tensor

        z = model.encode(to_tensor(data.images), generator=torch.Generator().manual_seed(0))
    assert float(z.std()) == pytest.approx(1.0, rel=0.1)
    assert model.scaling_factor != 1.0


def test_saved_model_and_files(tmp_path, tiny_model_config):
    data = _easy_data(8)
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0)
    cfg = _tiny_config(steps=2, vae_steps=1, val_images=4, val_every=1)
    out = train(model, data, data, config=cfg, out_dir=tmp_path, progress=False)
    model_dir = tmp_path / "model"
    assert TrainConfig.load(model_dir / "train_config.json") == cfg
    summary = json.loads((model_dir / "train_summary.json").read_text())
    assert summary["completed"] and summary["step"] == 3
    loaded = DiffusionModel.from_pretrained(model_dir)
    assert loaded.class_names == CLASSES
    assert loaded.scaling_factor == pytest.approx(out.scaling_factor)
    for (k, a), b in zip(out.unet.state_dict().items(), loaded.unet.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k
    hist = json.loads((tmp_path / "history.json").read_text())["history"]
    assert any(h["kind"] == "val" and np.isfinite(h["val_loss"]) for h in hist)
    # no pickles anywhere in the run folder
    suffixes = {p.suffix for p in tmp_path.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors"}, suffixes


def test_ema_weights_are_what_is_returned(tmp_path, tiny_model_config):
    data = _easy_data(8)
    cfg = _tiny_config(steps=3, vae_steps=0, ema_decay=0.5, lr=1e-2)
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0)
    init = {k: v.clone() for k, v in model.unet.state_dict().items()}
    out = train(model, data, None, config=cfg, out_dir=tmp_path, progress=False)
    ema = out.unet.state_dict()
    ckpt = latest_checkpoint(tmp_path)
    from safetensors.torch import load_file

    raw = load_file(str(ckpt / "unet.safetensors"))
    saved_ema = load_file(str(ckpt / "ema.safetensors"))
    key = "conv_in.weight"
    assert torch.equal(ema[key], saved_ema[key])
    # the EMA lies strictly between the initial and the final raw weights (decay 0.5 after
    # warm-up min(0.5, (1+n)/(10+n)))
    assert not torch.equal(ema[key], raw[key]) and not torch.equal(ema[key], init[key])


def test_checkpoints_are_pruned_and_atomic(tmp_path, tiny_model_config):
    data = _easy_data(8)
    cfg = _tiny_config(steps=5, vae_steps=0, checkpoint_every=1, keep_checkpoints=2)
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
          out_dir=tmp_path, progress=False)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest.json", "step-0000004", "step-0000005"]
    assert latest_checkpoint(tmp_path).name == "step-0000005"


@pytest.mark.parametrize("augment", [False, True])
def test_resume_is_bit_identical(tmp_path, augment, tiny_model_config):
    """Interrupted at step 3 (inside the UNet stage) and resumed in a fresh model object equals
    an uninterrupted 6-step run."""
    from cytoviz.augment import AugmentConfig

    data = _easy_data(12)
    cfg = _tiny_config(steps=4, vae_steps=2, checkpoint_every=2, mixup_prob=0.5,
                       augment=AugmentConfig() if augment else None)
    a = train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
              out_dir=tmp_path / "a", progress=False)
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
          out_dir=tmp_path / "b", progress=False, stop_at=3)
    assert latest_checkpoint(tmp_path / "b").name == "step-0000003"
    # a fresh model object (as in a new process), resumed from the checkpoint
    torch.manual_seed(1234)  # global RNG state must not matter either
    b = train(DiffusionModel.build(CLASSES, tiny_model_config, seed=99), data, None, config=cfg,
              out_dir=tmp_path / "b", progress=False)
    for part in ("unet", "vae"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{part}.{k}"
    assert a.scaling_factor == b.scaling_factor
    ha = json.loads((tmp_path / "a" / "history.json").read_text())["history"]
    hb = json.loads((tmp_path / "b" / "history.json").read_text())["history"]
    assert [h["loss"] for h in ha if "loss" in h] == [h["loss"] for h in hb if "loss" in h]


def test_resume_across_the_stage_boundary(tmp_path, tiny_model_config):
    data = _easy_data(8)
    cfg = _tiny_config(steps=2, vae_steps=2)
    a = train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
              out_dir=tmp_path / "a", progress=False)
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
          out_dir=tmp_path / "b", progress=False, stop_at=2)
    b = train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
              out_dir=tmp_path / "b", progress=False)
    for k, v in a.unet.state_dict().items():
        assert torch.equal(v, b.unet.state_dict()[k]), k


def test_resume_refuses_changed_settings(tmp_path, tiny_model_config):
    data = _easy_data(8)
    cfg = _tiny_config(steps=2, vae_steps=0)
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
          out_dir=tmp_path, progress=False, stop_at=1)
    with pytest.raises(ValueError, match=r"different settings for \['lr'\]"):
        train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None,
              config=cfg.replace(lr=1.0), out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different training images"):
        train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), _easy_data(8, seed=5), None,
              config=cfg, out_dir=tmp_path, progress=False)
    # more steps is allowed, and --no-resume starts afresh
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None,
          config=cfg.replace(steps=3), out_dir=tmp_path, progress=False)
    assert latest_checkpoint(tmp_path).name == "step-0000003"
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None,
          config=cfg.replace(lr=1.0), out_dir=tmp_path, progress=False, resume=False, stop_at=1)
    assert latest_checkpoint(tmp_path).name == "step-0000001"


def test_data_mismatch_errors(tmp_path, tiny_model_config):
    model = DiffusionModel.build(CLASSES, tiny_model_config, seed=0)
    other = CellDataset(np.zeros((2, 16, 16, 3), np.uint8), np.array([0, 1]), ("a", "b"))
    with pytest.raises(ValueError, match="select_classes"):
        train(model, other, None, config=_tiny_config(), out_dir=tmp_path)
    big = CellDataset(np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]), CLASSES)
    with pytest.raises(ValueError, match="32x32 px"):
        train(model, big, None, config=_tiny_config(), out_dir=tmp_path)


# --------------------------------------------------------------------------- sd15
@pytest.fixture
def tiny_sd15(tmp_path):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 8), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=768,
        attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), latent_channels=4,
        norm_num_groups=4, layers_per_block=1, sample_size=8, scaling_factor=0.18215,
    )
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          num_train_timesteps=1000)
    root = tmp_path / "sd15"
    unet.save_pretrained(root / "unet")
    vae.save_pretrained(root / "vae")
    sched.save_pretrained(root / "scheduler")
    return root


def test_sd15_trains_unet_with_frozen_vae(tiny_sd15, tmp_path):
    model = DiffusionModel.from_sd15(tiny_sd15, CLASSES)
    assert model.config.preset == "sd15"
    cond = model.conditioning(torch.tensor([1, -1]))
    assert cond.shape == (2, 77, 768)
    assert torch.equal(cond[0, :, :2], torch.tensor([[0.0, 1.0]]).expand(77, 2))
    assert cond[0, :, 2:].abs().sum() == 0 and cond[1].abs().sum() == 0
    data = _easy_data(8)
    data = CellDataset(data.images[:, 4:12, 4:12], data.labels, CLASSES)  # 8 px for the 8 px VAE
    vae0 = {k: v.clone() for k, v in model.vae.state_dict().items()}
    unet0 = {k: v.clone() for k, v in model.unet.state_dict().items()}
    with pytest.raises(ValueError, match="frozen"):
        train(model, data, None, config=_tiny_config(), out_dir=tmp_path / "x")
    cfg = TrainConfig.sd15(steps=2, batch_size=2, checkpoint_every=1, val_every=0,
                           val_accuracy_images=0, augment=None, ema_decay=0.5)
    out = train(model, data, None, config=cfg, out_dir=tmp_path / "run", progress=False)
    for k, v in out.vae.state_dict().items():
        assert torch.equal(v, vae0[k]), k
    assert out.scaling_factor == pytest.approx(0.18215)
    assert any(not torch.equal(v, unet0[k]) for k, v in out.unet.state_dict().items())
    ckpt = latest_checkpoint(tmp_path / "run")
    assert not (ckpt / "vae.safetensors").exists()  # the frozen VAE is not re-saved


# --------------------------------------------------------------------------- CLI
def test_cli_train_npz(tmp_path, capsys):
    from cytoviz.cli import main

    data = _easy_data(16, seed=1)
    # 16 px does not fit the default 64 px tiny preset's VAE depth? (64 -> 16: factor 4) -> fine
    path = data.save(tmp_path / "cells.npz")
    rc = main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--steps", "2",
               "--vae-steps", "1", "--batch-size", "2", "--no-augment", "--quiet",
               "--val-accuracy-images", "0", "--val-fraction", "0.25"])
    assert rc == 0
    loaded = DiffusionModel.from_pretrained(tmp_path / "run" / "model")
    assert loaded.class_names == CLASSES and loaded.config.image_size == 16
    cfg = TrainConfig.load(tmp_path / "run" / "model" / "train_config.json")
    assert cfg.steps == 2 and cfg.augment is None
    rc = main(["train", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "r2")])
    assert rc == 2
    assert "nope.npz" in capsys.readouterr().err


def test_cli_train_zoom_flag(tmp_path, capsys):
    from cytoviz.cli import main

    path = _easy_data(16, seed=1).save(tmp_path / "cells.npz")
    common = ["train", "--data", str(path), "--steps", "1", "--vae-steps", "1", "--batch-size",
              "2", "--quiet", "--val-accuracy-images", "0", "--val-fraction", "0.25"]
    rc = main([*common, "--out", str(tmp_path / "run"), "--zoom", "0.8,1.25"])
    assert rc == 0
    cfg = TrainConfig.load(tmp_path / "run" / "model" / "train_config.json")
    assert cfg.augment is not None and tuple(cfg.augment.zoom) == (0.8, 1.25)
    assert not cfg.augment.randaugment
    assert main([*common, "--out", str(tmp_path / "r2"), "--zoom", "big"]) == 2
    assert "--zoom" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "r3"), "--zoom", "0.8,1.25",
                 "--no-augment"]) == 2
    assert "--no-augment" in capsys.readouterr().err


def test_cli_help_lists_options(capsys):
    from cytoviz.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for opt in ("--data", "--out", "--preset", "--sd15-path", "--steps", "--vae-steps",
                "--batch-size", "--seed", "--no-resume", "--max-minutes", "accelerate launch"):
        assert opt in text


def test_validation_accuracy_through_the_classifier(tmp_path, tiny_model_config):
    data = _easy_data(8)
    cfg = _tiny_config(steps=1, vae_steps=0, val_accuracy_images=4, val_accuracy_trials=2)
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, data, config=cfg,
          out_dir=tmp_path, progress=False)
    hist = json.loads((tmp_path / "history.json").read_text())["history"]
    val = [h for h in hist if h["kind"] == "val"][-1]
    assert val["val_accuracy_images"] == 4
    assert 0.0 <= val["val_accuracy"] <= 1.0 and val["val_accuracy"] * 4 == round(val["val_accuracy"] * 4)


def test_cli_train_synthetic(tmp_path):
    from cytoviz.cli import main

    rc = main(["train", "--data", "synthetic", "--synthetic-scale", "0.01", "--out",
               str(tmp_path / "run"), "--steps", "1", "--vae-steps", "1", "--batch-size", "2",
               "--vae-batch-size", "2", "--quiet", "--val-accuracy-images", "0"])
    assert rc == 0
    model = DiffusionModel.from_pretrained(tmp_path / "run" / "model")
    assert model.n_classes == 10 and model.config.image_size == 64
    hist = json.loads((tmp_path / "run" / "history.json").read_text())["history"]
    assert [h["kind"] for h in hist] == ["train_vae", "train_unet", "val"]


def test_cli_train_image_folder(tmp_path, pbc_dir):
    from cytoviz.cli import main

    rc = main(["train", "--data", str(pbc_dir), "--image-size", "16", "--out", str(tmp_path / "run"),
               "--steps", "1", "--vae-steps", "1", "--batch-size", "2", "--vae-batch-size", "2",
               "--quiet", "--val-accuracy-images", "0", "--no-augment"])
    assert rc == 0
    model = DiffusionModel.from_pretrained(tmp_path / "run" / "model")
    assert model.config.image_size == 16 and "neutrophil" in model.class_names


def test_cosine_schedule_factor_and_history(tmp_path, tiny_model_config):
    """Warm-up, then half a cosine from the peak to 0 at the last UNet step."""
    from cytoviz.diffusion._trainer import _lr_factor

    assert _lr_factor(0, 4) == pytest.approx(0.25)
    assert _lr_factor(3, 4) == pytest.approx(1.0)
    assert _lr_factor(10, 4) == 1.0  # constant without a total
    assert _lr_factor(4, 4, 14) == pytest.approx(1.0)
    assert _lr_factor(9, 4, 14) == pytest.approx(0.5)
    assert _lr_factor(14, 4, 14) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    data = _easy_data(8)
    cfg = _tiny_config(steps=6, vae_steps=0, warmup_steps=2, lr=1e-3, lr_schedule="cosine")
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
          out_dir=tmp_path, progress=False)
    hist = json.loads((tmp_path / "history.json").read_text())["history"]
    lrs = [h["lr"] for h in hist if h.get("kind") == "train_unet"]
    assert max(lrs) == pytest.approx(1e-3)
    assert lrs[-1] < 0.2 * max(lrs)  # decayed
    assert all(a >= b for a, b in itertools.pairwise(lrs[1:]))  # monotone after the warm-up


def test_cosine_resume_refuses_changed_steps(tmp_path, tiny_model_config):
    """With the cosine decay the step count shapes the schedule: a resume must keep it."""
    data = _easy_data(8)
    cfg = _tiny_config(steps=4, vae_steps=0, lr_schedule="cosine")
    train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
          out_dir=tmp_path, progress=False, stop_at=2)
    with pytest.raises(ValueError, match=r"different settings for \['steps'\]"):
        train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None,
              config=cfg.replace(steps=6), out_dir=tmp_path, progress=False)
    model = train(DiffusionModel.build(CLASSES, tiny_model_config, seed=0), data, None, config=cfg,
                  out_dir=tmp_path, progress=False)
    assert model is not None


# --------------------------------------------------------------------------- class embedding
def test_class_embedding_reaches_the_unet_and_trains(tmp_path, tiny_model_config):
    cfg_model = dataclasses.replace(tiny_model_config, class_embedding=True)
    model = DiffusionModel.build(CLASSES, cfg_model, seed=0)
    assert model.unet.config.class_embed_type == "projection"
    cond = model.conditioning(torch.tensor([0, 1, -1]))
    kw = model.unet_kwargs(cond)
    assert torch.equal(kw["class_labels"], cond[:, 0, :])
    # Without the class embedding no extra input is passed.
    assert DiffusionModel.build(CLASSES, tiny_model_config, seed=0).unet_kwargs(cond) == {}
    # The label changes the prediction through the embedding alone: with the cross-attention
    # inputs held at the null condition, the class rows still give different outputs.
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)).expand(2, -1, -1, -1)
    null = model.conditioning(torch.tensor([-1, -1]))
    with torch.no_grad():
        for p in model.unet.class_embedding.parameters():
            p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
        out = model.unet(z, torch.tensor([500, 500]), encoder_hidden_states=null,
                         class_labels=model.conditioning(torch.tensor([0, 1]))[:, 0, :]).sample
    assert not torch.allclose(out[0], out[1])
    # It trains, saves and loads with its config.
    trained = train(model, _easy_data(16), None, config=_tiny_config(), out_dir=tmp_path / "run",
                    progress=False)
    loaded = DiffusionModel.from_pretrained(tmp_path / "run" / "model")
    assert loaded.config.class_embedding and loaded.unet.config.class_embed_type == "projection"
    for k, v in trained.unet.state_dict().items():
        assert torch.equal(v, loaded.unet.state_dict()[k]), k


def test_cli_class_embedding_flag(tmp_path, capsys, tiny_sd15):
    from cytoviz.cli import main

    path = _easy_data(16, seed=1).save(tmp_path / "cells.npz")
    rc = main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--steps", "1",
               "--vae-steps", "1", "--batch-size", "2", "--no-augment", "--quiet",
               "--val-accuracy-images", "0", "--val-fraction", "0.25", "--class-embedding"])
    assert rc == 0
    assert DiffusionModel.from_pretrained(tmp_path / "run" / "model").config.class_embedding
    rc = main(["train", "--data", str(path), "--out", str(tmp_path / "sd"), "--preset", "sd15",
               "--sd15-path", str(tiny_sd15), "--class-embedding"])
    assert rc == 2
    assert "--class-embedding and --vae-channels are for the tiny preset" in capsys.readouterr().err
