"""A run under faults and mistakes: two processes in one folder, kill -9 while scoring, a
full disk, damaged or foreign checkpoints, an --out that is a file. Each ends in one line
that says what is kept, and nothing a run keeps is lost or mixed with another run's.

The process faults are real: subprocesses that run at the same time, SIGKILL, a file-size
limit (``RLIMIT_FSIZE``, what a full disk looks like to ``write``).
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_train import tiny_images

from tinygan import models
from tinygan.checkpoint import read_checkpoint
from tinygan.data import BatchLoader
from tinygan.train import MnistConfig, TrainConfig, train
from tinygan.utils.fileio import FolderInUse, FolderLock, check_unlocked
from tinygan.utils.run import Run, RunError, check_folder, sample_from_checkpoint

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ROOT / "demos"
Z_DIM = 8


def tiny_generator(z_dim: int = Z_DIM, model: str = "mlp", batch_norm: bool = False):
    if model == "dcgan":
        return models.mnist_models("dcgan", z_dim)[0]
    return models.mlp_generator(
        z_dim, hidden=32, batch_norm=batch_norm, rng=np.random.default_rng(0)
    )


def train_tiny(out, stream=None, config_class=TrainConfig, batch_norm=False, **settings) -> Run:
    """A few steps of a small GAN into ``out`` (the DCGAN-28 pair if ``model="dcgan"``)."""
    defaults = dict(
        steps=4, batch_size=16, z_dim=Z_DIM, out=str(out), sample_every=0, checkpoint_every=2,
        log_every=1, device="cpu",
    )  # fmt: skip
    config = config_class(**(defaults | settings))
    model = getattr(config, "model", "mlp")
    G = tiny_generator(config.z_dim, model, batch_norm)
    if model == "dcgan":
        D = models.mnist_models("dcgan", config.z_dim)[1]
    else:
        D = models.mlp_discriminator(hidden=32, rng=np.random.default_rng(1))
    loader = BatchLoader(tiny_images(), config.batch_size, seed=config.seed)
    return train(G, D, loader, config, stream=stream)


def child_main(out: str, settings: str) -> None:
    """The subprocess: :func:`train_tiny` with the JSON ``settings``, progress on stdout;
    with ``start_at`` (a time.time()), it starts training at that moment, not before."""
    settings = json.loads(settings)
    if "start_at" in settings:  # all imports done: start together with another child
        time.sleep(max(0.0, settings.pop("start_at") - time.time()))
    train_tiny(out, sys.stdout, **settings)


def child_command(out, **settings) -> list[str]:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); "
        f"from test_run_faults import child_main; "
        f"child_main({str(out)!r}, {json.dumps(settings)!r})"
    )
    return [sys.executable, "-c", code]


def child_env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(ROOT)}


def start_child(logs: Path, out, **settings) -> subprocess.Popen:
    """A training subprocess whose output goes to files in ``logs`` (no pipe to fill)."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "stdout.txt", "w") as stdout, open(logs / "stderr.txt", "w") as stderr:
        return subprocess.Popen(
            child_command(out, **settings), stdout=stdout, stderr=stderr, env=child_env()
        )


def run_child(out, preexec_fn=None, **settings) -> subprocess.CompletedProcess:
    return subprocess.run(
        child_command(out, **settings), capture_output=True, text=True, timeout=300,
        env=child_env(), preexec_fn=preexec_fn,
    )  # fmt: skip


def wait_for(condition: Callable[[], bool], child: subprocess.Popen, timeout: float = 240) -> None:
    """Poll ``condition`` every 5 ms while ``child`` lives."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, f"the child ended first (status {child.returncode})"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def one_line(stderr: str) -> str:
    """The single line a stop must print (no traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def folder_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- the folder lock
def test_a_second_run_into_a_live_folder_stops_and_names_the_running_process(tmp_path):
    """With or without --overwrite or --resume, a second run leaves a live run's folder alone;
    --sample may read the live checkpoint but not write beside it."""
    out = tmp_path / "run"
    live = start_child(tmp_path / "live", out, steps=10**6, checkpoint_every=2, log_every=10**6)
    try:
        wait_for(lambda: (out / "checkpoint.npz").exists(), live)
        config_before = (out / "config.json").read_bytes()
        for flags in ({}, {"overwrite": True}, {"resume": True}):
            second = run_child(out, steps=3, seed=1, **flags)
            line = one_line(second.stderr)
            assert second.returncode == 1, (flags, second.stderr)
            assert f"process {live.pid}" in line and "still going" in line, line
            assert "--out" in line
        with pytest.raises(RunError, match=f"process {live.pid}.*--sample would write"):
            sample_from_checkpoint(tiny_generator(), out / "checkpoint.npz", out, Z_DIM)
        assert not (out / "samples.png").exists()
        assert (out / "config.json").read_bytes() == config_before
        assert int(read_checkpoint(out / "checkpoint.npz")["step"]) >= 2  # not deleted
        assert live.poll() is None  # the live run went on
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(timeout=120)
    assert live.returncode == 128 + signal.SIGTERM  # saved its step and stopped as asked
    assert not (out / ".lock").exists()  # let go when it ended


def test_a_folder_lock_is_exclusive_names_its_holder_and_leaves_no_file(tmp_path):
    lock = FolderLock(tmp_path)
    lock.acquire()
    assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(FolderInUse, match=rf"process {os.getpid()} \(this one\)") as refused:
        FolderLock(tmp_path).acquire()  # not reentrant, even in one process
    assert refused.value.pid == os.getpid()
    with pytest.raises(FolderInUse):
        check_unlocked(tmp_path)
    lock.release()
    assert not (tmp_path / ".lock").exists()
    check_unlocked(tmp_path)  # free again
    again = FolderLock(tmp_path)
    again.acquire()
    again.release()


def test_two_runs_started_at_the_same_moment_into_one_folder_never_mix(tmp_path):
    """The lock is taken before the folder is judged: one run wins, the other writes nothing."""
    for trial in range(3):
        out = tmp_path / f"trial{trial}" / "run"
        start_at = time.time() + 4.0  # after both have imported tinygan: at the same moment
        runs = {
            seed: start_child(
                tmp_path / f"trial{trial}" / str(seed), out, steps=steps, seed=seed,
                start_at=start_at,
            )
            for seed, steps in ((1, 3), (2, 5))
        }  # fmt: skip
        for child in runs.values():
            child.wait(timeout=300)
        statuses = {seed: child.returncode for seed, child in runs.items()}
        assert sorted(statuses.values()) == [0, 1], statuses
        winner = next(seed for seed, status in statuses.items() if status == 0)
        loser = 3 - winner
        stderr = (tmp_path / f"trial{trial}" / str(loser) / "stderr.txt").read_text()
        line = one_line(stderr)
        assert "is in use by process" in line or "already holds a run" in line, line
        steps = {1: 3, 2: 5}[winner]
        config = json.loads((out / "config.json").read_text())
        assert (config["seed"], config["steps"]) == (winner, steps)
        checkpoint = read_checkpoint(out / "checkpoint.npz")
        assert int(checkpoint["step"]) == steps and len(checkpoint["history_step"]) == steps
        assert not (out / ".lock").exists()


# ----------------------------------------------------------------------------- kill -9, scoring
def test_kill_9_while_a_checkpointed_step_is_scored_then_resume_scores_it_again(tmp_path):
    """The loop checkpoints step 2, then scores it: kill -9 in between loses the row, which the
    resumed run writes again, so metrics.csv ends as the uninterrupted run's. The killed
    process's lock is taken over."""
    settings = dict(steps=4, eval_every=2, checkpoint_every=2, ema=0.9, batch_norm=True)
    train_tiny(tmp_path / "straight", **settings)
    expected = (tmp_path / "straight" / "metrics.csv").read_text()
    assert [line.split(",")[0] for line in expected.splitlines()] == ["step", "2", "4"]
    out = tmp_path / "killed"
    child = start_child(tmp_path / "child", out, **settings)
    wait_for(lambda: (out / "checkpoint.npz").exists(), child)
    child.kill()  # SIGKILL: nothing runs after it
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert int(read_checkpoint(out / "checkpoint.npz")["step"]) == 2
    assert not (out / "metrics.csv").exists(), "killed too late: step 2 was already scored"
    assert (out / ".lock").read_text().split()[0] == str(child.pid)  # a dead process's lock
    log = io.StringIO()
    run = train_tiny(out, log, resume=True, **settings)
    assert run.step == 4
    assert "step 2 has a checkpoint but no scores yet" in log.getvalue()
    assert (out / "metrics.csv").read_text() == expected
    assert not (out / ".lock").exists()


# ----------------------------------------------------------------------------- a full disk
def file_size_limit(limit: int) -> Callable[[], None]:
    """For ``preexec_fn``: no file above ``limit`` bytes, and a write past it fails with
    EFBIG (SIGXFSZ, which would kill the process, ignored) as on a full disk."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


def test_a_full_disk_while_saving_is_one_line_saying_the_checkpoint_is_intact(tmp_path):
    out = tmp_path / "run"
    train_tiny(out, steps=2)
    before = (out / "checkpoint.npz").read_bytes()
    limited = file_size_limit(len(before) // 2)  # config.json fits, the next checkpoint not
    child = run_child(out, preexec_fn=limited, steps=4, resume=True)
    line = one_line(child.stderr)
    assert child.returncode == 1, child.stderr
    assert f"could not write {(out / 'checkpoint.npz').resolve()}" in line, line
    assert "File too large" in line and "the checkpoint of step 2 is intact" in line
    assert "--resume" in line
    assert (out / "checkpoint.npz").read_bytes() == before
    assert not list(out.rglob("*.tmp")) and not (out / ".lock").exists()


# ----------------------------------------------------------------------------- checkpoints
def test_a_truncated_checkpoint_stops_resume_sample_and_evaluate_in_one_line(tmp_path):
    out = tmp_path / "run"
    train_tiny(out, config_class=MnistConfig, model="mlp", steps=2)
    path = out / "checkpoint.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = folder_bytes(out)
    with pytest.raises(RunError) as resume:
        train_tiny(out, config_class=MnistConfig, model="mlp", steps=4, resume=True)
    message = str(resume.value)
    assert message.startswith("--resume: ") and "\n" not in message
    assert "not a readable checkpoint: it is cut short or damaged" in message
    assert f"Nothing in {out.resolve()} was changed" in message
    assert folder_bytes(out) == before
    with pytest.raises(RunError, match="^--sample: .* not a readable checkpoint: it is cut short"):
        sample_from_checkpoint(tiny_generator(), path, out, Z_DIM)
    assert folder_bytes(out) == before
    evaluate = subprocess.run(
        [sys.executable, str(DEMOS / "evaluate.py"), "--checkpoint", str(path), "--device",
         "cpu", "--samples", "200"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert evaluate.returncode == 1 and "not a readable checkpoint" in one_line(evaluate.stderr)


def test_sample_without_a_checkpoint_says_there_is_none_in_that_folder(tmp_path):
    typo = tmp_path / "runz" / "mnist_gan"
    demo = subprocess.run(
        [sys.executable, str(DEMOS / "mnist_gan.py"), "--sample", "--out", str(typo)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    line = one_line(demo.stderr)
    assert demo.returncode == 1
    assert f"there is no checkpoint in {typo.resolve()} (that folder does not exist)" in line
    assert not typo.exists()
    typo.mkdir(parents=True)
    with pytest.raises(RunError, match=r"no checkpoint in .* \(no checkpoint.npz\)"):
        sample_from_checkpoint(tiny_generator(), typo / "checkpoint.npz", typo, Z_DIM)


def test_a_checkpoint_of_another_model_is_one_short_line_naming_the_setting(tmp_path):
    """A DCGAN run's checkpoint met by the MLP networks, or another z_dim."""
    out = tmp_path / "run"
    train_tiny(out, config_class=MnistConfig, model="dcgan", steps=2)
    checkpoint = out / "checkpoint.npz"
    mlp = MnistConfig(model="mlp", z_dim=Z_DIM, out=str(out), device="cpu")
    with pytest.raises(
        RunError, match=r"^--sample: .*config.json differs .* model: 'dcgan' -> 'mlp'"
    ):
        sample_from_checkpoint(tiny_generator(), checkpoint, out, Z_DIM, config=mlp)
    with pytest.raises(RunError, match="give --z-dim 8$"):
        sample_from_checkpoint(tiny_generator(64), checkpoint, out, 64)
    bad_z = subprocess.run(
        [sys.executable, str(DEMOS / "mnist_gan.py"), "--sample", "--z-dim", "64", "--out",
         str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad_z.returncode == 1 and one_line(bad_z.stderr).endswith("give --z-dim 8")
    with pytest.raises(RunError, match=r"model: 'dcgan' -> 'mlp'"):  # config.json knew
        train_tiny(out, config_class=MnistConfig, model="mlp", steps=4, resume=True)
    (out / "config.json").unlink()  # now only the checkpoint can tell
    before = folder_bytes(out)
    with pytest.raises(RunError) as resume:
        train_tiny(out, config_class=MnistConfig, model="mlp", steps=4, resume=True)
    message = str(resume.value)
    assert message.startswith("--resume: ") and "\n" not in message and len(message) < 900, message
    assert "keys of the model missing from the file" in message and ", ...)" in message
    assert "no config.json" in message and "Nothing in" in message
    assert folder_bytes(out) == before
    evaluate = subprocess.run(
        [sys.executable, str(DEMOS / "evaluate.py"), "--checkpoint", str(checkpoint),
         "--model", "mlp", "--z-dim", str(Z_DIM), "--device", "cpu", "--samples", "200"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    line = one_line(evaluate.stderr)
    assert evaluate.returncode == 1 and "does not fit the model" in line
    assert "--model and --z-dim stood in" in line


def test_an_out_that_is_a_file_is_one_line_before_the_data_loads(tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    with pytest.raises(RunError, match=r"--out .*notes.txt is a file, not a folder"):
        check_folder(TrainConfig(out=str(taken)))
    with pytest.raises(RunError, match=r"is inside .*notes.txt, which is a file"):
        check_folder(TrainConfig(out=str(taken / "run")))
    demo = subprocess.run(
        [sys.executable, str(DEMOS / "mnist_lsgan.py"), "--out", str(taken), "--no-download",
         "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 1 and "is a file, not a folder" in one_line(demo.stderr)
    assert "MNIST" not in demo.stdout  # stopped before the digits were looked for
    assert taken.read_text() == "mine"


# ----------------------------------------------------------------------------- divergence
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_the_divergence_message_clears_the_data_before_blaming_the_learning_rates(tmp_path):
    huge = dict(optimizer="sgd", lr_g=1e6, lr_d=1e6, steps=10, checkpoint_every=1)
    with pytest.raises(RunError) as stop:
        train_tiny(tmp_path / "run", **huge)
    message = str(stop.value)
    checked = message.index("real images were checked finite")
    assert checked < message.index("likely cause is learning rates too large (lr_g 1e+06")
    assert not (tmp_path / "run" / ".lock").exists()  # the stop let the folder go
