"""Every demo runs end to end (a few steps), then samples from its own checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tinygan as tg
from tinygan.train import MnistConfig, train_mnist

DEMOS = Path(__file__).resolve().parent.parent / "demos"


def run_demo(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(DEMOS / script), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "script, extra",
    [
        ("mnist_lsgan.py", []),
        ("mnist_lsgan.py", ["--reference"]),
        ("mnist_gan.py", ["--loss", "gan-saturating"]),
        ("mnist_dcgan.py", ["--dataset", "fashion-mnist"]),
        ("mnist_wgan_gp.py", ["--d-steps", "2"]),
    ],
)
def test_mnist_demo_trains_then_samples(request, tmp_path, script, extra):
    if "fashion-mnist" in extra:  # real data, where the loader finds it (else skipped)
        fashion = request.getfixturevalue("fashion_mnist_root")
        extra = [*extra, "--data-root", str(fashion)]
    out = tmp_path / "run"
    common = ["--steps", "2", "--sample-every", "1", "--no-download", "--out", str(out)]
    log = run_demo(script, *common, *extra)
    assert "done: 2 steps" in log
    assert (out / "samples" / "step_000002.png").exists()
    assert (out / "checkpoint.npz").exists()
    run_demo(script, "--sample", "--out", str(out), *extra)
    assert Image.open(out / "samples.png").size == (8 * 30 + 2, 8 * 30 + 2)
    assert (out / "interpolation.png").exists()


def test_mnist_demo_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["--model", "mlp", "--no-download", "--out", str(out), "--sample-every", "1"]
    run_demo("mnist_lsgan.py", "--steps", "1", *args)
    log = run_demo("mnist_lsgan.py", "--steps", "2", "--resume", *args)
    assert "from step 1" in log and "done: 2 steps" in log


@pytest.mark.parametrize(
    "extra",
    [[], ["--generator", "upsample", "--loss", "wgan-gp", "--d-steps", "2", "--z-dim", "16"]],
    ids=["dcgan", "upsample_wgan_gp"],
)
def test_image_folder_demo_trains_on_generated_pictures(tmp_path, extra):
    rng = np.random.default_rng(0)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(10):
        pixels = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    out = tmp_path / "run"
    args = ["--image-size", "32", "--width", "8", "--batch-size", "4", "--out", str(out), *extra]
    log = run_demo("image_folder_dcgan.py", "--root", str(folder), "--steps", "2", *args)
    assert "10 images of 32x32" in log
    assert (out / "samples" / "step_000002.png").exists()
    run_demo("image_folder_dcgan.py", "--sample", *args)
    assert Image.open(out / "samples.png").size == (8 * 34 + 2, 8 * 34 + 2)
    assert (out / "interpolation.png").exists()


def test_image_folder_demo_keeps_batch_norm_out_of_a_critic(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DEMOS / "image_folder_dcgan.py"), "--loss", "wgan-gp",
         "--norm", "batch", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "cannot use BatchNorm" in result.stderr


def test_image_folder_demo_requires_a_root(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DEMOS / "image_folder_dcgan.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "--root is required" in result.stderr


def demo_status(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEMOS / script), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_rerunning_a_demo_keeps_the_earlier_run_unless_told_otherwise(tmp_path):
    out = tmp_path / "R"
    args = ["--no-download", "--out", str(out), "--sample-every", "1"]
    run_demo("mnist_gan.py", "--steps", "3", *args)
    checkpoint = (out / "checkpoint.npz").read_bytes()
    again = demo_status("mnist_gan.py", "--steps", "2", *args)
    assert again.returncode == 1
    assert str(out.resolve()) in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    assert (out / "checkpoint.npz").read_bytes() == checkpoint
    run_demo("mnist_gan.py", "--steps", "2", "--overwrite", *args)
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_000001.png",
        "step_000002.png",
    ]


def test_a_diverging_demo_run_stops_with_an_error_and_finite_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = demo_status(
        "mnist_gan.py", "--optimizer", "sgd", "--lr-g", "1e6", "--lr-d", "1e6", "--steps", "8",
        "--checkpoint-every", "1", "--no-download", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1 and "diverged" in result.stderr, result.stdout + result.stderr
    assert "done:" not in result.stdout
    with np.load(out / "checkpoint.npz") as checkpoint:  # of the step before the first NaN
        assert f"step {int(checkpoint['step']) + 1}: training diverged" in result.stderr
        assert all(np.isfinite(checkpoint[k]).all() for k in checkpoint.files)


def test_resuming_a_run_of_an_older_main_demo_names_the_flags_that_continue_it(tmp_path):
    """A run of 0.5's main demo (no spectral_norm in its config.json: it had none; batches
    of 64; an EMA) is not resumed under today's defaults: the one line names what differs
    and the flags that give the run's own settings back."""
    out = tmp_path / "run"
    args = ["--model", "mlp", "--no-download", "--out", str(out)]
    run_demo("mnist_lsgan.py", "--steps", "1", *args)
    saved = json.loads((out / "config.json").read_text())
    del saved["spectral_norm"]
    saved |= {"batch_size": 64, "ema": 0.995, "steps": 1500}
    (out / "config.json").write_text(json.dumps(saved))
    result = demo_status("mnist_lsgan.py", "--resume", *args)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "spectral_norm: False -> True" in result.stderr
    assert "add --batch-size 64 --ema 0.995 --no-spectral-norm;" in result.stderr
    assert "steps" not in result.stderr  # a longer run is a resumable change


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--lr-g", "nan", "Adam: lr must be a finite number >= 0, got nan"),
        ("--beta2", "1", "Adam: betas must be in [0, 1), got (0.5, 1.0)"),
        ("--ema", "1", "EMA decay must be in [0, 1)"),
        ("--steps", "0", "steps must be in [1, inf), got 0"),
        ("--seed", "-1", "seed must be in [0, inf), got -1"),
        ("--model", "resnet", "model must be one of ('dcgan', 'mlp'), got 'resnet'"),
        ("--batch-size", "0", "batch_size must be at least 1, got 0"),
        ("--dataset", "cifar", "dataset must be one of"),
    ],
)
def test_a_bad_setting_of_the_main_demo_is_one_line_before_anything_is_written(
    tmp_path, flag, value, message
):
    """The main demo's settings are checked by the constructors that use them (Adam, EMA,
    Run, the models, the loader): a refusal is one line and exit status 2."""
    result = demo_status("mnist_lsgan.py", flag, value, "--no-download", "--out",
                         str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_the_main_demo_on_cuda_without_a_gpu_is_one_line(tmp_path):
    if tg.cuda_available():
        pytest.skip("a GPU is usable here, so --device cuda is not a mistake")
    result = demo_status("mnist_lsgan.py", "--device", "cuda", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "cuda" in result.stderr.lower() and "Traceback" not in result.stderr


def checkpoint_arrays(folder) -> dict[str, np.ndarray]:
    with np.load(folder / "checkpoint.npz") as archive:
        return {k: archive[k] for k in archive.files if k != "history_seconds"}


def test_main_demo_resumes_exactly_and_is_the_shared_loop(tmp_path):
    """demos/mnist_lsgan.py: stopped at step 2 and resumed ends as a straight 4-step run, and
    both equal tinygan.train's loop with the same settings (the two loops cannot drift)."""
    common = ["--model", "mlp", "--batch-size", "16", "--sample-every", "2", "--device", "cpu"]
    run_demo("mnist_lsgan.py", *common, "--steps", "4", "--out", str(tmp_path / "straight"))
    run_demo("mnist_lsgan.py", *common, "--steps", "2", "--out", str(tmp_path / "resumed"))
    run_demo("mnist_lsgan.py", *common, "--steps", "4", "--out", str(tmp_path / "resumed"),
             "--resume")  # fmt: skip
    config = MnistConfig(loss="lsgan", model="mlp", batch_size=16, steps=4, device="cpu",
                         lr_g=1e-3, beta2=0.9, spectral_norm=True,
                         out=str(tmp_path / "shared"))  # fmt: skip
    train_mnist(config)
    straight = checkpoint_arrays(tmp_path / "straight")
    for other in ("resumed", "shared"):
        arrays = checkpoint_arrays(tmp_path / other)
        assert arrays.keys() == straight.keys()
        for key, value in straight.items():
            np.testing.assert_array_equal(arrays[key], value, err_msg=f"{other}: {key}")


@pytest.mark.parametrize(
    "script",
    ["mnist_lsgan.py", "mnist_gan.py", "mnist_dcgan.py", "mnist_wgan_gp.py", "mnist_cgan.py",
     "image_folder_dcgan.py", "mnist_semi_supervised.py", "train_mnist_classifier.py"],
)  # fmt: skip
def test_every_training_demo_takes_reference(script):
    """--reference turns the fast paths of tinygan/fast/ off in every demo that trains."""
    result = demo_status(script, "--help")
    assert result.returncode == 0 and "--reference" in result.stdout, result.stderr
