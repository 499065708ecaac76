"""The conditional GAN: conditional DCGAN-28 networks, labelled batches, the per-digit check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygan as tg
from tinygan import data, metrics, models
from tinygan.data import BatchLoader

DEMO = Path(__file__).resolve().parents[1] / "demos" / "mnist_cgan.py"


def test_conditional_networks_take_labels_and_use_them():
    G, D = models.conditional_mnist_models(z_dim=8, seed=0)
    z, y = tg.randn(6, 8, generator=np.random.default_rng(1)), np.array([0, 1, 2, 3, 4, 5])
    x = G(z, y)
    assert x.shape == (6, 1, 28, 28) and np.abs(x.numpy()).max() <= 1.0
    assert not np.allclose(G(z, y).numpy(), G(z, y[::-1].copy()).numpy())  # labels matter
    scores = D(x, y)
    assert scores.shape == (6, 1)
    # D(x, y) = w^T phi(x) + b + <embed(y), phi(x)>, computed by hand:
    h = D.features(x).numpy()
    by_hand = D.linear(D.features(x)).numpy()[:, 0] + (D.embed.weight.numpy()[y] * h).sum(1)
    np.testing.assert_allclose(scores.numpy()[:, 0], by_hand, rtol=1e-5, atol=1e-5)


def test_conditional_discriminator_gradient_reaches_the_label_vectors():
    _, D = models.conditional_mnist_models(z_dim=8, seed=0)
    x = tg.randn(4, 1, 28, 28, generator=np.random.default_rng(2))
    D(x, np.array([3, 3, 7, 7])).sum().backward()
    grad = D.embed.weight.grad.numpy()
    assert np.abs(grad[[3, 7]]).sum() > 0 and np.abs(np.delete(grad, [3, 7], 0)).sum() == 0


def test_batch_labels_follow_the_batch():
    images = np.arange(20, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)
    loader = BatchLoader(images, 4, seed=3, labels=np.arange(20) % 10)
    for step in (0, 5, 7):
        first_pixel = (loader.batch(step)[:, 0, 0, 0] + 1) * 127.5  # back to the image index
        np.testing.assert_array_equal(loader.batch_labels(step), np.round(first_pixel) % 10)
    with pytest.raises(ValueError, match="labels"):
        BatchLoader(images, 4, labels=np.arange(19))
    with pytest.raises(ValueError, match="without labels"):
        BatchLoader(images, 4).batch_labels(0)


def test_conditional_accuracy_of_real_digits_is_high_and_of_wrong_labels_low():
    images, labels = data.load_mnist("test", root=data.bundled_dataset_dir(), download=False)
    held = slice(8000, 9000)  # held-out images the classifier never saw
    right = metrics.conditional_accuracy(images[held, None], labels[held])
    wrong = metrics.conditional_accuracy(images[held, None], (labels[held] + 1) % 10)
    assert right.shape == (10,) and right.min() > 0.95 and wrong.max() < 0.05


def test_cgan_demo_trains_resumes_and_draws_a_digit(tmp_path):
    out = tmp_path / "run"
    common = ["--batch-size", "16", "--check-samples", "20", "--out", str(out), "--device", "cpu"]
    for extra in (["--steps", "2"], ["--steps", "3", "--resume"]):
        result = subprocess.run([sys.executable, str(DEMO), *common, *extra],
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "classified as asked: 0:" in result.stdout
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_000002.png",
        "step_000003.png",
    ]
    sample = [sys.executable, str(DEMO), "--sample", "--digit", "7", "--out", str(out)]
    result = subprocess.run(sample, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (out / "digit_7.png").is_file()
