"""The GAN architectures of the demos: MLP GAN, DCGAN-28 for MNIST, DCGAN for 32-128 px.

Every generator maps noise z of shape (N, z_dim) to images (N, C, H, W) in [-1, 1] (tanh);
every discriminator (critic) maps images to one raw score per image, shape (N, 1) (the
conditional pair also takes the class labels): a logit
for the GAN loss, a real number for LSGAN and WGAN. Losses, not models, decide what the
score means, so the same networks serve every loss family.

:func:`lenet` is the odd one out: a small MNIST classifier whose features and predictions
score generated digits (:mod:`tinygan.metrics`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygan import init, nn, ops
from tinygan.tensor import Tensor


def mlp(
    sizes: list[int],
    batch_norm: bool = False,
    negative_slope: float = 0.2,
    rng: np.random.Generator | None = None,
) -> nn.Sequential:
    """A plain MLP for small problems: Linear layers of ``sizes``, each hidden one followed
    by (BatchNorm1d and) LeakyReLU; the last layer is linear. ``[1, 32, 32, 1]`` maps
    (N, 1) to (N, 1) through two hidden layers of 32 (the toy GANs of the tests and docs).
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out, rng=rng))
        if i < len(sizes) - 2:  # hidden layers only
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(nn.LeakyReLU(negative_slope))
    return nn.Sequential(*layers)


def mlp_generator(
    z_dim: int = 96,
    hidden: int = 1024,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    batch_norm: bool = False,
    rng: np.random.Generator | None = None,
) -> nn.Sequential:
    """The classic course-assignment MLP generator: z -> 1024 -> 1024 -> 784, tanh.

    ``batch_norm=True`` puts BatchNorm1d before each hidden ReLU (the semi-supervised
    GAN's generator, with ``hidden=500``).
    """
    pixels = int(np.prod(image_shape))
    layers: list[nn.Module] = []
    for n_in in (z_dim, hidden):
        layers.append(nn.Linear(n_in, hidden, rng=rng))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU())
    layers += [nn.Linear(hidden, pixels, rng=rng), nn.Tanh(), nn.Unflatten(1, image_shape)]
    return nn.Sequential(*layers)


def mlp_discriminator(
    image_shape: tuple[int, int, int] = (1, 28, 28),
    hidden: int = 256,
    rng: np.random.Generator | None = None,
) -> nn.Sequential:
    """The classic MLP discriminator: 784 -> 256 -> 256 -> 1 with LeakyReLU(0.01)."""
    pixels = int(np.prod(image_shape))
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(pixels, hidden, rng=rng),
        nn.LeakyReLU(0.01),
        nn.Linear(hidden, hidden, rng=rng),
        nn.LeakyReLU(0.01),
        nn.Linear(hidden, 1, rng=rng),
    )


def dcgan28_generator(z_dim: int = 100, rng: np.random.Generator | None = None) -> nn.Sequential:
    """DCGAN-28 generator: z -> 128x7x7 -> 64x14x14 -> 1x28x28.

    The generator of the demos and of the benchmarks' reference model (CONTRIBUTING.md).
    Initialised as the DCGAN paper does (weights N(0, 0.02), BatchNorm scales N(1, 0.02),
    biases 0): with PyTorch's default initialisation the LSGAN discriminator wins at once
    and the generator learns nothing in the first thousand steps (we measured both).
    """
    model = nn.Sequential(
        nn.Linear(z_dim, 128 * 7 * 7, rng=rng),
        nn.BatchNorm1d(128 * 7 * 7),
        nn.ReLU(),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1, rng=rng),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1, rng=rng),
        nn.Tanh(),
    )
    init.dcgan_init_(model, rng)
    return model


def dcgan28_discriminator(
    batch_norm: bool = True, rng: np.random.Generator | None = None
) -> nn.Sequential:
    """DCGAN-28 discriminator: 1x28x28 -> 64x14x14 -> 128x7x7 -> 1.

    The discriminator of the demos and of the benchmarks' reference model (CONTRIBUTING.md).
    ``batch_norm=False`` gives the WGAN-GP critic: the gradient penalty is defined per
    sample, and BatchNorm would couple the samples of a batch. Initialised N(0, 0.02) as
    the generator.
    """
    layers = [
        nn.Conv2d(1, 64, 4, stride=2, padding=1, rng=rng),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, stride=2, padding=1, rng=rng),
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(128))
    layers += [nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(128 * 7 * 7, 1, rng=rng)]
    model = nn.Sequential(*layers)
    init.dcgan_init_(model, rng)
    return model


class ConditionalGenerator(nn.Module):
    """G(z, y): DCGAN-28's generator drawing a digit of class y.

    The label enters as a learned vector: G's input is [z, embed(y)], (N, z_dim + 10), so
    every layer can use it; the embedding is initialised N(0, 0.02) with the rest
    (DCGAN's initialisation).

    Args:
        z_dim: size of the noise vector.
        num_classes: number of labels.
        rng: the generator of the initial weights.
    """

    def __init__(
        self, z_dim: int = 100, num_classes: int = 10, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, num_classes, rng=rng)
        init.normal_(self.embed.weight, 0.0, 0.02, rng)
        self.net = dcgan28_generator(z_dim + num_classes, rng=rng)

    def forward(self, z: Tensor, labels: Any) -> Tensor:
        """(N, z_dim) noise and N integer labels -> (N, 1, 28, 28) images in [-1, 1]."""
        return self.net(ops.concat([z, self.embed(labels)], axis=1))


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = w^T phi(x) + b + <embed(y), phi(x)>: DCGAN-28's discriminator, conditioned
    by projection (Miyato & Koyama, "cGANs with projection discriminator", 2018).

    phi(x) are the (N, 6272) features before D's last layer. The label adds an inner product
    with a learned vector per class, instead of being concatenated to D's input: the score
    then has the form of a class-conditional log density ratio, log q(y|x)/p(y|x) plus an
    unconditional term, and the label cannot be ignored by the first layers (with
    concatenation, D may learn "real or fake" and never check that the digit matches).

    Args:
        num_classes: number of labels.
        rng: the generator of the initial weights.
    """

    def __init__(self, num_classes: int = 10, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        full = dcgan28_discriminator(rng=rng)
        self.features = nn.Sequential(*list(full.children())[:-1])  # up to the Flatten
        self.linear = full[-1]  # Linear(6272, 1)
        self.embed = nn.Embedding(num_classes, self.linear.in_features, rng=rng)
        init.normal_(self.embed.weight, 0.0, 0.02, rng)

    def forward(self, x: Tensor, labels: Any) -> Tensor:
        """(N, 1, 28, 28) images and N integer labels -> (N, 1) scores."""
        h = self.features(x)  # (N, 6272)
        projection = ops.sum(self.embed(labels) * h, axis=1, keepdims=True)  # (N, 1)
        return self.linear(h) + projection


def conditional_mnist_models(
    z_dim: int = 100, seed: int = 0
) -> tuple[ConditionalGenerator, ProjectionDiscriminator]:
    """(G, D) of the conditional GAN on MNIST's ten digits, initialised from ``seed``."""
    rng = np.random.default_rng(seed)
    return ConditionalGenerator(z_dim, rng=rng), ProjectionDiscriminator(rng=rng)


MNIST_MODELS = ("dcgan", "mlp")


def mnist_models(
    model: str, z_dim: int = 100, *, d_batchnorm: bool = True, seed: int = 0
) -> tuple[nn.Sequential, nn.Sequential]:
    """(generator, discriminator) for 28x28 digits, both initialised from ``seed``.

    Args:
        model: "dcgan" (DCGAN-28: transposed convolutions in G, strided ones in D) or
            "mlp" (the classic fully connected GAN).
        z_dim: size of the noise vector.
        d_batchnorm: DCGAN-28's discriminator has BatchNorm; False for a WGAN-GP critic,
            or a D with R1 or spectral norm (see ``tinygan.train.discriminator_batchnorm``);
            the MLP has no BatchNorm anyway.
        seed: the weights of G, then D, come from ``numpy.random.default_rng(seed)``.

    Raises:
        ValueError: an unknown ``model``, or a ``seed`` or ``z_dim`` out of range.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be in [0, inf), got {seed!r}")
    if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
        raise ValueError(f"z_dim must be in [1, inf), got {z_dim!r}")
    rng = np.random.default_rng(seed)
    if model == "mlp":
        return mlp_generator(z_dim, rng=rng), mlp_discriminator(rng=rng)
    if model == "dcgan":
        return dcgan28_generator(z_dim, rng=rng), dcgan28_discriminator(d_batchnorm, rng=rng)
    raise ValueError(f"model must be one of {MNIST_MODELS}, got {model!r}")


def _dcgan_depth(image_size: int) -> int:
    depth = int(math.log2(image_size)) - 2
    if image_size not in (32, 64, 128, 256):
        raise ValueError(f"DCGAN image_size must be 32, 64, 128 or 256, got {image_size}")
    return depth


def dcgan_generator(
    image_size: int = 64,
    channels: int = 3,
    z_dim: int = 100,
    width: int = 64,
    rng: np.random.Generator | None = None,
) -> nn.Sequential:
    """The DCGAN paper's generator, initialised N(0, 0.02).

    z (N, z_dim) -> (z_dim, 1, 1) -> 4x4 -> 8x8 -> ... -> image_size, halving the
    channels at each doubling: transposed convs with BatchNorm and ReLU, tanh at the end.
    """
    depth = _dcgan_depth(image_size)
    c = width * 2 ** (depth - 1)
    layers = [
        nn.Unflatten(1, (z_dim, 1, 1)),
        nn.ConvTranspose2d(z_dim, c, 4, stride=1, padding=0, bias=False, rng=rng),
        nn.BatchNorm2d(c),
        nn.ReLU(),
    ]
    for _ in range(depth - 1):
        layers += [
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False, rng=rng),
            nn.BatchNorm2d(c // 2),
            nn.ReLU(),
        ]
        c //= 2
    layers += [nn.ConvTranspose2d(c, channels, 4, stride=2, padding=1, bias=False, rng=rng)]
    layers += [nn.Tanh()]
    model = nn.Sequential(*layers)
    init.dcgan_init_(model, rng)
    return model


def upsample_generator(
    image_size: int = 64,
    channels: int = 3,
    z_dim: int = 128,
    width: int = 64,
    rng: np.random.Generator | None = None,
) -> nn.Sequential:
    """A generator that doubles the image by upsampling, then convolves; initialised N(0, 0.02).

    z (N, z_dim) -> Linear -> (c, 4, 4) -> 8x8 -> ... -> image_size. Each doubling is
    nearest-neighbour upsampling x2 followed by a 3x3 convolution (padding 1) that halves
    the channels, BatchNorm and ReLU; the last one makes ``channels`` images with tanh.
    This is the "repeated upsampling and convolutional layer with ReLU activation" of the
    WGAN-GP CelebA experiments (z in R^128). Unlike a stride-2 transposed convolution,
    whose 4x4 kernel overlaps itself unevenly and can draw a checkerboard (Odena et al.,
    2016), every output pixel here sees the same 3x3 neighbourhood. As written, that costs
    2.25 times the multiply-adds of :func:`dcgan_generator` per doubling (9 taps at the
    doubled size against 16 at the original one); with the fast paths on, ``nn.Sequential``
    runs each upsampling and its convolution as one op, four 2x2 convolutions of the
    low-resolution image (:mod:`tinygan.fast.upsample_conv`), back to 16.
    """
    depth = _dcgan_depth(image_size)
    c = width * 2 ** (depth - 1)
    layers = [
        nn.Linear(z_dim, c * 4 * 4, bias=False, rng=rng),
        nn.BatchNorm1d(c * 4 * 4),
        nn.ReLU(),
        nn.Unflatten(1, (c, 4, 4)),
    ]
    for _ in range(depth - 1):
        layers += [
            nn.Upsample(scale_factor=2),
            nn.Conv2d(c, c // 2, 3, padding=1, bias=False, rng=rng),
            nn.BatchNorm2d(c // 2),
            nn.ReLU(),
        ]
        c //= 2
    layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c, channels, 3, padding=1, rng=rng)]
    layers += [nn.Tanh()]
    model = nn.Sequential(*layers)
    init.dcgan_init_(model, rng)
    return model


NORMS = ("batch", "layer", "none")


def dcgan_discriminator(
    image_size: int = 64,
    channels: int = 3,
    width: int = 64,
    norm: str = "batch",
    rng: np.random.Generator | None = None,
) -> nn.Sequential:
    """The DCGAN paper's discriminator, initialised N(0, 0.02).

    Strided 4x4 convs halve the size and double the channels, LeakyReLU(0.2), a
    normalisation on all but the first; a last 4x4 conv gives one score (N, 1).

    Args:
        norm: "batch" (BatchNorm2d, the paper's), or for a WGAN-GP critic, whose penalty
            treats samples one by one, "layer" (LayerNorm over each sample's (C, H, W), as
            the WGAN-GP paper suggests) or "none".
    """
    if norm not in NORMS:
        raise ValueError(f"dcgan_discriminator: norm must be one of {NORMS}, got {norm!r}")
    depth = _dcgan_depth(image_size)
    c, size = width, image_size // 2
    layers = [
        nn.Conv2d(channels, c, 4, stride=2, padding=1, bias=False, rng=rng),
        nn.LeakyReLU(0.2),
    ]
    for _ in range(depth - 1):
        c, size = c * 2, size // 2
        layers.append(nn.Conv2d(c // 2, c, 4, stride=2, padding=1, bias=False, rng=rng))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(c))
        elif norm == "layer":
            layers.append(nn.LayerNorm((c, size, size)))
        layers.append(nn.LeakyReLU(0.2))
    layers += [nn.Conv2d(c, 1, 4, stride=1, padding=0, bias=False, rng=rng), nn.Flatten()]
    model = nn.Sequential(*layers)
    init.dcgan_init_(model, rng)
    return model


def lenet(rng: np.random.Generator | None = None) -> nn.Sequential:
    """A LeNet-style MNIST classifier: the feature extractor of :mod:`tinygan.metrics`.

    ::

        1x28x28 -> Conv2d(1, 16, 5) -> ReLU -> MaxPool2d(2)   -> 16x12x12
                -> Conv2d(16, 32, 5) -> ReLU -> MaxPool2d(2)  -> 32x4x4
                -> Flatten -> Linear(512, 128) -> ReLU        -> 128 features
                -> Linear(128, 10)                            -> 10 logits

    Input pixels are in [-1, 1], as the generators make them. ``model[:-1]`` is the
    feature extractor (its output, after the ReLU, is what the Fréchet distance compares)
    and ``model[-1]`` the last layer, mapping the features to class logits. About 80,000
    parameters, PyTorch's default initialisation.
    """
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 128, rng=rng),
        nn.ReLU(),
        nn.Linear(128, 10, rng=rng),
    )
