"""The trainer: every loss family trains, resume is exact, outputs are written."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygan import models, nn
from tinygan import train as train_module
from tinygan.checkpoint import read_checkpoint
from tinygan.data import BatchLoader
from tinygan.gan import LOSSES, generate
from tinygan.tensor import Tensor
from tinygan.train import MnistConfig, TrainConfig, train
from tinygan.utils import run as run_module
from tinygan.utils.images import save_grid
from tinygan.utils.run import Run, RunError, load_sampler, sample_from_checkpoint
from tinygan.utils.streams import RandomStreams

ROOT = Path(__file__).resolve().parent.parent


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
    return models.mnist_models("dcgan", z_dim, d_batchnorm=not LOSSES[loss].critic)


def run_training(tmp_path, loss="lsgan", model="mlp", config_class=TrainConfig, **overrides):
    """Train a tiny GAN; returns (G, D, run)."""
    settings = dict(
        loss=loss, steps=4, batch_size=16, z_dim=8, out=str(tmp_path / "run"),
        sample_every=2, checkpoint_every=2,
    )  # fmt: skip
    config = config_class(**(settings | overrides))
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
    [("gan", {}), ("gan-saturating", {}), ("lsgan", {}), ("hinge", {}), ("wgan-gp", {"d_steps": 2}),
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


def test_every_n_steps_settings_at_0_write_no_grid_and_no_checkpoint(tmp_path):
    _, _, run = run_training(tmp_path, sample_every=0, checkpoint_every=0)
    assert run.step == 4 and sorted(run_files(tmp_path / "run")) == ["config.json"]


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
    with pytest.raises(RunError, match="lr_g"):
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
        TrainConfig(loss="no-such-loss")


# ----------------------------------------------------------------------------- the run folder
def run_files(out) -> dict[str, bytes]:
    """Every file under ``out``, by relative path, with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_starting_a_run_where_one_exists_stops_and_names_the_options(tmp_path):
    run_training(tmp_path, steps=4)
    before = run_files(tmp_path / "run")
    with pytest.raises(RunError) as stop:
        run_training(tmp_path, steps=2)
    message = str(stop.value)
    assert str((tmp_path / "run").resolve()) in message
    assert "--resume" in message and "--overwrite" in message and "--out" in message
    assert run_files(tmp_path / "run") == before  # not a byte changed


def test_overwrite_deletes_only_the_files_a_run_writes(tmp_path):
    out = tmp_path / "run"
    run_training(tmp_path, steps=4)
    (out / "metrics.csv").write_text("step\n4\n")
    (out / "progress.gif").write_bytes(b"GIF89a")
    (out / "notes.txt").write_text("mine")
    (out / "samples" / "favourite.png").write_bytes(b"mine too")
    _, _, run = run_training(tmp_path, steps=1, overwrite=True)
    assert run.history["step"] == [1.0]
    assert sorted(run_files(out)) == [
        "checkpoint.npz", "config.json", "diagnostics.png", "losses.csv", "losses.png",
        "notes.txt", "progress.gif", "samples/favourite.png", "samples/step_000001.png",
    ]  # fmt: skip
    assert [int(r["step"]) for r in csv.DictReader(open(out / "losses.csv"))] == [1]
    assert "deleted" in (tmp_path / "log.txt").read_text()


def test_resume_without_a_checkpoint_says_it_starts_from_step_0(tmp_path):
    _, _, run = run_training(tmp_path, steps=2, resume=True)
    assert run.history["step"] == [1.0, 2.0]
    assert "no checkpoint" in (tmp_path / "log.txt").read_text()


def test_resume_accepts_folders_spelled_another_way(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()
    straight = run_training(tmp_path / "a", steps=4)
    run_training(Path("b"), config_class=MnistConfig, steps=2, out="b/R", data_root="digits")
    resumed = run_training(
        Path("b"), config_class=MnistConfig, steps=4, out="./b/../b/R", resume=True,
        data_root=str(tmp_path / "digits"),
    )  # fmt: skip
    assert_same_run(straight, resumed)
    with pytest.raises(RunError, match="data_root"):  # another folder is another setting
        run_training(Path("b"), config_class=MnistConfig, out="b/R", resume=True, data_root=".")


# ----------------------------------------------------------------------------- divergence
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_diverging_run_stops_at_the_first_non_finite_loss_and_keeps_its_last_checkpoint(
    tmp_path,
):
    huge = dict(optimizer="sgd", lr_g=1e6, lr_d=1e6, steps=10, sample_every=1, checkpoint_every=1)
    with pytest.raises(RunError) as stop:
        run_training(tmp_path, **huge)
    out = tmp_path / "run"
    message = str(stop.value)
    step = int(message.split(":")[0].removeprefix("step "))
    assert "nan" in message or "inf" in message
    assert "lr_g 1e+06" in message and "learning rate" in message
    checkpoint = np.load(out / "checkpoint.npz")
    assert step >= 2 and int(checkpoint["step"]) == step - 1  # the last good one
    norms = {"history_g_grad_norm", "history_d_grad_norm"}  # overflow first: a true record
    assert all(np.isfinite(checkpoint[k]).all() for k in set(checkpoint.files) - norms)
    grids = sorted(p.name for p in (out / "samples").iterdir())
    assert grids == [f"step_{s:06d}.png" for s in range(1, step)]
    assert f"step {step}" in message and str(out.resolve() / "checkpoint.npz") in message
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_non_finite_weights_are_never_checkpointed_or_drawn(tmp_path):
    out = tmp_path / "run"
    run_training(tmp_path, steps=2)
    before = run_files(out)
    config = TrainConfig(steps=4, batch_size=16, z_dim=8, out=str(out), resume=True)
    G, D = tiny_gan()
    run = Run(config, G, D, *(train_module.make_optimizer(m.parameters(), 1e-3, config)
                              for m in (G, D)))  # fmt: skip
    run.resume()
    next(iter(D.parameters())).data[0, 0] = np.inf
    with pytest.raises(RunError, match="discriminator.*not finite"):
        run.save_checkpoint()
    next(iter(G.parameters())).data[0, 0] = np.nan
    with pytest.raises(RunError, match="generator.*not finite"):
        run.save_samples(3)
    assert run_files(out) == before


# ----------------------------------------------------------------------------- signals
def test_a_signal_while_the_checkpoint_is_written_waits_for_the_step_to_end(tmp_path, monkeypatch):
    straight = run_training(tmp_path / "a", steps=4)
    real_save = run_module.save_checkpoint
    saves = []

    def save_with_a_signal(*args, **kwargs):
        saves.append(1)
        if len(saves) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the checkpoint is written
        real_save(*args, **kwargs)

    monkeypatch.setattr(run_module, "save_checkpoint", save_with_a_signal)
    with pytest.raises(SystemExit) as stop:
        run_training(tmp_path / "b", steps=4)  # checkpoints at step 2
    assert stop.value.code == 128 + signal.SIGTERM
    assert int(np.load(tmp_path / "b" / "run" / "checkpoint.npz")["step"]) == 2
    monkeypatch.setattr(run_module, "save_checkpoint", real_save)
    assert_same_run(straight, run_training(tmp_path / "b", steps=4, resume=True))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_the_first_step_stops_without_a_step(tmp_path, monkeypatch, signum):
    straight = run_training(tmp_path / "a", steps=2)
    real_write = Run._write_config

    def write_with_a_signal(self):
        os.kill(os.getpid(), signum)  # while the run starts, before step 1
        real_write(self)

    monkeypatch.setattr(Run, "_write_config", write_with_a_signal)
    with pytest.raises(SystemExit) as stop:
        run_training(tmp_path / "b", steps=2)
    assert stop.value.code == 128 + signum
    out = tmp_path / "b" / "run"
    assert not (out / "checkpoint.npz").exists() and not (out / "samples").exists()
    assert "before step 1" in (tmp_path / "b" / "log.txt").read_text()
    monkeypatch.setattr(Run, "_write_config", real_write)
    assert_same_run(straight, run_training(tmp_path / "b", steps=2, resume=True))


CHILD_STEPS = 6


def child_training(out, stream=None) -> Run:
    """The training the tests below send signals to (in a subprocess), always with resume."""
    config = TrainConfig(
        steps=CHILD_STEPS, batch_size=16, z_dim=8, out=str(out), sample_every=3,
        checkpoint_every=2, log_every=1, resume=True,
    )  # fmt: skip
    G, D = tiny_gan()
    return train(G, D, BatchLoader(tiny_images(), 16, seed=0), config, stream=stream)


def train_in_child(out: str, wait_while_loading: bool) -> None:
    """The subprocess: a line when it loads its data (taking a minute if asked), then trains."""
    print("loading data", flush=True)
    if wait_while_loading:
        time.sleep(60)
    child_training(out, sys.stdout)


def start_child(out, wait_while_loading: bool = False) -> subprocess.Popen:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); from test_train import "
        f"train_in_child; train_in_child({str(out)!r}, {wait_while_loading})"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip


def shell_status(returncode: int) -> int:
    """The status a shell reports: 128 + n for a process that a signal n ended."""
    return 128 - returncode if returncode < 0 else returncode


def wait_for_line(child: subprocess.Popen, start: str) -> None:
    for line in child.stdout:
        if line.startswith(start):
            return
    raise AssertionError(f"no line starting with {start!r}: {child.stderr.read()}")


def test_a_signal_while_the_data_loads_stops_at_once_and_leaves_nothing(tmp_path):
    for signum in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / str(signum)
        child = start_child(out, wait_while_loading=True)
        wait_for_line(child, "loading data")
        child.send_signal(signum)
        _, err = child.communicate(timeout=30)
        assert shell_status(child.returncode) == 128 + signum, err
        assert not out.exists()


def checkpoint_arrays(out) -> dict[str, np.ndarray]:
    """Every array of ``out/checkpoint.npz`` but the wall times."""
    with np.load(out / "checkpoint.npz") as f:
        return {k: f[k] for k in f.files if k != "history_seconds"}


def test_signals_at_random_moments_never_change_the_final_checkpoint(tmp_path):
    """SIGINT or SIGTERM at a random moment of start-up, data loading or the steps (and their
    checkpoint writes); then --resume ends with every array an uninterrupted run ends with.
    """
    child_training(tmp_path / "straight")
    expected = checkpoint_arrays(tmp_path / "straight")
    rng = np.random.default_rng(0)
    moments = ["start-up", "loading data", "step", "step"]
    handled_by_the_run = 0
    for trial, (moment, signum) in enumerate(zip(moments, [signal.SIGINT, signal.SIGTERM] * 2)):
        out = tmp_path / f"trial{trial}"
        child = start_child(out)
        if moment == "step":  # once step k's line is out: in step k + 1 or its checkpoint
            moment = f"step {rng.integers(1, CHILD_STEPS - 2)}/"
        if moment != "start-up":
            wait_for_line(child, moment)
        delay = rng.uniform(0.0, 0.3 if moment == "start-up" else 0.03)
        time.sleep(delay)
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
        where = f"trial {trial}: {signum!r} {delay:.3f} s after {moment!r}\n{err}"
        assert shell_status(child.returncode) in (0, 128 + signum), where
        handled_by_the_run += child.returncode == 128 + signum
        assert child_training(out).step == CHILD_STEPS  # resumed in this process
        got = checkpoint_arrays(out)
        assert sorted(got) == sorted(expected), where
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{where} {key}")
        assert not list(out.rglob("*.tmp")), where
    assert handled_by_the_run >= 2  # the "step" signals at least: stopped after their step


def test_every_grid_is_a_frame_of_progress_gif(tmp_path):
    run_training(tmp_path, steps=4, sample_every=1)
    with Image.open(tmp_path / "run" / "progress.gif") as gif:
        assert gif.n_frames == 4


def test_ema_is_saved_resumed_exactly_and_drawn(tmp_path):
    straight = run_training(tmp_path / "a", "lsgan", model="dcgan", ema=0.9)
    run_training(tmp_path / "b", "lsgan", model="dcgan", ema=0.9, steps=2)
    resumed = run_training(tmp_path / "b", "lsgan", model="dcgan", ema=0.9, resume=True)
    assert_same_run(straight, resumed)
    a, b = straight[2].ema.model.state_dict(), resumed[2].ema.model.state_dict()
    for key in a:
        if not key.endswith(("running_mean", "running_var")):  # remeasured for each grid
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    saved = read_checkpoint(tmp_path / "a" / "run" / "checkpoint.npz")
    assert any(k.startswith("generator_ema/") for k in saved)
    # The grids and --sample draw with the average (BatchNorm re-measured), not with G.
    G, _, run = straight
    weight = "generator_ema/0.weight"
    assert not np.array_equal(saved[weight], G.state_dict()["0.weight"])
    g = models.mnist_models("dcgan", 8)[0]
    assert load_sampler(g, tmp_path / "a" / "run" / "checkpoint.npz", 8) == "generator_ema"
    np.testing.assert_array_equal(g.state_dict()["0.weight"], saved[weight])
    z = Tensor(RandomStreams(0).grid_noise(64, 8))
    save_grid(generate(g, z), tmp_path / "again.png", nrow=8)
    last_grid = tmp_path / "a" / "run" / "samples" / "step_000004.png"
    assert (tmp_path / "again.png").read_bytes() == last_grid.read_bytes()
