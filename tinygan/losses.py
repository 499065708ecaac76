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

Scores may have shape (N,) or (N, 1); real and fake batches may differ in size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygan.autograd import Function, enable_grad, grad, is_grad_enabled
from tinygan.ops import broadcast_to, mean, sigmoid, softplus, sqrt
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
