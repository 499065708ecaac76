"""demos/evaluate.py scores a checkpoint exactly as the run that wrote it scored itself."""

from __future__ import annotations

import csv
import shutil
import sys

import pytest

from tinygan.train import MnistConfig, train_mnist
from tinygan.utils.run import Run

SAMPLES = 300  # a run scores Run.eval_samples (2,000) images; fewer keep the test quick


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """Two steps of DCGAN-28 (BatchNorm in G) with an EMA, scored at step 2: the checkpoint
    and its row of metrics.csv."""
    out = tmp_path_factory.mktemp("evaluate") / "run"
    config = MnistConfig(
        model="dcgan", z_dim=8, steps=2, batch_size=8, eval_every=2, ema=0.995, seed=3,
        sample_every=0, download=False, device="cpu", out=str(out),
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Run, "eval_samples", SAMPLES)
        train_mnist(config)
    (row,) = csv.DictReader(open(out / "metrics.csv"))
    assert int(row["step"]) == 2
    return out / "checkpoint.npz", row


def evaluate(demo, monkeypatch, capsys, *argv: str) -> str:
    """What ``python demos/evaluate.py ARGV --device cpu --samples SAMPLES`` prints."""
    command = ["evaluate.py", *argv, "--device", "cpu", "--samples", str(SAMPLES)]
    monkeypatch.setattr(sys, "argv", command)
    demo.main()
    return capsys.readouterr().out


def test_evaluate_reproduces_the_runs_own_scores(scored_run, monkeypatch, capsys, load_demo):
    checkpoint, row = scored_run
    demo = load_demo("evaluate")
    printed = evaluate(demo, monkeypatch, capsys, "--checkpoint", str(checkpoint))
    assert "dcgan generator, lsgan loss, step 2 (generator_ema weights)" in printed
    assert "the evaluation noise of seed 3" in printed
    settings = demo.run_settings(checkpoint, demo.EvaluateConfig())
    assert settings == {"model": "dcgan", "z_dim": 8, "seed": 3, "loss": "lsgan"}  # config.json
    scores, _ = demo.score_checkpoint(checkpoint, settings, SAMPLES, "cpu")
    assert f"generated:          {scores.summary()}" in printed
    # Every score to the digits metrics.csv keeps: the images are the run's own.
    assert {k: f"{v:.6g}" for k, v in scores.as_dict().items()} == {
        k: row[k] for k in scores.as_dict()
    }
    # Another seed's noise (for the images and for the EMA's BatchNorm statistics), as
    # evaluate.py once used for every run, scores other images.
    other, _ = demo.score_checkpoint(checkpoint, settings | {"seed": 0}, SAMPLES, "cpu")
    assert f"{other.fd:.6g}" != row["fd"]


def test_without_config_json_the_flags_stand_in_and_it_says_so(
    scored_run, tmp_path, monkeypatch, capsys, load_demo
):
    checkpoint, row = scored_run
    shutil.copy(checkpoint, tmp_path / "checkpoint.npz")  # a folder without config.json
    demo = load_demo("evaluate")
    flags = ["--model", "dcgan", "--z-dim", "8", "--seed", "3"]
    printed = evaluate(
        demo, monkeypatch, capsys, "--checkpoint", str(tmp_path / "checkpoint.npz"), *flags
    )
    assert f"{tmp_path / 'config.json'} is missing, so the flags say which run this is" in printed
    assert "(--model dcgan --z-dim 8 --seed 3)" in printed
    assert f"generated:          FD {float(row['fd']):.2f} |" in printed
