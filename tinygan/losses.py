"""GAN losses with hand-derived gradients, and WGAN-GP's gradient penalty.

``from tinygan import losses``. Each loss is a :class:`~tinygan.autograd.Function`:
``forward`` computes the value on raw arrays, ``backward`` is the gradient derived by hand
(the derivation is in the docstring) and written with tinygan ops, so it can be
differentiated again. Beside each one, ``_composed_<name>`` is the same loss built from
primitive ops; the tests hold the two against each other and against finite differences.

Notation: z is a logit (the discriminator's raw score), sigma(z) = 1 / (1 + e^-z) the
probability "real", softplus(z) = log(1 + e^z), and a batch holds n scores. Every loss
works on logits, never on probabilities, through these identities:

    -log sigma(z)       = softplus(-z)        d/dz softplus(z) = sigma(z)
    -log(1 - sigma(z))  = softplus(z)         sigma(-z) = 1 - sigma(z)

softplus(z) = logaddexp(0, z) is exact and finite for any z (softplus(1000) = 1000,
softplus(-1000) = 0), whereas log(sigmoid(z)) gives -inf once sigmoid(z) rounds to 0.

Scores may have shape (N,) or (N, 1); real and fake batches may differ in size. The
semi-supervised GAN's losses at the end take a row of K class logits per sample, (N, K),
and features of any shape (N, ...).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygan.autograd import Function, enable_grad, grad, is_grad_enabled
from tinygan.ops import (
    broadcast_to,
    exp,
    logsumexp,
    logsumexp_array,
    mean,
    sigmoid,
    softplus,
    sqrt,
)
from tinygan.tensor import Tensor

GP_SQRT_EPS = 1e-12
"""Added under the square root of the gradient norm in :func:`gradient_penalty`."""


def _check_scores(loss: str, name: str, x: Tensor) -> None:
    """Scores must be a Tensor of shape (N,) or (N, 1) with N >= 1."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{loss}: {name} must be a Tensor, got {type(x).__name__}")
    if not (x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)) or x.shape[0] == 0:
        raise ValueError(
            f"{loss}: {name} must have shape (N,) or (N, 1) with N >= 1 (one score per "
            f"sample), got {x.shape}"
        )


# ----------------------------------------------------------------- standard GAN (BCE)


class GanDLoss(Function):
    """Discriminator loss: binary cross-entropy with logits, real -> 1, fake -> 0.

    L = -(1/n_r) sum log sigma(r_i) - (1/n_f) sum log(1 - sigma(f_j))
      =  mean softplus(-r) + mean softplus(f).

    Gradient, from d/dz softplus(z) = sigma(z):

        dL/dr_i = -sigma(-r_i) / n_r = (sigma(r_i) - 1) / n_r
        dL/df_j =  sigma(f_j) / n_f

    (the familiar "prediction minus target, over n"). Both stay in [-1/n, 1/n] for any
    logits, so +-1000 gives finite values and gradients.
    """

    def forward(self, real, fake):
        xp = self.xp
        return xp.logaddexp(0.0, -real).mean() + xp.logaddexp(0.0, fake).mean()

    def backward(self, grad_output):
        real, fake = self.inputs
        g_real = g_fake = None
        if self.needs_input_grad[0]:
            g_real = grad_output * (sigmoid(real) - 1.0) * (1.0 / real.size)
        if self.needs_input_grad[1]:
            g_fake = grad_output * sigmoid(fake) * (1.0 / fake.size)
        return g_real, g_fake


def _composed_gan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return mean(softplus(-real_logits)) + mean(softplus(fake_logits))


def gan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's loss, mean softplus(-real) + mean softplus(fake) (see GanDLoss).

    Args:
        real_logits: D's logits on real samples, (N,) or (N, 1).
        fake_logits: D's logits on generated samples, (M,) or (M, 1).

    Returns:
        A scalar tensor.
    """
    _check_scores("gan_d_loss", "real_logits", real_logits)
    _check_scores("gan_d_loss", "fake_logits", fake_logits)
    return GanDLoss()(real_logits, fake_logits)


class GanGLoss(Function):
    """Generator loss on the discriminator's logits f = D(G(z)).

    Non-saturating (the default, Goodfellow et al. 2014, section 3):

        L = -mean log sigma(f) = mean softplus(-f),    dL/df_j = (sigma(f_j) - 1) / n

    Saturating (the original minimax objective, minimised by G):

        L = mean log(1 - sigma(f)) = -mean softplus(f),    dL/df_j = -sigma(f_j) / n

    The saturating gradient vanishes exactly when G is losing (f << 0, sigma(f) -> 0),
    which is why the non-saturating form is used in practice.
    """

    def __init__(self, saturating: bool) -> None:
        self.saturating = saturating

    def forward(self, fake):
        if self.saturating:
            return -self.xp.logaddexp(0.0, fake).mean()
        return self.xp.logaddexp(0.0, -fake).mean()

    def backward(self, grad_output):
        (fake,) = self.inputs
        shifted = -sigmoid(fake) if self.saturating else sigmoid(fake) - 1.0
        return grad_output * shifted * (1.0 / fake.size)


def _composed_gan_g_loss(fake_logits: Tensor, saturating: bool = False) -> Tensor:
    if saturating:
        return -mean(softplus(fake_logits))
    return mean(softplus(-fake_logits))


def gan_g_loss(fake_logits: Tensor, saturating: bool = False) -> Tensor:
    """The generator's loss: mean softplus(-f) (non-saturating), or -mean softplus(f).

    Args:
        fake_logits: D's logits on generated samples, (N,) or (N, 1).
        saturating: use the original minimax loss mean log(1 - sigma(f)) instead.

    Returns:
        A scalar tensor.
    """
    _check_scores("gan_g_loss", "fake_logits", fake_logits)
    return GanGLoss(bool(saturating))(fake_logits)


# ------------------------------------------------------------------ least squares GAN


class LsganDLoss(Function):
    """LSGAN discriminator loss (Mao et al., 2017, with targets a = 0, b = 1).

    L = 1/2 mean (r - 1)^2 + 1/2 mean f^2

        dL/dr_i = (r_i - 1) / n_r,    dL/df_j = f_j / n_f
    """

    def forward(self, real, fake):
        return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()

    def backward(self, grad_output):
        real, fake = self.inputs
        g_real = g_fake = None
        if self.needs_input_grad[0]:
            g_real = grad_output * (real - 1.0) * (1.0 / real.size)
        if self.needs_input_grad[1]:
            g_fake = grad_output * fake * (1.0 / fake.size)
        return g_real, g_fake


def _composed_lsgan_d_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    return 0.5 * mean((real_out - 1.0) ** 2) + 0.5 * mean(fake_out**2)


def lsgan_d_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2] on D's raw outputs (see LsganDLoss).

    Args:
        real_out: D's outputs on real samples, (N,) or (N, 1).
        fake_out: D's outputs on generated samples, (M,) or (M, 1).
    """
    _check_scores("lsgan_d_loss", "real_out", real_out)
    _check_scores("lsgan_d_loss", "fake_out", fake_out)
    return LsganDLoss()(real_out, fake_out)


class LsganGLoss(Function):
    """LSGAN generator loss (target c = 1).

    L = 1/2 mean (f - 1)^2,    dL/df_j = (f_j - 1) / n
    """

    def forward(self, fake):
        return 0.5 * ((fake - 1.0) ** 2).mean()

    def backward(self, grad_output):
        (fake,) = self.inputs
        return grad_output * (fake - 1.0) * (1.0 / fake.size)


def _composed_lsgan_g_loss(fake_out: Tensor) -> Tensor:
    return 0.5 * mean((fake_out - 1.0) ** 2)


def lsgan_g_loss(fake_out: Tensor) -> Tensor:
    """1/2 E[(D(G(z)) - 1)^2] on D's raw outputs, (N,) or (N, 1) (see LsganGLoss)."""
    _check_scores("lsgan_g_loss", "fake_out", fake_out)
    return LsganGLoss()(fake_out)


# ----------------------------------------------------------------------- Wasserstein


class WganDLoss(Function):
    """WGAN critic loss, the negated estimate of the Wasserstein-1 distance.

    L = mean f - mean r,    dL/dr_i = -1 / n_r,    dL/df_j = 1 / n_f

    The gradient is constant in the scores; it is still written as grad_output broadcast
    to each input's shape, so a second differentiation correctly gives zero.
    """

    def forward(self, real, fake):
        return fake.mean() - real.mean()

    def backward(self, grad_output):
        real, fake = self.inputs
        g_real = g_fake = None
        if self.needs_input_grad[0]:
            g_real = broadcast_to(grad_output * (-1.0 / real.size), real.shape)
        if self.needs_input_grad[1]:
            g_fake = broadcast_to(grad_output * (1.0 / fake.size), fake.shape)
        return g_real, g_fake


def _composed_wgan_d_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    return mean(fake_out) - mean(real_out)


def wgan_d_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """E[D(G(z))] - E[D(x)] on the critic's scores (see WganDLoss); add a gradient penalty.

    Args:
        real_out: critic scores on real samples, (N,) or (N, 1).
        fake_out: critic scores on generated samples, (M,) or (M, 1).
    """
    _check_scores("wgan_d_loss", "real_out", real_out)
    _check_scores("wgan_d_loss", "fake_out", fake_out)
    return WganDLoss()(real_out, fake_out)


class WganGLoss(Function):
    """WGAN generator loss.  L = -mean f,    dL/df_j = -1 / n."""

    def forward(self, fake):
        return -fake.mean()

    def backward(self, grad_output):
        (fake,) = self.inputs
        return broadcast_to(grad_output * (-1.0 / fake.size), fake.shape)


def _composed_wgan_g_loss(fake_out: Tensor) -> Tensor:
    return -mean(fake_out)


def wgan_g_loss(fake_out: Tensor) -> Tensor:
    """-E[D(G(z))] on the critic's scores, (N,) or (N, 1) (see WganGLoss)."""
    _check_scores("wgan_g_loss", "fake_out", fake_out)
    return WganGLoss()(fake_out)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    weight: float = 10.0,
    rng: np.random.Generator | None = None,
) -> Tensor:
    """WGAN-GP's penalty (Gulrajani et al., 2017): keep the critic's gradient norm near 1.

        x_hat = eps * real + (1 - eps) * fake,     eps ~ U[0, 1], one per sample
        g_i   = d critic(x_hat)_i / d x_hat_i       (a whole sample's gradient)
        P     = weight * mean_i (||g_i||_2 - 1)^2

    Because critic(x_hat)_i depends on x_hat_i only, all g_i come from one backward pass:
    ``tinygan.grad(critic(x_hat).sum(), [x_hat], create_graph=True)``. The graph of that
    backward pass is kept, so ``P.backward()`` differentiates through it and reaches the
    critic's parameters: a true second-order gradient. This needs a critic without
    BatchNorm (which would mix samples); use no normalisation, or layer norm.

    The norm is computed as sqrt(||g_i||^2 + 1e-12) (``GP_SQRT_EPS``): d sqrt(s)/ds =
    1/(2 sqrt(s)) is infinite at s = 0, and 0 * inf would turn a zero gradient into nan.
    The shift changes the norm by at most 1e-6.

    ``real`` and ``fake`` are treated as constants (the penalty trains the critic only);
    x_hat is a new leaf. Under ``no_grad`` the penalty's value is still computed (with a
    first-order gradient only).

    Args:
        critic: maps a batch (N, ...) to scores (N,) or (N, 1).
        real, fake: batches of the same shape (N, ...).
        weight: lambda, 10 in the paper.
        rng: NumPy Generator for eps (drawn on the CPU, then moved); None: a fresh one.

    Returns:
        A scalar tensor.
    """
    if not isinstance(real, Tensor) or not isinstance(fake, Tensor):
        raise TypeError("gradient_penalty: real and fake must be Tensors")
    if real.shape != fake.shape or real.ndim < 1 or real.shape[0] == 0:
        raise ValueError(
            f"gradient_penalty: real and fake must be non-empty batches of the same shape, "
            f"got {real.shape} and {fake.shape}"
        )
    n = real.shape[0]
    rng = np.random.default_rng() if rng is None else rng
    eps = rng.random((n,) + (1,) * (real.ndim - 1))  # (N, 1, ..., 1): one per sample
    eps = real.xp.asarray(eps, dtype=real.dtype)
    x_hat = Tensor(eps * real.data + (1.0 - eps) * fake.data, requires_grad=True)
    second_order = is_grad_enabled()
    with enable_grad():  # the inner gradient needs a graph even under no_grad
        scores = critic(x_hat)
        _check_scores("gradient_penalty", "critic(x_hat)", scores)
        (g,) = grad(scores.sum(), [x_hat], create_graph=second_order)
    squared_norm = (g * g).reshape(n, -1).sum(axis=1)  # (N,)
    norm = sqrt(squared_norm + GP_SQRT_EPS)
    return weight * mean((norm - 1.0) ** 2)


# ------------------------------------------------- semi-supervised GAN (K + 1 classes)


def _check_logits(loss: str, name: str, x: Tensor) -> None:
    """Class logits must be a Tensor of shape (N, K) with N, K >= 1."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{loss}: {name} must be a Tensor, got {type(x).__name__}")
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(
            f"{loss}: {name} must have shape (N, K) with N, K >= 1 (K class logits per "
            f"sample), got {x.shape}"
        )


class SemiSupervisedDLoss(Function):
    """The unsupervised half of the semi-supervised discriminator's loss (Salimans et al.,
    "Improved Techniques for Training GANs", 2016, section 5).

    The discriminator is a classifier over K real classes plus "fake". Its logits are
    l_1..l_K; the fake class's logit is fixed to 0 (adding a constant to every logit leaves
    a softmax unchanged, so one logit may be pinned). With Z = sum_k e^(l_k):

        p(fake | x) = 1 / (Z + 1),    D(x) = p(real | x) = Z / (Z + 1) = sigma(s),
        s = log Z = logsumexp(l).

    The loss asks D to call unlabelled data real and generated samples fake,
    L = -E_x log D(x) - E_z log(1 - D(G(z))). With -log sigma(s) = softplus(-s) and
    -log(1 - sigma(s)) = softplus(s), for real logits r (n_r rows) and fake ones f (n_f):

        L = (1/n_r) sum_i softplus(-s_i) + (1/n_f) sum_j softplus(s'_j),
        s_i = logsumexp(r_i),   s'_j = logsumexp(f_j)

    which is the GAN discriminator loss (GanDLoss) on the scores s. Both pieces are stable
    for any logits: logsumexp shifts by the maximum, softplus is logaddexp(0, .). Written
    naively, log(Z / (Z + 1)) is log(inf / inf) = nan once a logit passes 88.7 in float32.

    Gradient, by the chain rule through s, with d softplus(u)/du = sigma(u) and
    d s / d l_k = e^(l_k) / Z = softmax(l)_k:

        dL/dr_ik = -sigma(-s_i) softmax(r_i)_k / n_r = (sigma(s_i) - 1) softmax(r_i)_k / n_r
        dL/df_jk =  sigma(s'_j) softmax(f_j)_k / n_f

    In probabilities: dL/dr_ik = -p(fake | x_i) p(k | x_i, real) / n_r: a real sample lifts
    its real-class logits in proportion to their share, as hard as D thinks the sample is
    fake. dL/df_jk = e^(f_jk) / (Z_j + 1) / n_f = p(k | G(z_j)) / n_f, the (K+1)-class
    probability of class k: a generated sample lowers each real-class logit by how much D
    believes in it. Every entry lies in [-1/n, 1/n] for any logits. The backward below
    writes exactly these formulas with tinygan ops, softmax(l) as exp(l - s), so it can be
    differentiated again.
    """

    def forward(self, real, fake):
        xp = self.xp
        s_real, s_fake = logsumexp_array(real, (1,)), logsumexp_array(fake, (1,))
        return xp.logaddexp(0.0, -s_real).mean() + xp.logaddexp(0.0, s_fake).mean()

    def backward(self, grad_output):
        real, fake = self.inputs
        g_real = g_fake = None
        if self.needs_input_grad[0]:
            s = logsumexp(real, axis=1, keepdims=True)  # (N, 1)
            g_real = grad_output * (sigmoid(s) - 1.0) * exp(real - s) * (1.0 / real.shape[0])
        if self.needs_input_grad[1]:
            s = logsumexp(fake, axis=1, keepdims=True)  # (M, 1)
            g_fake = grad_output * sigmoid(s) * exp(fake - s) * (1.0 / fake.shape[0])
        return g_real, g_fake


def _composed_semi_supervised_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    s_real, s_fake = logsumexp(real_logits, axis=1), logsumexp(fake_logits, axis=1)
    return mean(softplus(-s_real)) + mean(softplus(s_fake))


def semi_supervised_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-E log D(x) - E log(1 - D(G(z))) with D = Z / (Z + 1), Z = sum e^logits.

    The unsupervised part of a semi-supervised discriminator's loss; add the supervised
    part, ``F.cross_entropy(labelled_logits, labels)``, for the labelled images (see
    :class:`SemiSupervisedDLoss` for the derivation).

    Args:
        real_logits: the K real-class logits of unlabelled real samples, (N, K).
        fake_logits: the same for generated samples, (M, K).

    Returns:
        A scalar tensor.
    """
    _check_logits("semi_supervised_d_loss", "real_logits", real_logits)
    _check_logits("semi_supervised_d_loss", "fake_logits", fake_logits)
    if real_logits.shape[1] != fake_logits.shape[1]:
        raise ValueError(
            f"semi_supervised_d_loss: real and fake logits need the same number of classes, "
            f"got {real_logits.shape} and {fake_logits.shape}"
        )
    return SemiSupervisedDLoss()(real_logits, fake_logits)


class FeatureMatchingLoss(Function):
    """Feature matching (Salimans et al. 2016, section 3.1): the generator matches the mean
    of the discriminator's intermediate features h on real and on generated samples.

        L = || mu_f - mu_r ||^2 = sum_c (mu_f,c - mu_r,c)^2,
        mu_r = (1/n_r) sum_i h(x_i),   mu_f = (1/n_f) sum_j h(G(z_j))

    summed over every feature c (all axes after the batch axis). With d = mu_f - mu_r,
    each sample's features enter its batch mean with weight 1/n, so

        dL/dh(G(z_j))_c = 2 d_c / n_f,     dL/dh(x_i)_c = -2 d_c / n_r

    the same for every sample of a batch. The real features are usually computed without
    a graph (the generator's loss does not train D), so only the fake ones need a gradient.
    """

    def forward(self, real, fake):
        diff = fake.mean(axis=0) - real.mean(axis=0)
        return (diff * diff).sum()

    def backward(self, grad_output):
        real, fake = self.inputs
        diff = mean(fake, axis=0) - mean(real, axis=0)  # (C, ...)
        g_real = g_fake = None
        if self.needs_input_grad[0]:
            g_real = broadcast_to(grad_output * diff * (-2.0 / real.shape[0]), real.shape)
        if self.needs_input_grad[1]:
            g_fake = broadcast_to(grad_output * diff * (2.0 / fake.shape[0]), fake.shape)
        return g_real, g_fake


def _composed_feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    diff = mean(fake_features, axis=0) - mean(real_features, axis=0)
    return (diff * diff).sum()


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """|| mean h(x) - mean h(G(z)) ||^2, the generator's loss by feature matching.

    Args:
        real_features: D's intermediate features of real samples, (N, ...).
        fake_features: the same features of generated samples, (M, ...), same trailing
            shape.

    Returns:
        A scalar tensor.
    """
    for name, t in (("real_features", real_features), ("fake_features", fake_features)):
        if not isinstance(t, Tensor):
            raise TypeError(f"feature_matching_loss: {name} must be a Tensor, got {type(t)}")
        if t.ndim < 1 or t.shape[0] == 0:
            raise ValueError(f"feature_matching_loss: {name} must be a non-empty batch (N, ...)")
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ValueError(
            f"feature_matching_loss: real and fake features differ in shape: "
            f"{real_features.shape} and {fake_features.shape}"
        )
    return FeatureMatchingLoss()(real_features, fake_features)
