"""Quality metrics: the formulas on known cases, and scores that rank real, blurred, noise."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygan as tg
from tinygan import data, metrics, models
from tinygan.checkpoint import save_checkpoint
from tinygan.tensor import Tensor
from tinygan.train import TrainConfig, train
from tinygan.utils.run import Run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundled():
    """The bundled MNIST set: uint8 images (10000, 28, 28) and labels."""
    return data.load_mnist("test", root=data.bundled_dataset_dir(), download=False)


def blur(images: np.ndarray) -> np.ndarray:
    """A 5x5 box blur of uint8 (N, 28, 28) images (edges padded with the background)."""
    padded = np.pad(images.astype(np.float64), ((0, 0), (2, 2), (2, 2)))
    out = sum(padded[:, i : i + 28, j : j + 28] for i in range(5) for j in range(5)) / 25
    return out.astype(np.uint8)


# ----------------------------------------------------------------------------- formulas
def test_frechet_distance_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 20))
    sigma, mu = a @ a.T + 0.1 * np.eye(20), rng.standard_normal(20)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    # For diagonal covariances: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    a, b = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-10)


def test_matrix_square_root_is_stable_for_singular_covariances():
    rng = np.random.default_rng(2)
    low_rank = rng.standard_normal((30, 3))
    s = low_rank @ low_rank.T  # rank 3 of 30: eigenvalues ~1e-15, some negative
    root = metrics.sqrtm_psd(s)
    assert np.isfinite(root).all()
    np.testing.assert_allclose(root @ root, s, atol=1e-10)
    assert metrics.frechet_distance(np.zeros(30), s, np.zeros(30), s) == pytest.approx(
        0.0, abs=1e-8
    )
    # Singular diagonal covariances still follow the closed form (zeros included).
    a, b = np.array([0.0, 0.0, 4.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = metrics.frechet_distance(np.zeros(4), np.diag(a), np.zeros(4), np.diag(b))
    assert got == pytest.approx(expected, abs=1e-10)


def test_statistics_refuse_fewer_samples_than_dimensions():
    with pytest.raises(ValueError, match="more samples than dimensions"):
        metrics.gaussian_stats(np.zeros((100, 128)))
    with pytest.raises(ValueError, match=r"\(D,\) and \(D, D\)"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_inception_score_of_confident_balanced_predictions_is_ten_of_constant_one():
    confident = np.eye(10)[np.tile(np.arange(10), 100)]  # each split holds every digit
    mean, std = metrics.inception_score(confident)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-12)
    constant = np.tile(np.random.default_rng(3).dirichlet(np.ones(10)), (1000, 1))
    assert metrics.inception_score(constant)[0] == pytest.approx(1.0)
    assert metrics.inception_score(np.full((1000, 10), 0.1))[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="probabilities"):
        metrics.inception_score(np.ones((20, 10)))


def test_class_coverage_counts_digits_and_measures_imbalance():
    assert metrics.class_coverage(np.eye(10)[np.arange(1000) % 10]) == (10, pytest.approx(0.0))
    assert metrics.class_coverage(np.eye(10)[np.full(500, 1)]) == (1, pytest.approx(math.log(10)))
    # 995 ones and 5 sevens: the sevens (0.5%) fall under the 1% threshold.
    few_sevens = np.eye(10)[np.r_[np.full(995, 1), np.full(5, 7)]]
    assert metrics.class_coverage(few_sevens)[0] == 1


# ----------------------------------------------------------------------------- with the classifier
def test_shipped_classifier_reaches_its_recorded_held_out_accuracy(bundled):
    images, labels = bundled
    info = metrics.classifier_info()
    start, stop = info["held_out_indices"]
    assert info["train_indices"] == [0, start] and stop == len(images)
    assert metrics.WEIGHTS_PATH.stat().st_size < 1_000_000
    _, probs = metrics.classify(images[start:stop])
    accuracy = (probs.argmax(axis=1) == labels[start:stop]).mean()
    assert accuracy == pytest.approx(info["held_out_accuracy"], abs=1.5 / (stop - start))
    assert accuracy >= 0.985


def test_frechet_distance_ranks_real_halves_below_blurred_below_noise(bundled):
    images = bundled[0][:8000]  # the reference (training) part only
    order = np.random.default_rng(0).permutation(len(images))
    half_a, half_b = images[order[:1000]], images[order[1000:2000]]
    noise = np.random.default_rng(1).integers(0, 256, size=half_b.shape, dtype=np.uint8)
    stats_a = metrics.gaussian_stats(metrics.classify(half_a)[0])

    def fd_to_a(x):
        return metrics.frechet_distance(*stats_a, *metrics.gaussian_stats(metrics.classify(x)[0]))

    real, blurred, noisy = fd_to_a(half_b), fd_to_a(blur(half_b)), fd_to_a(noise)
    assert 10 * real < blurred < noisy, (real, blurred, noisy)


def test_a_one_digit_generator_gets_low_coverage_and_a_high_distance(bundled):
    images, labels = bundled
    ones = images[:8000][labels[:8000] == 1][:600]  # only real 1s: perfect images, no variety
    scores = metrics.score(ones)
    floor = metrics.real_floor()
    assert scores.classes == 1 and scores.class_kl > 2.0 and scores.top_class_share == 1.0
    assert scores.inception_score < 1.5
    assert scores.fd > 20 * floor.fd, (scores.fd, floor.fd)
    assert floor.classes == 10 and floor.class_kl < 0.05 and floor.inception_score > 9.0
    assert 0.1 <= floor.top_class_share < 0.13  # the commonest digit of a real set: about 11%


def test_lenet_gives_128_features_and_10_logits():
    model = models.lenet(rng=np.random.default_rng(0))
    x = Tensor(np.zeros((2, 1, 28, 28), dtype=np.float32))
    assert model[:-1](x).shape == (2, 128) and model(x).shape == (2, 10)
    assert "MaxPool2d(kernel_size=(2, 2)" in repr(model)


def test_classifier_input_checks_the_shape():
    with pytest.raises(ValueError, match="MNIST-sized"):
        metrics.as_classifier_input(np.zeros((4, 3, 28, 28), dtype=np.uint8))


# ----------------------------------------------------------------------------- trainer and demo
def train_tiny(out: Path, monkeypatch, **overrides):
    """A tiny MLP LSGAN on random pictures; returns (G, run)."""
    settings = dict(
        loss="lsgan", steps=4, batch_size=16, z_dim=8, out=str(out), sample_every=10,
        checkpoint_every=2,
    )  # fmt: skip
    config = TrainConfig(**(settings | overrides))
    rng = np.random.default_rng(0)
    g = models.mlp_generator(8, hidden=32, rng=rng)
    d = models.mlp_discriminator(hidden=32, rng=rng)
    images = np.random.default_rng(1).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    loader = data.BatchLoader(images, 16, seed=0)
    monkeypatch.setattr(Run, "eval_samples", 300)
    with open(out.parent / f"{out.name}.log", "a") as log:
        return g, train(g, d, loader, config, stream=log)


def test_training_records_metrics_without_changing_the_training(tmp_path, monkeypatch):
    plain, _ = train_tiny(tmp_path / "plain", monkeypatch)
    scored, _ = train_tiny(tmp_path / "scored", monkeypatch, eval_every=2)
    rows = list(csv.DictReader(open(tmp_path / "scored" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert set(rows[0]) == {"step", *metrics.QualityScores.__dataclass_fields__}
    assert "step 2 quality: FD" in (tmp_path / "scored.log").read_text()
    assert not (tmp_path / "plain" / "metrics.csv").exists()
    assert (tmp_path / "scored" / "metrics.png").stat().st_size > 1000
    a, b = plain.state_dict(), scored.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)

    train_tiny(tmp_path / "scored", monkeypatch, eval_every=2, steps=6, resume=True)
    rows = list(csv.DictReader(open(tmp_path / "scored" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]


def test_classifier_demo_loss_is_cross_entropy_and_shifts_move_images(monkeypatch, load_demo):
    demo = load_demo("train_mnist_classifier")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 10)) * 30
    labels = np.array([0, 3, 9, 3, 1])
    logits = Tensor(z, requires_grad=True)
    (got,) = tg.grad(demo.cross_entropy(logits, labels), [logits])
    log_probs = z - z.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(
        float(demo.cross_entropy(logits, labels).data),
        -log_probs[np.arange(5), labels].mean(),
        rtol=1e-10,
    )
    softmax_minus_one_hot = (np.exp(log_probs) - np.eye(10)[labels]) / 5
    np.testing.assert_allclose(got.numpy(), softmax_minus_one_hot, atol=1e-12)

    images = -np.ones((50, 1, 28, 28), dtype=np.float32)
    images[:, :, 10:18, 10:18] = 1.0
    shifted = demo.random_shifts(images, 2, rng)
    assert shifted.shape == images.shape
    assert (shifted == 1.0).sum(axis=(1, 2, 3)).tolist() == [64] * 50  # moved, not cut
    assert not np.array_equal(shifted, images)


def test_evaluate_demo_scores_a_checkpoint(tmp_path, monkeypatch, capsys, load_demo):
    run = tmp_path / "run"
    run.mkdir()
    config = {"model": "mlp", "dataset": "mnist", "loss": "gan", "z_dim": 96}
    (run / "config.json").write_text(json.dumps(config))
    generator = models.mlp_generator(96, rng=np.random.default_rng(0))
    save_checkpoint(run / "checkpoint.npz", generator=generator, step=7)

    demo = load_demo("evaluate")
    argv = ["evaluate.py", "--checkpoint", str(run / "checkpoint.npz"), "--samples", "300"]
    monkeypatch.setattr(sys, "argv", argv)
    demo.main()
    out = capsys.readouterr().out
    assert "mlp generator, gan loss, step 7" in out
    assert "generated:" in out and "real-vs-real floor: FD" in out


def copy_weights(folder: Path, **info_changes) -> Path:
    """A copy of the shipped classifier in ``folder``, its JSON changed as given."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "mnist_lenet.npz"
    target.write_bytes(metrics.WEIGHTS_PATH.read_bytes())
    info = metrics.classifier_info() | info_changes
    target.with_suffix(".json").write_text(json.dumps(info))
    return target


def test_classifier_weights_with_a_low_recorded_accuracy_are_refused(tmp_path):
    assert metrics.classifier_info()["held_out_accuracy"] >= metrics.MIN_ACCURACY
    weak = copy_weights(tmp_path, held_out_accuracy=0.143)
    with pytest.raises(ValueError, match=r"14\.3%.*below the 99%"):
        metrics.load_classifier(weak)
    unknown = copy_weights(tmp_path / "unknown", held_out_accuracy=None)
    with pytest.raises(ValueError, match="records no held-out accuracy"):
        metrics.load_classifier(unknown)


def small_bundled_set(monkeypatch, demo, n: int = 200) -> None:
    """The classifier demo sees only the first ``n`` bundled digits (a quick test)."""
    real_load = data.load_mnist

    def first_images(*args, **kwargs):
        images, labels = real_load(*args, **kwargs)
        return images[:n], labels[:n]

    monkeypatch.setattr(demo.data, "load_mnist", first_images)


def shipped_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (metrics.WEIGHTS_PATH.parent).iterdir()}


def test_classifier_demo_writes_a_run_folder_and_leaves_the_shipped_weights_alone(
    tmp_path, monkeypatch, load_demo
):
    demo = load_demo("train_mnist_classifier")
    small_bundled_set(monkeypatch, demo)
    before = shipped_files()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train_mnist_classifier.py", "--epochs", "1"] + [
        "--train-count", "64"])  # fmt: skip
    demo.main()
    assert shipped_files() == before
    run = tmp_path / "runs" / "mnist_classifier"
    info = json.loads((run / "mnist_lenet.json").read_text())
    assert info["train_indices"] == [0, 64] and (run / "mnist_lenet.npz").exists()


def test_replacing_the_shipped_weights_takes_the_flag_and_a_better_accuracy(
    tmp_path, monkeypatch, capsys, load_demo
):
    demo = load_demo("train_mnist_classifier")
    small_bundled_set(monkeypatch, demo)
    shipped = copy_weights(tmp_path / "shipped", train_indices=[0, 64], held_out_indices=[64, 200])
    monkeypatch.setattr(demo, "WEIGHTS_PATH", shipped)
    before = shipped.read_bytes(), shipped.with_suffix(".json").read_bytes()
    argv = [
        "x",
        "--epochs",
        "1",
        "--train-count",
        "64",
        "--out",
        str(tmp_path / "run"),
        "--overwrite",
    ]

    def train(*flags: str) -> None:
        monkeypatch.setattr(sys, "argv", argv + list(flags))
        demo.main()

    with pytest.raises(SystemExit, match="train_count 64 and 100"):  # other held-out images
        train("--replace-shipped-weights", "--train-count", "100")
    with pytest.raises(SystemExit, match=r"below the shipped weights' 0\.9945"):
        train("--replace-shipped-weights")  # one epoch on 64 digits: far below
    assert (shipped.read_bytes(), shipped.with_suffix(".json").read_bytes()) == before
    monkeypatch.setattr(demo, "accuracy", lambda *args: 0.996)  # as if it had trained well
    train()  # without the flag: the shipped weights stay
    assert (shipped.read_bytes(), shipped.with_suffix(".json").read_bytes()) == before
    train("--replace-shipped-weights")
    assert shipped.read_bytes() == (tmp_path / "run" / "mnist_lenet.npz").read_bytes()
    assert json.loads(shipped.with_suffix(".json").read_text())["held_out_accuracy"] == 0.996
    assert "replaced" in capsys.readouterr().out


# ----------------------------------------------------------------------------- speckle
def salt_and_pepper(images: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """uint8 ``images`` with ``fraction`` of their pixels set to 0 or 255 at random."""
    rng = np.random.default_rng(seed)
    noisy = images.copy()
    hit = rng.random(images.shape) < fraction
    noisy[hit] = rng.choice(np.array([0, 255], np.uint8), size=int(hit.sum()))
    return noisy


def test_speckle_counts_isolated_pixels_by_their_height():
    black = -np.ones((1, 1, 6, 7), np.float32)
    one_dot = black.copy()
    one_dot[0, 0, 2, 3] = 1.0  # white in black: 1
    assert metrics.speckle(one_dot) == pytest.approx(1.0)
    grey_dot = black.copy()
    grey_dot[0, 0, 2, 3] = 0.0  # half-way grey: 0.5
    assert metrics.speckle(grey_dot) == pytest.approx(0.5)
    hole = -one_dot  # black in white: 1
    assert metrics.speckle(hole) == pytest.approx(1.0)
    corner = black.copy()
    corner[0, 0, 0, 0] = 1.0  # the mirrored border compares it with the pixels inside
    assert metrics.speckle(corner) == pytest.approx(1.0)
    stroke = black.copy()
    stroke[0, 0, 2, :] = 1.0  # a line: every pixel has a neighbour as bright
    stroke[0, 0, 3, :] = 0.5  # and a soft edge below it
    assert metrics.speckle(stroke) == 0.0
    assert metrics.speckle(black) == 0.0
    two = np.concatenate([one_dot, black])  # the mean over images: (1 + 0) / 2
    assert metrics.speckle(two) == pytest.approx(0.5)
    as_bytes = np.rint((one_dot[:, 0] + 1) * 127.5).astype(np.uint8)  # (N, H, W) uint8
    assert metrics.speckle(as_bytes) == pytest.approx(1.0)
    assert metrics.speckle(Tensor(one_dot)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, C, H, W\)"):
        metrics.speckle(np.zeros((28, 28)))


def test_speckle_separates_real_digits_from_the_same_digits_with_salt_and_pepper(bundled):
    digits = bundled[0][:2000]
    clean = metrics.speckle(digits)
    speckled = metrics.speckle(salt_and_pepper(digits, 0.01))
    assert clean < 0.15 and speckled > 2.0
    assert speckled > 10 * clean, (clean, speckled)  # measured: 0.09 and 3.0
    assert metrics.speckle(blur(digits)) < clean  # smoothing removes what speckle counts


def test_real_floor_records_the_speckle_of_real_digits_and_score_reports_it(bundled):
    floor = metrics.real_floor()
    order = np.random.default_rng(metrics.FLOOR_SEED).permutation(8000)
    half_a = metrics.reference_images()[np.array_split(order, 2)[0]]
    assert floor.speckle == metrics.speckle(half_a)
    assert 0.05 < floor.speckle < 0.15  # 0.09: real digits have almost no isolated pixels
    noisy = salt_and_pepper(bundled[0][8000:8500], 0.01)
    scores = metrics.score(noisy)
    assert scores.speckle == metrics.speckle(noisy) and scores.speckle > 10 * floor.speckle
    assert "| speckle 0.09 |" in floor.summary()
    assert list(metrics.QualityScores.__dataclass_fields__)[-2:] == ["speckle", "samples"]
