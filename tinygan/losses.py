"""The LSGAN losses, with hand-derived gradients; every family's losses in one namespace.

``from tinygan import losses``. Each loss is a :class:`~tinygan.autograd.Function`:
``forward`` computes the value on raw arrays, ``backward`` is the gradient derived by hand
(the derivation is in the docstring) and written with tinygan ops, so it can be
differentiated again. Beside each one, ``_composed_<name>`` is the same loss built from
primitive ops; the tests hold the two against each other and against finite differences.

Scores may have shape (N,) or (N, 1); real and fake batches may differ in size.

The ``losses`` namespace also holds, written the same way, the original GAN's losses on
logits (:mod:`tinygan.losses_gan`), the hinge loss (:mod:`tinygan.losses_hinge`), the R1
penalty (:mod:`tinygan.losses_r1`), the WGAN losses and WGAN-GP's gradient penalty
(:mod:`tinygan.losses_wgan`) and the semi-supervised GAN's losses
(:mod:`tinygan.losses_semi_supervised`).
"""

from __future__ import annotations

from tinygan.autograd import Function
from tinygan.ops import mean
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
from tinygan.losses_gan import gan_d_loss, gan_g_loss  # noqa: E402, F401
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
