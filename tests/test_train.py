"""The trainer: every loss family trains, resume is exact, outputs are written."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tinygan import models
from tinygan.data import BatchLoader
from tinygan.train import GANTrainer, TrainConfig, sample_from_checkpoint


def tiny_images(n: int = 64, seed: int = 0) -> np.ndarray:
    """Bright squares at random places on black, uint8 (N, 28, 28)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for img, (r, c) in zip(images, rng.integers(0, 20, size=(n, 2))):
        img[r : r + 8, c : c + 8] = 255
    return images


def make_trainer(tmp_path, loss="lsgan", model="mlp", **overrides) -> GANTrainer:
    settings = dict(
        loss=loss, steps=4, batch_size=16, z_dim=8, out=str(tmp_path / "run"),
        sample_every=2, checkpoint_every=2,
    )  # fmt: skip
    config = TrainConfig(**(settings | overrides))
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    if model == "mlp":
        g = models.mlp_generator(config.z_dim, hidden=32, rng=rng)
        d = models.mlp_discriminator(hidden=32, rng=rng)
    else:
        g = models.dcgan28_generator(config.z_dim, rng=rng)
        d = models.dcgan28_discriminator(batch_norm=loss != "wgan-gp", rng=rng)
    loader = BatchLoader(tiny_images(), config.batch_size, seed=config.seed)
    return GANTrainer(g, d, loader, config, stream=open(tmp_path / "log.txt", "a"))


def weights(module) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    "loss, extra",
    [("gan", {}), ("gan", {"saturating": True}), ("lsgan", {}), ("wgan-gp", {"d_steps": 2}),
     ("lsgan", {"optimizer": "sgd", "lr_g": 0.01, "lr_d": 0.01})],
)  # fmt: skip
def test_every_loss_family_changes_both_networks(tmp_path, loss, extra):
    trainer = make_trainer(tmp_path, loss, **extra)
    g0, d0 = weights(trainer.generator), weights(trainer.discriminator)
    values = trainer.train_step()
    assert all(np.isfinite(v) for v in values.values())
    for before, module in ((g0, trainer.generator), (d0, trainer.discriminator)):
        after = weights(module)
        assert any(not np.array_equal(before[k], after[k]) for k in before)
    if loss == "wgan-gp":
        assert values["penalty"] > 0


def test_dcgan28_wgan_gp_step_runs(tmp_path):
    trainer = make_trainer(tmp_path, "wgan-gp", model="dcgan")
    values = trainer.train_step()
    assert np.isfinite(values["d_loss"]) and values["penalty"] > 0


def test_train_writes_samples_losses_config_and_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.train()
    out = tmp_path / "run"
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_000002.png",
        "step_000004.png",
    ]
    assert (out / "losses.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(out / "losses.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert json.loads((out / "config.json").read_text())["loss"] == "lsgan"
    assert (out / "checkpoint.npz").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path / "a", "wgan-gp", d_steps=2)
    straight.train()

    first = make_trainer(tmp_path / "b", "wgan-gp", d_steps=2)
    first.config.steps = 2  # stop half way (a checkpoint is written at step 2)
    first.train()
    second = make_trainer(tmp_path / "b", "wgan-gp", d_steps=2, resume=True)
    second.train()

    assert second.step == 4
    for name in ("generator", "discriminator"):
        a, b = weights(getattr(straight, name)), weights(getattr(second, name))
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}.{key}")
    for column in ("step", "d_loss", "g_loss", "d_real", "d_fake", "penalty"):
        assert straight.history[column] == second.history[column], column


def test_resume_refuses_different_settings(tmp_path):
    make_trainer(tmp_path).train()
    other = make_trainer(tmp_path, lr_g=1e-3, resume=True)
    with pytest.raises(ValueError, match="lr_g"):
        other.train()


def test_interrupt_saves_a_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, steps=4)
    calls = {"n": 0}
    real_step = trainer.train_step

    def step_then_interrupt():
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_step()

    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    resumed = make_trainer(tmp_path, resume=True)
    resumed.resume()
    assert resumed.step == 1


def test_sample_from_checkpoint_writes_grid_and_strip(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.train()
    g = models.mlp_generator(8, hidden=32, rng=np.random.default_rng(5))
    grid, strip = sample_from_checkpoint(g, tmp_path / "run" / "checkpoint.npz", tmp_path, 8)
    assert grid.exists() and strip.exists()


def test_config_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="hinge")
