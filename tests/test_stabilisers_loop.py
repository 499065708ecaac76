"""The stabilisers in the shared loop: --r1-gamma/--r1-every, --augment and --spectral-norm.

Each one changes training, every combination trains with finite losses, a run with all of
them on resumes exactly, a changed one refuses --resume, and a bad value is a usage error.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_train import assert_same_run, run_training, weights

from tinygan import gan, nn
from tinygan import train as train_module
from tinygan.checkpoint import read_checkpoint
from tinygan.nn import SpectralNorm
from tinygan.train import MnistConfig, TrainConfig
from tinygan.utils.run import RunError
from tinygan.utils.streams import RandomStreams

DEMOS = Path(__file__).resolve().parent.parent / "demos"
ALL_ON = dict(r1_gamma=1.0, r1_every=2, augment="translation,cutout", spectral_norm=True)


@pytest.mark.parametrize(
    "flag", [{"r1_gamma": 1.0}, {"augment": "translation,cutout"}, {"spectral_norm": True}],
    ids=["r1", "augment", "spectral_norm"],
)  # fmt: skip
def test_each_stabiliser_changes_training(tmp_path, flag):
    baseline = run_training(tmp_path / "a", steps=2)
    changed = run_training(tmp_path / "b", steps=2, **flag)
    g0, g1 = weights(baseline[0]), weights(changed[0])
    assert any(not np.array_equal(g0[k], g1[k]) for k in g0)  # G learnt from another D
    assert baseline[2].history["d_loss"] != changed[2].history["d_loss"]


@pytest.mark.parametrize(
    "loss, r1, policy, sn",
    [(loss, r1, policy, sn)
     for loss in ("gan", "lsgan", "hinge")
     for r1, policy, sn in itertools.product((0.0, 1.0), ("", "translation,cutout"), (0, 1))]
    + [("wgan-gp", 0.0, "translation,cutout", sn) for sn in (0, 1)],
)  # fmt: skip
def test_every_combination_trains_with_finite_losses(tmp_path, loss, r1, policy, sn):
    extra = {"d_steps": 2} if loss == "wgan-gp" else {}
    G, D, run = run_training(
        tmp_path, loss, steps=2, r1_gamma=r1, augment=policy, spectral_norm=bool(sn), **extra
    )
    assert all(np.isfinite(v).all() for v in run.history.values())
    assert (run.history["penalty"][-1] > 0) == (loss == "wgan-gp" or r1 > 0)
    normalised = [m for m in D.modules() if any(isinstance(h, SpectralNorm)
                                                for h in m._forward_pre_hooks)]  # fmt: skip
    assert bool(normalised) == bool(sn)


def test_lazy_r1_is_applied_on_every_r1_every_th_d_update_with_gamma_times_k(tmp_path):
    _, _, lazy = run_training(tmp_path / "a", r1_gamma=1.0, r1_every=2, steps=4)
    penalty = lazy.history["penalty"]
    assert penalty[0] > 0 and penalty[2] > 0 and penalty[1] == penalty[3] == 0.0
    _, _, every = run_training(tmp_path / "b", r1_gamma=1.0, steps=1)
    assert penalty[0] == pytest.approx(2 * every.history["penalty"][0], rel=1e-5)  # gamma * 2


def test_augmentation_reaches_d_and_g_updates_from_the_augment_stream(tmp_path, monkeypatch):
    calls = []
    real_augment = gan.diff_augment

    def counted(x, policy, rng):
        calls.append(policy)
        return real_augment(x, policy, rng)

    monkeypatch.setattr(gan, "diff_augment", counted)
    run_training(tmp_path, augment="translation", steps=2, d_steps=2)
    assert calls == ["translation"] * (2 * (2 * 2 + 1))  # real and fake per D update, G's fakes
    a, b = RandomStreams(0).augment(1, 0), RandomStreams(0).augment(1, 2)
    assert a.integers(1 << 30) != b.integers(1 << 30)  # G's update draws its own


def test_spectral_norm_is_in_the_checkpoint(tmp_path):
    run_training(tmp_path, model="dcgan", spectral_norm=True, steps=2)
    saved = read_checkpoint(tmp_path / "run" / "checkpoint.npz")
    keys = [k for k in saved if k.startswith("discriminator/")]
    assert any(k.endswith("weight_orig") for k in keys)
    assert any(k.endswith("weight_u") for k in keys) and any(k.endswith("weight_v") for k in keys)


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_resume_with_every_stabiliser_on_is_exact(tmp_path, model):
    settings = dict(model=model, d_steps=2, **ALL_ON)
    straight = run_training(tmp_path / "a", "hinge", **settings)
    run_training(tmp_path / "b", "hinge", steps=2, **settings)  # stops half way
    resumed = run_training(tmp_path / "b", "hinge", resume=True, **settings)
    assert resumed[2].step == 4
    assert_same_run(straight, resumed)  # weight_orig, weight_u and weight_v included


def test_a_signal_mid_step_with_every_stabiliser_on_then_resume_is_exact(tmp_path, monkeypatch):
    straight = run_training(tmp_path / "a", "hinge", checkpoint_every=100, **ALL_ON)
    real_d_step, calls = train_module.d_step, []

    def d_step_then_signal(*args, **kwargs):
        result = real_d_step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # between the D and G updates of step 2
        return result

    monkeypatch.setattr(train_module, "d_step", d_step_then_signal)
    with pytest.raises(SystemExit):
        run_training(tmp_path / "b", "hinge", checkpoint_every=100, **ALL_ON)
    monkeypatch.setattr(train_module, "d_step", real_d_step)
    resumed = run_training(tmp_path / "b", "hinge", checkpoint_every=100, resume=True, **ALL_ON)
    assert resumed[2].history["step"] == [1.0, 2.0, 3.0, 4.0]
    assert_same_run(straight, resumed)


@pytest.mark.parametrize(
    "change", [{"r1_gamma": 0.5}, {"r1_every": 4}, {"augment": "cutout"}, {"spectral_norm": False}]
)
def test_resume_refuses_a_changed_stabiliser(tmp_path, change):
    run_training(tmp_path, steps=2, **ALL_ON)
    name = next(iter(change))
    with pytest.raises(RunError, match=name):
        run_training(tmp_path, steps=4, resume=True, **(ALL_ON | change))


def test_a_run_from_before_the_stabilisers_resumes_with_them_off_only(tmp_path):
    straight = run_training(tmp_path / "a")
    run_training(tmp_path / "b", steps=2)
    config_json = tmp_path / "b" / "run" / "config.json"
    saved = json.loads(config_json.read_text())
    for name in ALL_ON:  # as tinygan 0.4 wrote it
        del saved[name]
    config_json.write_text(json.dumps(saved))
    with pytest.raises(RunError, match="r1_gamma: 0.0 -> 1.0"):
        run_training(tmp_path / "b", resume=True, r1_gamma=1.0)
    assert_same_run(straight, run_training(tmp_path / "b", resume=True))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"r1_gamma": -1.0}, "r1_gamma must be in [0, inf), got -1.0"),
        ({"r1_gamma": float("nan")}, "r1_gamma must be in [0, inf), got nan"),
        ({"r1_gamma": float("inf")}, "r1_gamma must be in [0, inf), got inf"),
        ({"r1_every": 0}, "r1_every must be in [1, inf), got 0"),
        ({"augment": "rotate"}, "augment: unknown augmentation 'rotate'"),
        ({"r1_gamma": 1.0, "loss": "wgan-gp"}, "r1_gamma: a WGAN-GP critic has its own"),
    ],
)
def test_bad_stabiliser_settings_are_refused(settings, message):
    with pytest.raises(ValueError) as refused:
        TrainConfig(**settings)
    assert message in str(refused.value)


def test_colour_augmentation_is_refused_for_grey_digits_only():
    with pytest.raises(ValueError, match="'color' needs colour images"):
        MnistConfig(augment="translation,color")
    assert TrainConfig(augment="translation,color").augment == "translation,color"


def test_r1_gives_the_mnist_dcgan_a_d_without_batchnorm(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(train_module, "train", lambda G, D, *a, **k: seen.append(D))
    monkeypatch.setattr(train_module.data, "load_training_images", lambda *a: np.zeros(
        (64, 28, 28), np.uint8))  # fmt: skip
    for r1 in (0.0, 1.0):
        config = MnistConfig(model="dcgan", r1_gamma=r1, out=str(tmp_path / str(r1)))
        train_module.train_mnist(config)
    assert [any(isinstance(m, nn.BatchNorm2d) for m in D.modules()) for D in seen] == [True, False]


def demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "script, flag, value, message",
    [
        ("mnist_gan.py", "--r1-gamma", "-1", "r1_gamma must be in [0, inf), got -1.0"),
        ("mnist_gan.py", "--r1-every", "0", "r1_every must be in [1, inf), got 0"),
        ("mnist_gan.py", "--augment", "color", "'color' needs colour images"),
        ("mnist_wgan_gp.py", "--r1-gamma", "1", "a WGAN-GP critic has its own"),
        ("image_folder_dcgan.py", "--augment", "zoom", "unknown augmentation 'zoom'"),
        ("image_folder_dcgan.py", "--r1-gamma", "nan", "r1_gamma must be in [0, inf), got nan"),
    ],
)
def test_a_bad_stabiliser_flag_is_a_usage_error(tmp_path, script, flag, value, message):
    data = ["--root", str(tmp_path)] if script == "image_folder_dcgan.py" else ["--no-download"]
    result = demo(str(DEMOS / script), flag, value, *data, "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_image_folder_demo_trains_with_every_stabiliser(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(8):
        pixels = rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    out = tmp_path / "run"
    args = [
        "--root", str(folder), "--image-size", "32", "--width", "8", "--batch-size", "4",
        "--out", str(out), "--steps", "2", "--loss", "hinge", "--r1-gamma", "1",
        "--augment", "translation,cutout,color", "--spectral-norm",
    ]  # fmt: skip
    result = demo(str(DEMOS / "image_folder_dcgan.py"), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: 2 steps" in result.stdout
    saved = read_checkpoint(out / "checkpoint.npz")
    assert any(k.endswith("weight_orig") for k in saved)
    assert not any("running_mean" in k for k in saved if k.startswith("discriminator/"))


def test_the_stabilisers_train_alike_on_every_device(tmp_path, device):
    """R1, DiffAugment and spectral norm on the device (a GPU, the strict CuPy stand-in)
    give the CPU's run: their random draws are made on the CPU and moved."""
    settings = dict(model="dcgan", steps=2, d_steps=2, **ALL_ON)
    on_cpu = run_training(tmp_path / "cpu", "hinge", device="cpu", **settings)
    on_device = run_training(tmp_path / "device", "hinge", device=device, **settings)
    for a, b in zip(on_cpu[:2], on_device[:2]):
        wa, wb = weights(a), weights(b.to("cpu"))
        assert sorted(wa) == sorted(wb)
        for key in wa:
            np.testing.assert_allclose(wa[key], wb[key], rtol=1e-4, atol=1e-5, err_msg=key)
    for column in ("d_loss", "g_loss", "penalty"):
        np.testing.assert_allclose(on_cpu[2].history[column], on_device[2].history[column],
                                   rtol=1e-4, atol=1e-6)  # fmt: skip
