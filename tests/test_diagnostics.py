"""The diagnostics: gradient norms, diversity, each failure's warning, and what a run records."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image
from test_train import run_training, tiny_gan

from tinygan import models
from tinygan.checkpoint import read_checkpoint
from tinygan.gan import LOSSES
from tinygan.metrics import QualityScores
from tinygan.optim import Adam
from tinygan.tensor import Tensor
from tinygan.train import TrainConfig
from tinygan.utils import diagnostics
from tinygan.utils.diagnostics import Watch, diversity, gradient_norm
from tinygan.utils.run import HISTORY, Run


def test_gradient_norm_is_the_norm_of_all_gradients_of_the_parameters(device):
    model = models.mlp_discriminator(hidden=16, rng=np.random.default_rng(0)).to(device)
    assert gradient_norm(model.parameters()) == 0.0  # no gradients yet
    x = Tensor(np.random.default_rng(1).standard_normal((8, 1, 28, 28), dtype=np.float32))
    Adam(model.parameters(), lr=1e-3).minimize((model(x.to(device)) ** 2).mean())
    grads = [p.grad.to("cpu").data.astype(np.float64) for p in model.parameters()]
    expected = np.sqrt(sum((g * g).sum() for g in grads))
    norm = gradient_norm(model.parameters())
    assert float(norm) == pytest.approx(expected, rel=1e-5)
    assert (type(norm).__module__.split(".")[0] == "numpy") == (device == "cpu")  # no sync


def test_diversity_is_the_mean_distance_between_two_images():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((5, 1, 3, 4))
    flat = images.reshape(5, -1)
    pairs = [np.linalg.norm(flat[i] - flat[j]) for i in range(5) for j in range(i + 1, 5)]
    assert diversity(images) == pytest.approx(np.mean(pairs), rel=1e-12)
    assert diversity(np.repeat(images[:1], 4, axis=0)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        diversity(images[:1])


def history(steps: int, d_fake, g_norm, g_loss=None) -> dict[str, list[float]]:
    """A run's history of ``steps`` steps, the columns given as functions of the step."""
    s = np.arange(1, steps + 1, dtype=np.float64)
    g_loss = g_loss or (lambda s: 0.5 + 0.01 * np.sin(s))
    columns = {"step": s, "d_fake": d_fake(s), "g_grad_norm": g_norm(s), "g_loss": g_loss(s)}
    return {k: list(np.broadcast_to(v, s.shape)) for k, v in columns.items()}


def winning(s):
    return np.where(s < 150, 0.3, 0.02)


def fading(s):
    return np.where(s < 150, 1.0, 0.01)


def test_d_winning_is_warned_of_once_when_d_fake_sits_at_its_target_and_g_fades():
    watch = Watch(LOSSES["gan"].fake_target)
    assert watch.after_steps(history(199, winning, fading)) == []  # too short to tell
    (warning,) = watch.after_steps(history(300, winning, fading))
    assert warning.startswith("warning: D is winning") and "G's gradient norm is 0.01" in warning
    assert "down from 1 (100 times smaller)" in warning and "non-saturating" in warning
    assert watch.after_steps(history(400, winning, fading)) == []  # once


def test_a_gradient_that_vanishes_exactly_is_told_without_a_ratio():
    (warning,) = Watch(0.0).after_steps(history(300, winning, lambda s: np.where(s < 150, 1, 0)))
    assert "G's gradient norm is 0, down from 1: G gets almost no signal" in warning


@pytest.mark.parametrize(
    "d_fake, g_norm",
    [(lambda s: 0.3, fading), (winning, lambda s: 1.0), (lambda s: 0.3, lambda s: 1.0)],
    ids=["d-fake-away-from-its-target", "g-still-learns", "healthy"],
)
def test_d_winning_needs_both_signs(d_fake, g_norm):
    assert Watch(0.0).after_steps(history(400, d_fake, g_norm)) == []


def test_the_hinge_target_is_minus_1_and_a_critic_has_none():
    hinge = Watch(LOSSES["hinge"].fake_target)
    assert hinge.after_steps(history(300, lambda s: np.where(s < 150, 0.0, -0.85), fading))
    assert not Watch(-1.0).after_steps(history(300, lambda s: -0.7, fading))
    critic = Watch(LOSSES["wgan-gp"].fake_target)
    swinging = history(800, lambda s: -5.0, fading, g_loss=lambda s: np.sin(s / 20))
    assert critic.after_steps(swinging) == []  # no target, no scale: neither warning


def test_oscillating_losses_are_warned_of_steady_noisy_ones_are_not():
    slow_swing = history(600, lambda s: 0.3, lambda s: 1.0, lambda s: 0.5 + 0.6 * np.sin(s / 16))
    (warning,) = Watch(0.0).after_steps(slow_swing)
    assert warning.startswith("warning: the losses oscillate") and "up and down" in warning
    noise = np.random.default_rng(0).standard_normal(600)
    noisy = history(600, lambda s: 0.3, lambda s: 1.0, lambda s: 0.5 + 0.3 * noise)
    assert Watch(0.0).after_steps(noisy) == []
    one_step = history(600, lambda s: 0.3, lambda s: 1.0, lambda s: np.where(s < 400, 0.3, 1.5))
    assert Watch(0.0).after_steps(one_step) == []  # a change of level is no oscillation


def scores(top_class_share: float) -> QualityScores:
    return QualityScores(50.0, 8.0, 0.1, 10, 0.02, top_class_share, 0.1, 2000)


def test_one_digit_over_30_percent_of_the_samples_twice_after_the_warmup_is_mode_collapse():
    watch = Watch(0.0)
    assert watch.after_scores(250, scores(0.9)) == []  # early: every GAN starts collapsed
    assert watch.after_scores(500, scores(0.9)) == []
    assert watch.after_scores(1000, scores(0.4)) == []  # once could be chance
    assert watch.after_scores(1500, scores(diagnostics.TOP_CLASS_SHARE)) == []  # in a row
    assert watch.after_scores(2000, scores(0.4)) == []
    (warning,) = watch.after_scores(2500, scores(0.4))
    assert "mode collapse" in warning and "40% of the 2000 samples of step 2500" in warning
    assert watch.after_grid(3000, 0.1) == watch.after_grid(3500, 0.1) == []  # told once


def test_a_grid_far_less_diverse_than_real_images_twice_after_the_warmup_is_mode_collapse():
    watch = Watch(0.0)
    assert watch.after_grid(500, 0.05) == []
    assert watch.after_grid(750, diagnostics.DIVERSITY_FLOOR) == []
    assert watch.after_grid(1000, 0.2) == []
    (warning,) = watch.after_grid(1250, 0.2)
    assert "mode collapse" in warning and "step 1250 is 20% as diverse" in warning


def test_a_run_records_the_diagnostics_in_losses_csv_and_draws_them(tmp_path):
    G, D, run = run_training(tmp_path, steps=4, checkpoint_every=4)
    out = tmp_path / "run"
    rows = list(csv.DictReader(open(out / "losses.csv")))
    assert list(rows[0]) == list(HISTORY)
    last = rows[-1]
    assert float(last["g_grad_norm"]) == pytest.approx(float(gradient_norm(G.parameters())), 1e-5)
    assert float(last["d_grad_norm"]) == pytest.approx(float(gradient_norm(D.parameters())), 1e-5)
    gap = float(last["d_real"]) - float(last["d_fake"])
    assert float(last["wasserstein"]) == pytest.approx(gap, abs=1e-5)
    assert all(float(r["g_grad_norm"]) > 0 and float(r["d_grad_norm"]) > 0 for r in rows)
    with Image.open(out / "diagnostics.png") as picture:
        assert picture.size == (960, 600)  # two panels: scores, gradient norms
    _, _, critic_run = run_training(tmp_path / "critic", loss="wgan-gp", steps=2)
    with Image.open(tmp_path / "critic" / "run" / "diagnostics.png") as picture:
        assert picture.size == (960, 900)  # and the Wasserstein estimate with the penalty
    assert critic_run.history["penalty"][-1] > 0


def test_a_run_tells_each_warning_once_on_its_progress_stream(tmp_path):
    config = TrainConfig(steps=400, batch_size=8, z_dim=8, out=str(tmp_path / "run"), log_every=50)
    G, D = tiny_gan()
    stream = io.StringIO()
    run = Run(config, G, D, Adam(G.parameters()), Adam(D.parameters()), stream=stream, loss="gan")
    for step in range(1, 401):  # a D that wins from step 150 on, a G whose gradient fades
        norm = 1.0 if step < 150 else 0.005
        run.log(step, d_loss=1.0, g_loss=3.0, d_real=0.99, d_fake=0.01, g_grad_norm=norm)
    assert stream.getvalue().count("warning: D is winning") == 1
    assert run.history["g_grad_norm"][-1] == 0.005 and run.history["d_grad_norm"][-1] == 0.0


def test_a_grid_of_one_repeated_picture_warns_of_mode_collapse(tmp_path):
    real = np.random.default_rng(0).uniform(-1, 1, (16, 1, 28, 28)).astype(np.float32)
    config = TrainConfig(steps=2000, batch_size=8, z_dim=8, out=str(tmp_path / "run"))
    G, D = tiny_gan()
    stream = io.StringIO()
    opts = Adam(G.parameters()), Adam(D.parameters())
    run = Run(config, G, D, *opts, stream=stream, real_examples=real)
    run.save_samples(1000, images=real[:8])  # as diverse as the real images: nothing to say
    run.save_samples(1250, images=np.repeat(real[:1], 8, axis=0))
    assert "warning" not in stream.getvalue()  # once could be chance
    run.save_samples(1500, images=np.repeat(real[:1], 8, axis=0))
    assert stream.getvalue().count("warning: mode collapse?") == 1


def test_a_checkpoint_without_diagnostics_resumes_with_nan_norms_for_its_steps(tmp_path):
    """A run of 0.5 kept no gradient norms (NaN, not drawn) and no Wasserstein estimate,
    which its D(x) and D(G(z)) means give back."""
    run_training(tmp_path, steps=2, checkpoint_every=2)
    path = tmp_path / "run" / "checkpoint.npz"
    arrays = read_checkpoint(path)
    old = {k: v for k, v in arrays.items() if not k.endswith(("_grad_norm", "wasserstein"))}
    np.savez(path, **old)  # as a run of 0.5 left it
    _, _, run = run_training(tmp_path, steps=4, resume=True)
    assert np.isnan(run.history["g_grad_norm"][:2]).all()
    assert np.isfinite(run.history["g_grad_norm"][2:]).all() and len(run.history["step"]) == 4
    h = {k: np.array(v) for k, v in run.history.items()}
    np.testing.assert_array_equal(h["wasserstein"][:2], (h["d_real"] - h["d_fake"])[:2])


def test_a_resumed_run_whose_every_block_holds_a_step_without_norms_gives_no_warning():
    h = history(250, winning, lambda s: np.where(s <= 150, np.nan, 0.01))
    assert Watch(0.0).after_steps(h) == []


def test_noise_around_a_loss_near_zero_is_no_oscillation():
    noise = np.random.default_rng(1).standard_normal(600)
    near_zero = history(600, lambda s: -1.5, lambda s: 1.0, lambda s: 0.05 + 0.3 * noise)
    assert Watch(-1.0).after_steps(near_zero) == []
