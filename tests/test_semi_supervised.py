"""The semi-supervised GAN: its two losses (against NumPy, finite differences and the same
loss composed from ops, at extreme logits), the balanced choice of labelled examples, the
networks, a small end-to-end run in which the semi-supervised classifier beats the same
network trained on the labelled points alone, and the MNIST demo for a few steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygan as tg
from tinygan import losses, losses_semi_supervised, models, nn
from tinygan.semi_supervised import (
    Classifier,
    GaussianNoise,
    SemiSupervisedGAN,
    accuracy,
    balanced_label_subset,
    conv_classifier28,
    mlp_classifier,
    supervised_step,
)


def _logits(shapes=((5, 4), (3, 4)), scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [scale * rng.standard_normal(s) for s in shapes]
    return arrays, [tg.tensor(a, requires_grad=True) for a in arrays]


# ----------------------------------------------------------- the unsupervised D loss


def test_semi_supervised_d_loss_matches_the_papers_formula():
    # -E log D(x) - E log(1 - D(G(z))), D = Z / (Z + 1), Z = sum_k exp(l_k), written naively.
    (r, f), tensors = _logits()
    z_r, z_f = np.exp(r).sum(axis=1), np.exp(f).sum(axis=1)
    expected = -np.mean(np.log(z_r / (z_r + 1.0))) - np.mean(np.log(1.0 / (z_f + 1.0)))
    out = losses.semi_supervised_d_loss(*tensors)
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)


def test_semi_supervised_d_loss_gradients_by_finite_differences():
    _, tensors = _logits()
    assert tg.gradcheck(losses.semi_supervised_d_loss, tensors)
    assert tg.gradgradcheck(losses.semi_supervised_d_loss, tensors)


def test_semi_supervised_d_loss_matches_its_composition_from_ops():
    _, tensors = _logits(shapes=((6, 3), (2, 3)), scale=4.0, seed=1)
    value = losses.semi_supervised_d_loss(*tensors)
    expected = losses_semi_supervised._composed_semi_supervised_d_loss(*tensors)
    np.testing.assert_allclose(value.item(), expected.item(), rtol=1e-12)
    by_hand = tg.grad(value, tensors, create_graph=True)
    by_ops = tg.grad(expected, tensors, create_graph=True)
    for g_hand, g_ops in zip(by_hand, by_ops):
        np.testing.assert_allclose(g_hand.numpy(), g_ops.numpy(), rtol=1e-12, atol=1e-15)
    # Second order: the Hessian-vector products agree as well.
    u = [np.random.default_rng(2).standard_normal(t.shape) for t in tensors]
    hvp_hand = tg.grad(sum((g * tg.tensor(v)).sum() for g, v in zip(by_hand, u)), tensors)
    hvp_ops = tg.grad(sum((g * tg.tensor(v)).sum() for g, v in zip(by_ops, u)), tensors)
    for a, b in zip(hvp_hand, hvp_ops):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-14)


def test_semi_supervised_d_loss_gradient_is_the_k_plus_one_class_probability():
    # dL/df_jk = p(class k | G(z_j)) / n_f over K+1 classes (the fake logit being 0), and
    # dL/dr_ik = -p(fake | x_i) p(k | x_i, real) / n_r: the derivation's reading.
    (r, f), tensors = _logits()
    g_r, g_f = tg.grad(losses.semi_supervised_d_loss(*tensors), tensors)
    p_f = np.exp(f) / (np.exp(f).sum(axis=1, keepdims=True) + 1.0)
    np.testing.assert_allclose(g_f.numpy(), p_f / len(f), rtol=1e-12)
    z_r = np.exp(r).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g_r.numpy(), -np.exp(r) / z_r / (z_r + 1.0) / len(r), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_semi_supervised_d_loss_at_extreme_logits(dtype):
    extreme = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [30.0, 1000.0, 5.0]])
    real = tg.tensor(extreme, dtype=dtype, requires_grad=True)
    fake = tg.tensor(extreme, dtype=dtype, requires_grad=True)
    out = losses.semi_supervised_d_loss(real, fake)
    assert out.dtype == dtype
    # Real rows: softplus(-s) = 0, 1000 - log 3, 0; fake rows: softplus(s) = 1000, ~0, 1000.
    expected = (1000.0 - np.log(3.0)) / 3 + 2000.0 / 3
    np.testing.assert_allclose(out.item(), expected, rtol=1e-6)
    g_real, g_fake = tg.grad(out, [real, fake], create_graph=True)
    for g in (g_real, g_fake):
        assert g.dtype == dtype and np.all(np.isfinite(g.numpy()))
        assert np.abs(g.numpy()).max() <= 1.0 / 3 + 1e-6  # |dL/dl| <= 1/n for any logits
    # The confidently real row pushes its largest logit down as a fake, not as a real.
    np.testing.assert_allclose(g_fake.numpy()[0], [1 / 3, 0, 0], atol=1e-6)
    np.testing.assert_allclose(g_real.numpy()[0], [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(g_real.numpy()[1], [-1 / 9] * 3, rtol=1e-4)
    (gg,) = tg.grad((g_real * g_real).sum() + (g_fake * g_fake).sum(), [real])
    assert np.all(np.isfinite(gg.numpy()))


def test_semi_supervised_d_loss_rejects_bad_shapes():
    good = tg.tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        losses.semi_supervised_d_loss(good, tg.tensor(np.zeros(4)))
    with pytest.raises(ValueError, match="same number of classes"):
        losses.semi_supervised_d_loss(good, tg.tensor(np.zeros((4, 2))))
    with pytest.raises(TypeError, match="must be a Tensor"):
        losses.semi_supervised_d_loss(np.zeros((4, 3)), good)


# ----------------------------------------------------------- feature matching


def test_feature_matching_loss_value_and_gradients():
    rng = np.random.default_rng(3)
    real_np, fake_np = rng.standard_normal((5, 2, 3)), rng.standard_normal((4, 2, 3))
    real, fake = tg.tensor(real_np, requires_grad=True), tg.tensor(fake_np, requires_grad=True)
    out = losses.feature_matching_loss(real, fake)
    expected = np.sum((fake_np.mean(axis=0) - real_np.mean(axis=0)) ** 2)
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)
    assert tg.gradcheck(losses.feature_matching_loss, [real, fake])
    assert tg.gradgradcheck(losses.feature_matching_loss, [real, fake])
    composed = losses_semi_supervised._composed_feature_matching_loss(real, fake)
    np.testing.assert_allclose(out.item(), composed.item(), rtol=1e-12)
    for a, b in zip(tg.grad(out, [real, fake]), tg.grad(composed, [real, fake])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-15)


def test_feature_matching_loss_needs_matching_feature_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        losses.feature_matching_loss(tg.tensor(np.zeros((4, 3))), tg.tensor(np.zeros((4, 2))))
    with pytest.raises(ValueError, match="non-empty batch"):
        losses.feature_matching_loss(tg.tensor(np.zeros((0, 3))), tg.tensor(np.zeros((4, 3))))


# ----------------------------------------------------------- choosing the labelled examples


def test_balanced_label_subset_takes_exactly_per_class_of_each_class():
    labels = np.random.default_rng(4).integers(0, 10, size=1000).astype(np.uint8)
    chosen = balanced_label_subset(labels, per_class=10, seed=0)
    assert chosen.dtype == np.int64 and len(chosen) == 100
    assert len(np.unique(chosen)) == 100 and np.all(np.diff(chosen) > 0)  # distinct, sorted
    np.testing.assert_array_equal(np.bincount(labels[chosen], minlength=10), [10] * 10)


def test_balanced_label_subset_is_reproducible_and_depends_on_the_seed():
    labels = np.repeat(np.arange(3), 50)
    a = balanced_label_subset(labels, 5, seed=1)
    np.testing.assert_array_equal(a, balanced_label_subset(labels, 5, seed=1))
    b = balanced_label_subset(labels, 5, seed=2)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(np.bincount(labels[b]), [5, 5, 5])


def test_balanced_label_subset_names_the_classes_that_are_too_small():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 10 + [3] * 1)
    with pytest.raises(ValueError, match=r"1 \(3\), 3 \(1\)"):
        balanced_label_subset(labels, 4, seed=0)
    # A class absent from the labels counts when the number of classes is given.
    with pytest.raises(ValueError, match=r"4 \(0\)"):
        balanced_label_subset(labels, 1, seed=0, num_classes=5)
    with pytest.raises(ValueError, match="at least 1"):
        balanced_label_subset(labels, 0, seed=0)
    with pytest.raises(ValueError, match="integer"):
        balanced_label_subset(labels.astype(float), 1, seed=0)


# ----------------------------------------------------------- the network


def test_conv_classifier28_shapes_noise_and_modes():
    model = conv_classifier28(num_classes=10, width=4, rng=np.random.default_rng(5))
    x = tg.tensor(np.random.default_rng(6).standard_normal((3, 1, 28, 28)), dtype="float32")
    assert model.features(x).shape == (3, 8 * 7 * 7)
    assert model(x).shape == (3, 10) and model(x).dtype == np.float32
    # Training mode adds noise (two calls differ); evaluation mode is deterministic.
    assert not np.array_equal(model(x).numpy(), model(x).numpy())
    model.eval()
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    assert list(model.state_dict()) == [
        "body.1.weight", "body.1.bias", "body.4.weight", "body.4.bias", "head.weight", "head.bias"
    ]  # fmt: skip


def test_mlp_classifier_and_generator_shapes():
    rng = np.random.default_rng(8)
    model = mlp_classifier(10, hidden=(16, 8), rng=rng)
    x = tg.tensor(rng.standard_normal((3, 1, 28, 28)), dtype="float32")
    assert model.features(x).shape == (3, 8) and model(x).shape == (3, 10)
    generator = models.mlp_generator(z_dim=5, hidden=7, batch_norm=True, rng=rng)
    images = generator(tg.tensor(rng.standard_normal((4, 5)), dtype="float32")).numpy()
    assert images.shape == (4, 1, 28, 28) and np.abs(images).max() <= 1.0


def test_gaussian_noise_statistics_and_gradient():
    layer = GaussianNoise(0.5, rng=np.random.default_rng(7))
    x = tg.tensor(np.ones((200, 500)), dtype="float32", requires_grad=True)
    y = layer(x)
    assert y.dtype == np.float32
    assert abs(float(y.numpy().mean()) - 1.0) < 0.01 and abs(y.numpy().std() - 0.5) < 0.01
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((200, 500)))
    assert layer.eval()(x) is x
    with pytest.raises(ValueError, match="non-negative"):
        GaussianNoise(-1.0)


# ----------------------------------------------------------- end to end, on a toy task

K = 4  # classes: horizontal stripes, long along x, narrow and well apart along y


def _stripes(rng, n):
    y = rng.integers(0, K, size=n)
    x = np.stack([rng.normal(0.0, 3.0, n), 2.0 * y - 3.0 + rng.normal(0.0, 0.25, n)], axis=1)
    return x.astype(np.float32), y


def _mlp(sizes, rng, batch_norm=False):
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Linear(n_in, n_out, rng=rng))
        layers += [nn.BatchNorm1d(n_out)] if batch_norm else []
        layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers), nn.Linear(sizes[-2], sizes[-1], rng=rng)


def _train(seed, semi, steps=800, batch=64, lr=6e-3):
    """Test accuracy of a classifier trained on 2 labels per class (+ unlabelled points)."""
    rng = np.random.default_rng(seed)
    points, classes = _stripes(rng, 2000)
    labelled = balanced_label_subset(classes, per_class=2, seed=seed)
    test_points, test_classes = _stripes(rng, 5000)
    classifier = Classifier(*_mlp([2, 64, 64, K], rng))
    if semi:
        body, head = _mlp([4, 64, 64, 2], rng, batch_norm=True)
        gan = SemiSupervisedGAN(classifier, nn.Sequential(body, head), z_dim=4, lr=lr, seed=seed)
    else:
        opt = tg.optim.Adam(classifier.parameters(), lr=lr, betas=(0.5, 0.999))
    for _ in range(steps):
        chosen = labelled[rng.integers(0, len(labelled), size=batch)]
        x, y = tg.tensor(points[chosen]), classes[chosen]
        if semi:
            gan.train_step(x, y, tg.tensor(points[rng.integers(0, len(points), size=batch)]))
        else:
            supervised_step(classifier, opt, x, y)
    return accuracy(classifier, test_points, test_classes)


def test_semi_supervised_gan_beats_the_labelled_only_baseline_on_a_toy_task():
    # Four stripes, 2 labelled points each. Alone, the 8 labelled points leave the class
    # boundaries tilted (a boundary halfway between two labelled points, far apart along x,
    # cuts through both stripes); the unlabelled points and the generated ones, which the
    # classifier must call fake, pull the boundaries into the empty bands between stripes.
    # While developing, seeds 0-13 gave baseline 0.51-0.94 and semi-supervised 0.79-1.00,
    # better on every seed, by 0.06 to 0.38; seed 0 is kept (0.76 and 1.00). A few seconds.
    baseline = _train(seed=0, semi=False)
    semi = _train(seed=0, semi=True)
    assert semi > baseline + 0.1 and semi > 0.9, (baseline, semi)


# ----------------------------------------------------------- the demo


def test_demo_runs_end_to_end_and_prints_a_table_row(tmp_path):
    demo = Path(__file__).resolve().parent.parent / "demos" / "mnist_semi_supervised.py"
    out = tmp_path / "run"
    args = ["--steps", "3", "--eval-every", "2", "--batch-size", "16", "--no-download"]
    result = subprocess.run(
        [sys.executable, str(demo), *args, "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "100 labelled training images (10 per class, seed 0)" in result.stdout
    assert lines[-2].startswith("| data | labels |") and lines[-1].count("|") == 8
    assert "step 2, test accuracy" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["labelled"] == 100
    assert [s for s, _ in results["semi_supervised"]["curve"]] == [2, 3]
    assert [s for s, _ in results["labelled_only"]["curve"]] == [2, 3]
    assert (out / "samples.png").exists()
