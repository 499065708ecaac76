"""Semi-supervised learning with a GAN: the discriminator is also a K-class classifier.

Salimans et al., "Improved Techniques for Training GANs" (2016), section 5. With a few
labelled images (10 per class, say) and many unlabelled ones, a classifier trained on the
labelled ones alone overfits them. Here the classifier is a GAN's discriminator D: it has
one logit per real class, l_1..l_K, and an implicit class K+1, "fake", whose logit is 0.
One training step::

    labelled (x, y):     L_sup   = cross_entropy(l(x), y)              over the K classes
    unlabelled x, G(z):  L_unsup = -E log D(x) - E log(1 - D(G(z))),   D = Z / (Z + 1)
    D <- Adam step on L_sup + L_unsup
    G <- Adam step on || mean h(x) - mean h(G(z)) ||^2                 (feature matching)

with Z = sum_k e^(l_k) and h the features D computes before its last layer
(:func:`~tinygan.losses.semi_supervised_d_loss` and
:func:`~tinygan.losses.feature_matching_loss` derive both losses and their gradients).

Why the unlabelled images help: to tell them from generated samples, D must learn
features of every real image, not only of the hundred labelled ones, and the classes are
read off those same features; and the generated samples, which lie near the data but off
it, teach D to give low scores, hence no confident class, away from the data, so its class
boundaries settle where there is no data. The generator only serves the classifier:
feature matching makes poorer-looking samples than the usual GAN loss, but better
classifiers (the paper's finding).

This module holds, in order: the choice of the labelled examples
(:func:`balanced_label_subset`); the networks: :class:`Classifier` (features, then
logits), the paper's MNIST classifier (:func:`mlp_classifier`; its generator is
``tinygan.models.mlp_generator(hidden=500, batch_norm=True)``), a convolutional
classifier (:func:`conv_classifier28`) and the
paper's :class:`GaussianNoise` regulariser; the training step of the semi-supervised GAN
(:class:`SemiSupervisedGAN`) and of the labelled-only baseline (:func:`supervised_step`);
and :func:`accuracy`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import losses, nn
from tinygan.autograd import no_grad
from tinygan.ops import cross_entropy
from tinygan.optim import Adam, Optimizer
from tinygan.tensor import Tensor
from tinygan.utils.streams import RandomStreams


def balanced_label_subset(
    labels: Any, per_class: int, seed: int, num_classes: int | None = None
) -> np.ndarray:
    """Indices of ``per_class`` examples of every class, drawn at random without replacement.

    The examples that keep their labels in a semi-supervised run. The draw is a pure
    function of ``seed``: class c's examples are drawn, in increasing class order, from
    ``numpy.random.default_rng(seed)``.

    Args:
        labels: integer class labels, shape (N,).
        per_class: how many examples to keep from each class.
        seed: seeds the draw.
        num_classes: the classes are 0..num_classes-1 (so a class with no example at all
            is an error); None: the classes present in ``labels``.

    Returns:
        int64 indices into ``labels``, sorted, ``per_class`` of each class.

    Raises:
        ValueError: ``per_class < 1``, labels that are not a 1-D integer array, or a class
            with fewer than ``per_class`` examples (all such classes are named).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"balanced_label_subset: labels must be a 1-D integer array, got {labels.dtype} "
            f"of shape {labels.shape}"
        )
    if per_class < 1:
        raise ValueError(f"balanced_label_subset: per_class must be at least 1, got {per_class}")
    classes = np.unique(labels) if num_classes is None else np.arange(num_classes)
    members = [np.flatnonzero(labels == c) for c in classes]
    short = [f"{c} ({len(m)})" for c, m in zip(classes, members) if len(m) < per_class]
    if short:
        raise ValueError(
            f"balanced_label_subset: {per_class} labelled examples per class were asked for, "
            f"but these classes have fewer (count in brackets): {', '.join(short)}; at most "
            f"{min(len(m) for m in members)} per class can be labelled"
        )
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(m, size=per_class, replace=False) for m in members]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# ------------------------------------------------------------------------- the network


class GaussianNoise(nn.Module):
    """y = x + std * n with n ~ N(0, I) in training mode; y = x in evaluation mode.

    The regulariser of the paper's MNIST discriminator (noise on the input and on every
    hidden layer). The noise is a constant, so dL/dx = dL/dy. Noise for CPU tensors is
    drawn from ``rng`` (a NumPy Generator), for CuPy tensors from CuPy's generator.
    """

    def __init__(self, std: float, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be non-negative, got {std}")
        self.std = float(std)
        self.rng = np.random.default_rng() if rng is None else rng

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0.0:
            return x
        if x.xp is np:
            noise = self.rng.standard_normal(x.shape, dtype=x.dtype)
        else:
            noise = x.xp.random.standard_normal(x.shape, dtype=x.dtype)
        return x + Tensor(noise * x.dtype.type(self.std))

    def extra_repr(self) -> str:
        return f"std={self.std}"


class Classifier(nn.Module):
    """A classifier split in two: ``features = body(x)``, ``logits = head(features)``.

    The semi-supervised GAN needs both: the logits for its losses, the features for the
    generator's feature matching.

    Args:
        body: maps a batch (N, ...) to features (N, ...).
        head: maps features to (N, K) class logits.
    """

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def features(self, x: Tensor) -> Tensor:
        """The features the head reads, (N, ...)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, K)."""
        return self.head(self.body(x))


def mlp_classifier(
    num_classes: int = 10,
    in_features: int = 784,
    hidden: tuple[int, ...] = (1000, 500, 250, 250, 250),
    input_noise: float = 0.3,
    hidden_noise: float = 0.5,
    rng: np.random.Generator | None = None,
) -> Classifier:
    """The paper's MNIST discriminator: an MLP with Gaussian noise on every layer's input.

    body: Flatten -> GaussianNoise -> [Linear -> ReLU -> GaussianNoise] per hidden size,
    giving (N, hidden[-1]) features; head: Linear(hidden[-1], num_classes). (The paper
    adds weight normalisation, left out here; PyTorch's default initialisation.)

    Args:
        num_classes: K, the real classes (the "fake" class is implicit).
        in_features: inputs per sample once flattened (784 for 28x28 images).
        hidden: sizes of the hidden layers.
        input_noise, hidden_noise: standard deviations of the Gaussian noise on the inputs
            (in [-1, 1]) and on the hidden layers, in training mode only.
        rng: seeds the weights and the noise.
    """
    rng = np.random.default_rng() if rng is None else rng
    layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise, rng)]
    for n_in, n_out in zip((in_features, *hidden[:-1]), hidden):
        layers += [nn.Linear(n_in, n_out, rng=rng), nn.ReLU(), GaussianNoise(hidden_noise, rng)]
    return Classifier(nn.Sequential(*layers), nn.Linear(hidden[-1], num_classes, rng=rng))


def conv_classifier28(
    num_classes: int = 10,
    width: int = 32,
    input_noise: float = 0.3,
    hidden_noise: float = 0.5,
    rng: np.random.Generator | None = None,
) -> Classifier:
    """The DCGAN-28 discriminator as a classifier for 28x28 images, without BatchNorm.

    body: GaussianNoise -> Conv2d(1, w, 4, 2, 1) -> LeakyReLU(0.2) -> GaussianNoise ->
    Conv2d(w, 2w, 4, 2, 1) -> LeakyReLU(0.2) -> GaussianNoise -> Flatten, giving
    (N, 2w * 7 * 7) features; head: Linear(2w * 7 * 7, num_classes). BatchNorm is left out
    because it would make one image's logits depend on the rest of its batch, and the
    labelled, unlabelled and generated batches differ in their statistics. PyTorch's
    default initialisation, as :func:`mlp_classifier`.

    Args:
        num_classes: K, the real classes (the "fake" class is implicit).
        width: w, channels of the first convolution; 32 (half of DCGAN-28's 64, for
            speed on a CPU) by default.
        input_noise, hidden_noise: standard deviations of the Gaussian noise on the input
            images (in [-1, 1]) and on the hidden layers, in training mode only.
        rng: seeds the weights and the noise.
    """
    rng = np.random.default_rng() if rng is None else rng
    body = nn.Sequential(
        GaussianNoise(input_noise, rng),
        nn.Conv2d(1, width, 4, stride=2, padding=1, rng=rng),  # (N, w, 14, 14)
        nn.LeakyReLU(0.2),
        GaussianNoise(hidden_noise, rng),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, rng=rng),  # (N, 2w, 7, 7)
        nn.LeakyReLU(0.2),
        GaussianNoise(hidden_noise, rng),
        nn.Flatten(),
    )
    return Classifier(body, nn.Linear(2 * width * 7 * 7, num_classes, rng=rng))


# ------------------------------------------------------------------------- training


class SemiSupervisedGAN:
    """Trains a classifier-discriminator and a generator, one update of each per step.

    Both use Adam. The noise of step s is the noise stream of :mod:`tinygan.utils.streams`; the
    batches are the caller's, so the same class trains on images or on points of a toy
    task.

    Args:
        classifier: maps a batch to (N, K) logits and has ``features(x)`` (a
            :class:`Classifier`).
        generator: maps (N, z_dim) noise to samples shaped like the data.
        z_dim: size of the noise vector.
        lr: Adam's learning rate for both networks.
        betas: Adam's betas.
        seed: seeds the noise.
    """

    def __init__(
        self,
        classifier: Classifier,
        generator: nn.Module,
        z_dim: int,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        seed: int = 0,
    ) -> None:
        self.classifier, self.generator = classifier, generator
        self.z_dim, self.streams = z_dim, RandomStreams(seed)
        self.opt_d = Adam(classifier.parameters(), lr=lr, betas=betas)
        self.opt_g = Adam(generator.parameters(), lr=lr, betas=betas)
        self.step = 0

    def noise(self, n: int) -> Tensor:
        """(n, z_dim) standard normal noise of the current step, on the generator's device."""
        z = self.streams.noise(self.step, n, self.z_dim)
        return Tensor(z).to(next(self.generator.parameters()).device)

    def train_step(self, labelled: Tensor, labels: Any, unlabelled: Tensor) -> dict[str, float]:
        """One classifier update on all three batches, then one generator update.

        Args:
            labelled: a batch of labelled samples (B_l, ...).
            labels: their class indices, an integer array (B_l,).
            unlabelled: a batch of unlabelled samples (B_u, ...); as many fakes are made.

        Returns:
            The step's ``supervised``, ``unsupervised`` and ``feature_matching`` losses.
        """
        D, G = self.classifier, self.generator
        fake = G(self.noise(unlabelled.shape[0]))
        supervised = cross_entropy(D(labelled), labels)
        unsupervised = losses.semi_supervised_d_loss(D(unlabelled), D(fake.detach()))
        self.opt_d.minimize(supervised + unsupervised)
        with no_grad():  # the generator's target: features of real data, a constant
            real_features = D.features(unlabelled)
        matching = losses.feature_matching_loss(real_features, D.features(fake))
        self.opt_g.minimize(matching)
        self.step += 1
        return {
            "supervised": float(supervised.data),
            "unsupervised": float(unsupervised.data),
            "feature_matching": float(matching.data),
        }


def supervised_step(
    classifier: nn.Module, optimizer: Optimizer, labelled: Tensor, labels: Any
) -> float:
    """One update of the labelled-only baseline: cross-entropy on a labelled batch.

    Returns:
        The loss before the update.
    """
    loss = cross_entropy(classifier(labelled), labels)
    optimizer.minimize(loss)
    return float(loss.data)


def accuracy(
    classifier: nn.Module, inputs: np.ndarray, labels: Any, batch_size: int = 500
) -> float:
    """The fraction of ``inputs`` whose largest logit is their label (evaluation mode).

    Args:
        classifier: maps a batch to (N, K) logits; it is left in the mode it was in.
        inputs: float32 samples (N, ...) as the classifier takes them.
        labels: their class indices (N,).
        batch_size: samples per forward pass.
    """
    labels = np.asarray(labels)
    if len(inputs) != len(labels) or len(labels) == 0:
        raise ValueError(f"accuracy: {len(inputs)} inputs but {len(labels)} labels")
    device = next(classifier.parameters()).device
    correct = 0
    with nn.evaluating(classifier):
        for start in range(0, len(inputs), batch_size):
            logits = classifier(Tensor(inputs[start : start + batch_size]).to(device))
            predicted = logits.numpy().argmax(axis=1)
            correct += int((predicted == labels[start : start + batch_size]).sum())
    return correct / len(labels)
