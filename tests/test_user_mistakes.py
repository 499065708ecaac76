"""A user's mistake ends a demo in one plain line on stderr, not a traceback.

Each demo runs its ``main`` through ``tinygan.utils.cli.run_main``: a setting that cannot
work is a usage error (exit status 2), a problem with the data, a checkpoint or the disk
exits with status 1, and ``--debug`` shows the traceback. Real subprocesses, as a user runs
them; each stops before its first training step, so the tests take seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DEMOS = Path(__file__).resolve().parent.parent / "demos"


def demo(script: str, *args: str, cwd: Path | None = None, home: Path | None = None):
    """Run ``demos/<script>``; with ``home``, the MNIST found is the bundled test set (the
    data folders it searches are empty folders under ``home``), whatever this machine has."""
    env = dict(os.environ)
    if home is not None:
        env |= {"TINYGAN_DATA": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache")}
    return subprocess.run(
        [sys.executable, str(DEMOS / script), *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=env,
    )  # fmt: skip


def assert_one_line(result: subprocess.CompletedProcess, status: int, *words: str) -> str:
    """The demo stopped with ``status`` and one line on stderr holding every word."""
    err = result.stderr.strip()
    assert result.returncode == status, result.stdout + result.stderr
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def pictures(folder: Path, n: int) -> Path:
    """``n`` random 20x20 RGB PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


TINY = ["--z-dim", "8", "--steps", "1"]  # a later "--steps" wins: argparse keeps the last
TINY_FOLDER_RUN = ["--image-size", "32", "--width", "4", *TINY]


# --------------------------------------------------------------------------- data mistakes
def empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def only_text(tmp_path: Path) -> Path:
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("no picture")
    return tmp_path / "texts"


@pytest.mark.parametrize(
    "script, flag, folder, words",
    [
        ("mnist_lsgan.py", "--data-root", empty, ["MNIST train split not found", "lacks"]),
        ("mnist_lsgan.py", "--data-root", lambda tmp: tmp / "missing", ["does not exist"]),
        ("mnist_gan.py", "--data-root", empty, ["MNIST train split not found", "lacks"]),
        ("image_folder_dcgan.py", "--root", lambda tmp: tmp / "missing", ["not a folder"]),
        ("image_folder_dcgan.py", "--root", empty, ["no image files"]),
        ("image_folder_dcgan.py", "--root", only_text, ["notes.txt: not an image file"]),
    ],
    ids=["lsgan-empty-data-root", "lsgan-missing-data-root", "gan-empty-data-root",
         "missing-root", "empty-root", "root-of-text-files"],
)  # fmt: skip
def test_a_data_mistake_is_one_line_and_status_1(tmp_path, script, flag, folder, words):
    where = folder(tmp_path)
    out = tmp_path / "run"
    offline = [] if flag == "--root" else ["--no-download"]
    result = demo(script, flag, str(where), *offline, "--out", str(out), *TINY)
    assert_one_line(result, 1, f"{script}: error: ", str(where), *words)
    assert not (out / "checkpoint.npz").exists()


def test_debug_shows_the_traceback_of_a_mistake(tmp_path):
    result = demo("mnist_lsgan.py", "--data-root", str(empty(tmp_path)), "--no-download",
                  "--out", str(tmp_path / "run"), "--debug")  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "DatasetError: MNIST train split" in result.stderr


# --------------------------------------------------------------------------- settings
def test_a_batch_larger_than_the_image_folder_is_refused_before_training(tmp_path):
    out = tmp_path / "run"
    root = pictures(tmp_path / "three", 3)
    result = demo("image_folder_dcgan.py", "--root", str(root), "--batch-size", "16",
                  "--out", str(out), *TINY_FOLDER_RUN)  # fmt: skip
    err = assert_one_line(result, 2, "batch_size 16 is more than the 3 images", "at most 3")
    assert "drop_last" not in err
    assert not (out / "config.json").exists() and not (out / "checkpoint.npz").exists()


@pytest.mark.parametrize(
    "script, args, words",
    [
        ("mnist_lsgan.py", ["--batch-size", "20000"],
         ["batch_size 20000 is more than the 10,000 images", "at most 10,000"]),
        ("mnist_gan.py", ["--batch-size", "20000"],
         ["batch_size 20000 is more than the 10,000 images", "at most 10,000"]),
        ("mnist_semi_supervised.py", ["--labels-per-class", "5000"],
         ["5000 labelled examples per class", "at most 723 per class"]),
        ("mnist_semi_supervised.py", ["--batch-size", "20000"],
         ["batch_size 20000 is more than the 8,000 images"]),
    ],
)  # fmt: skip
def test_settings_that_do_not_fit_mnist_are_refused_before_training(tmp_path, script, args, words):
    """On the bundled 10,000 digits (8,000 of them train the semi-supervised demo)."""
    out = tmp_path / "run"
    result = demo(script, *args, "--no-download", "--out", str(out), home=tmp_path)
    err = assert_one_line(result, 2, *words)
    assert "drop_last" not in err
    assert not (out / "config.json").exists() and not (out / "checkpoint.npz").exists()


@pytest.mark.parametrize("width", ["0", "-2"])
def test_a_width_below_1_is_a_usage_error(tmp_path, width):
    root = pictures(tmp_path / "pictures", 2)
    result = demo("image_folder_dcgan.py", "--root", str(root), "--width", width,
                  "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"image_folder_dcgan.py: error: width must be in [1, inf), got {width}"
    )
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("script", ["mnist_lsgan.py", "mnist_gan.py", "mnist_cgan.py"])
def test_a_damaged_checkpoint_is_status_1_not_a_usage_error(tmp_path, script):
    """A CheckpointError is a RuntimeError, yet no setting: status 1, like the data's."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.npz").write_bytes(b"half a checkpoint")
    result = demo(script, "--sample", "--out", str(tmp_path / "run"))
    assert_one_line(result, 1, "checkpoint.npz")


# --------------------------------------------------------------------------- outputs
def test_the_image_folder_demo_never_trains_on_its_own_outputs(tmp_path):
    """``--root .`` with the run's folder inside it: the resumed run, and another run
    beside it, read the 6 pictures, never the grids, losses.png or progress.gif."""
    root = pictures(tmp_path / "pictures", 6)
    args = ["--root", ".", "--batch-size", "2", "--sample-every", "1", "--checkpoint-every", "1",
            *TINY_FOLDER_RUN]  # fmt: skip
    first = demo("image_folder_dcgan.py", *args, "--steps", "2", "--out", "run", cwd=root)
    assert first.returncode == 0, first.stderr
    assert "6 images of 32x32" in first.stdout and "skipped" not in first.stdout
    outputs = [p for p in (root / "run").rglob("*") if p.suffix in (".png", ".gif")]
    assert len(outputs) >= 4  # two grids, losses.png, progress.gif: pictures a loader reads

    resumed = demo("image_folder_dcgan.py", *args, "--steps", "3", "--out", "run", "--resume",
                   cwd=root)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "6 images of 32x32" in resumed.stdout and "from step 2" in resumed.stdout
    assert re.search(r"^skipped run: this run's output folder, .*never read", resumed.stdout, re.M)

    beside = demo("image_folder_dcgan.py", *args, "--steps", "1", "--out", "run2", cwd=root)
    assert beside.returncode == 0, beside.stderr
    assert "6 images of 32x32" in beside.stdout
    assert "skipped run: it holds a training run (config.json with a checkpoint" in beside.stdout


def test_a_root_inside_the_runs_own_folder_is_refused(tmp_path):
    root = pictures(tmp_path / "run" / "pictures", 2)
    result = demo("image_folder_dcgan.py", "--root", str(root), "--out", str(tmp_path / "run"),
                  *TINY_FOLDER_RUN)  # fmt: skip
    assert_one_line(result, 1, "lies in this run's output folder")


# --------------------------------------------------------------------------- every demo
@pytest.mark.parametrize("script", sorted(p.name for p in DEMOS.glob("*.py")))
def test_every_demo_runs_its_main_through_run_main(script):
    """The one clean stop holds for every demo, the ones whose mistakes are not tested
    above included."""
    text = (DEMOS / script).read_text(encoding="utf-8")
    assert re.search(r'^if __name__ == "__main__":\n    run_main\(main\)', text, re.M), (
        f"{script}: end it with `run_main(main)`, so that a mistake is one line"
    )
