"""The WGAN losses (Arjovsky et al., 2017) and WGAN-GP's gradient penalty (Gulrajani et
al., 2017), with hand-derived gradients.

Written as :mod:`tinygan.losses` writes the GAN and LSGAN losses: each loss a Function whose
backward is the derivative in its docstring, beside the same loss composed of ops
(``_composed_<name>``), both held to finite differences by the tests. The critic's
scores are unbounded reals, (N,) or (N, 1). Part of the ``losses`` namespace.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygan.autograd import Function, enable_grad, grad, is_grad_enabled
from tinygan.losses import _check_scores
from tinygan.ops import broadcast_to, mean, sqrt
from tinygan.tensor import Tensor

GP_SQRT_EPS = 1e-12
"""Added under the square root of the gradient norm in :func:`gradient_penalty`."""


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
    squared_norm = squared_input_gradient_norms(critic, x_hat, "gradient_penalty")
    norm = sqrt(squared_norm + GP_SQRT_EPS)
    return weight * mean((norm - 1.0) ** 2)


def squared_input_gradient_norms(
    critic: Callable[[Tensor], Tensor], x: Tensor, penalty: str
) -> Tensor:
    """||g_i||^2 with g_i = d critic(x)_i / d x_i, for each sample of the leaf ``x`` (N, ...).

    Because critic(x)_i depends on x_i only, all g_i come from one backward pass of
    ``critic(x).sum()``. That pass records its graph whenever the caller is recording
    (``create_graph=is_grad_enabled()``), so a penalty built on the result differentiates
    through it into the critic's weights: a true second-order gradient. Under ``no_grad``
    the norms are still computed, with a first-order graph only. Shared by WGAN-GP's
    penalty and R1 (:func:`tinygan.losses_r1.r1_penalty`).

    Returns:
        A (N,) tensor.
    """
    second_order = is_grad_enabled()
    with enable_grad():  # the inner gradient needs a graph even under no_grad
        scores = critic(x)
        _check_scores(penalty, "the critic's scores", scores)
        (g,) = grad(scores.sum(), [x], create_graph=second_order)
    return (g * g).reshape(x.shape[0], -1).sum(axis=1)
