"""The original GAN's losses (Goodfellow et al., 2014), with hand-derived gradients.

Written as :mod:`tinygan.losses` writes its losses (a ``Function`` whose backward is the
derived gradient, beside ``_composed_<name>``, the same loss built from primitive ops), and
in the same namespace: ``losses.gan_d_loss``, ``losses.gan_g_loss``.

Notation: z is a logit (the discriminator's raw score), sigma(z) = 1 / (1 + e^-z) the
probability "real", softplus(z) = log(1 + e^z), and a batch holds n scores. Every loss
works on logits, never on probabilities, through these identities:

    -log sigma(z)       = softplus(-z)        d/dz softplus(z) = sigma(z)
    -log(1 - sigma(z))  = softplus(z)         sigma(-z) = 1 - sigma(z)

softplus(z) = logaddexp(0, z) is exact and finite for any z (softplus(1000) = 1000,
softplus(-1000) = 0), whereas log(sigmoid(z)) gives -inf once sigmoid(z) rounds to 0.
"""

from __future__ import annotations

from tinygan.autograd import Function
from tinygan.losses import _check_scores
from tinygan.ops import mean, sigmoid, softplus
from tinygan.tensor import Tensor


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
