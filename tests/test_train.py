"""The trainer: every loss family trains, resume is exact, outputs are written."""

from __future__ import annotations

import csv
import json
import os
import signal

import numpy as np
import pytest

from tinygan import models, nn
from tinygan import train as train_module
from tinygan.data import BatchLoader
from tinygan.gan import LOSSES
from tinygan.train import TrainConfig, train
from tinygan.utils.run import sample_from_checkpoint


def tiny_images(n: int = 64, seed: int = 0) -> np.ndarray:
    """Bright squares at random places on black, uint8 (N, 28, 28)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for img, (r, c) in zip(images, rng.integers(0, 20, size=(n, 2))):
        img[r : r + 8, c : c + 8] = 255
    return images


def tiny_gan(loss: str = "lsgan", model: str = "mlp", z_dim: int = 8):
    rng = np.random.default_rng(0)
    if model == "mlp":
        G = models.mlp_generator(z_dim, hidden=32, rng=rng)
        return G, models.mlp_discriminator(hidden=32, rng=rng)
    return models.mnist_models("dcgan", z_dim, critic=LOSSES[loss].critic)


def run_training(tmp_path, loss="lsgan", model="mlp", **overrides) -> tuple:
    """Train a tiny GAN; returns (G, D, run)."""
    settings = dict(
        loss=loss, steps=4, batch_size=16, z_dim=8, out=str(tmp_path / "run"),
        sample_every=2, checkpoint_every=2,
    )  # fmt: skip
    config = TrainConfig(**(settings | overrides))
    tmp_path.mkdir(parents=True, exist_ok=True)
    G, D = tiny_gan(loss, model, config.z_dim)
    loader = BatchLoader(tiny_images(), config.batch_size, seed=config.seed)
    with open(tmp_path / "log.txt", "a") as log:
        run = train(G, D, loader, config, stream=log)
    return G, D, run


def weights(module) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    "loss, extra",
    [("gan", {}), ("gan-saturating", {}), ("lsgan", {}), ("wgan-gp", {"d_steps": 2}),
     ("lsgan", {"optimizer": "sgd", "lr_g": 0.01, "lr_d": 0.01})],
)  # fmt: skip
def test_every_loss_family_changes_both_networks(tmp_path, loss, extra):
    G0, D0 = tiny_gan(loss)
    g0, d0 = weights(G0), weights(D0)
    G, D, run = run_training(tmp_path, loss, steps=1, **extra)
    assert all(np.isfinite(v[-1]) for v in run.history.values())
    for before, module in ((g0, G), (d0, D)):
        after = weights(module)
        assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert (run.history["penalty"][-1] > 0) == (loss == "wgan-gp")


def test_dcgan28_wgan_gp_step_runs(tmp_path):
    _, D, run = run_training(tmp_path, "wgan-gp", model="dcgan", steps=1)
    assert np.isfinite(run.history["d_loss"][-1]) and run.history["penalty"][-1] > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())  # a critic


def test_train_writes_samples_losses_config_and_checkpoint(tmp_path):
    run_training(tmp_path)
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


def assert_same_run(a, b) -> None:
    """Two (G, D, run) triples ended with identical weights and loss histories."""
    for name, x, y in (("generator", a[0], b[0]), ("discriminator", a[1], b[1])):
        wx, wy = weights(x), weights(y)
        for key in wx:
            np.testing.assert_array_equal(wx[key], wy[key], err_msg=f"{name}.{key}")
    for column in ("step", "d_loss", "g_loss", "d_real", "d_fake", "penalty"):
        assert a[2].history[column] == b[2].history[column], column


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    straight = run_training(tmp_path / "a", "wgan-gp", d_steps=2)
    run_training(tmp_path / "b", "wgan-gp", d_steps=2, steps=2)  # stops half way
    resumed = run_training(tmp_path / "b", "wgan-gp", d_steps=2, resume=True)
    assert resumed[2].step == 4
    assert_same_run(straight, resumed)


def test_resume_refuses_different_settings(tmp_path):
    run_training(tmp_path)
    with pytest.raises(ValueError, match="lr_g"):
        run_training(tmp_path, lr_g=1e-3, resume=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finishes_the_step_saves_it_and_resume_is_exact(tmp_path, monkeypatch, signum):
    """A signal in the middle of step 2 (between its D and G updates) stops after step 2."""
    straight = run_training(tmp_path / "a", steps=4, checkpoint_every=100)
    real_d_step = train_module.d_step
    calls = []

    def d_step_then_signal(*args, **kwargs):
        result = real_d_step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)  # arrives before the G update of step 2
        return result

    monkeypatch.setattr(train_module, "d_step", d_step_then_signal)
    with pytest.raises(SystemExit) as stop:
        run_training(tmp_path / "b", steps=4, checkpoint_every=100)
    assert stop.value.code == 128 + signum
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.setattr(train_module, "d_step", real_d_step)
    resumed = run_training(tmp_path / "b", steps=4, checkpoint_every=100, resume=True)
    assert resumed[2].history["step"] == [1.0, 2.0, 3.0, 4.0]
    assert_same_run(straight, resumed)


def test_sample_from_checkpoint_writes_grid_and_strip(tmp_path):
    run_training(tmp_path)
    g = models.mlp_generator(8, hidden=32, rng=np.random.default_rng(5))
    grid, strip = sample_from_checkpoint(g, tmp_path / "run" / "checkpoint.npz", tmp_path, 8)
    assert grid.exists() and strip.exists()


def test_config_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="hinge")
