"""The GAN and LSGAN losses, with hand-derived gradients.

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

The ``losses`` namespace also holds the WGAN losses and WGAN-GP's gradient penalty
(:mod:`tinygan.losses_wgan`) and the semi-supervised GAN's losses
(:mod:`tinygan.losses_semi_supervised`), written the same way.
"""

from __future__ import annotations

from tinygan.autograd import Function
from tinygan.ops import (
    mean,
    sigmoid,
    softplus,
)
from tinygan.tensor import Tensor


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


# The other families and penalties, written the same way, in the same namespace.
from tinygan.losses_hinge import hinge_d_loss, hinge_g_loss  # noqa: E402, F401
from tinygan.losses_r1 import r1_penalty  # noqa: E402, F401
from tinygan.losses_semi_supervised import (  # noqa: E402, F401
    feature_matching_loss,
    semi_supervised_d_loss,
)
from tinygan.losses_wgan import (  # noqa: E402, F401
    GP_SQRT_EPS,
    gradient_penalty,
    wgan_d_loss,
    wgan_g_loss,
)
