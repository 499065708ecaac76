"""The hinge loss (Lim & Ye, 2017), the objective of SN-GAN (Miyato et al., 2018) and
BigGAN, with its hand-derived gradient.

Written as :mod:`tinygan.losses` writes the GAN and LSGAN losses: the loss a Function whose
backward is the derivative in its docstring, beside the same loss composed of ops
(``_composed_hinge_d_loss``), both held to finite differences by the tests. D's scores are
unbounded reals, (N,) or (N, 1). Part of the ``losses`` namespace.

Why a hinge: D is pushed to score real samples above +1 and fakes below -1, and no further.
A sample already beyond its margin adds nothing to D's loss (its gradient is 0), so D stops
sharpening its verdict on samples it already classifies well, the saturation that starves
the original GAN's generator; G's loss is the critic's, -mean D(G(z)), whose gradient never
vanishes.
"""

from __future__ import annotations

from tinygan.autograd import Function
from tinygan.losses import _check_scores
from tinygan.losses_wgan import WganGLoss
from tinygan.ops import mean, relu
from tinygan.tensor import Tensor


class HingeDLoss(Function):
    """Hinge loss of the discriminator.

    L = mean_i relu(1 - r_i) + mean_j relu(1 + f_j)
    dL/dr_i = -[r_i < 1] / n_r,    dL/df_j = [f_j > -1] / n_f

    The brackets are 1 where the sample is inside its margin, else 0 (at the kink, 0, as
    ReLU's derivative at 0). They are constants of the scores (the loss is piecewise
    linear), so a second differentiation correctly gives zero.
    """

    def forward(self, real, fake):
        xp = self.xp
        return xp.maximum(1.0 - real, 0.0).mean() + xp.maximum(1.0 + fake, 0.0).mean()

    def backward(self, grad_output):
        real, fake = self.inputs
        g_real = g_fake = None
        if self.needs_input_grad[0]:
            inside = Tensor((real.data < 1.0).astype(real.dtype))  # constant mask
            g_real = grad_output * inside * (-1.0 / real.size)
        if self.needs_input_grad[1]:
            inside = Tensor((fake.data > -1.0).astype(fake.dtype))  # constant mask
            g_fake = grad_output * inside * (1.0 / fake.size)
        return g_real, g_fake


def _composed_hinge_d_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    return mean(relu(1.0 - real_out)) + mean(relu(1.0 + fake_out))


def hinge_d_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] on D's raw scores (see HingeDLoss).

    Args:
        real_out: D's scores on real samples, (N,) or (N, 1).
        fake_out: D's scores on generated samples, (M,) or (M, 1).
    """
    _check_scores("hinge_d_loss", "real_out", real_out)
    _check_scores("hinge_d_loss", "fake_out", fake_out)
    return HingeDLoss()(real_out, fake_out)


def hinge_g_loss(fake_out: Tensor) -> Tensor:
    """-E[D(G(z))]: the generator's side of the hinge loss, the same as WGAN's
    (:class:`~tinygan.losses_wgan.WganGLoss`, dL/df_j = -1/n): G raises D's score of its
    samples, with a gradient that does not vanish as D grows confident.

    Args:
        fake_out: D's scores on generated samples, (N,) or (N, 1).
    """
    _check_scores("hinge_g_loss", "fake_out", fake_out)
    return WganGLoss()(fake_out)
