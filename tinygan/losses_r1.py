"""The R1 penalty (Mescheder, Geiger & Nowozin, 2018, "Which Training Methods for GANs do
actually Converge?"): a penalty on D's gradient at the real data. Part of the ``losses``
namespace.

The paper shows that unregularised GAN training can circle around its equilibrium forever;
penalising ``||grad_x D(x)||^2`` on real samples makes D flat where the data is, so the game
settles there (the "R1" name: the first of the two regularisers the paper studies, on real
data; R2 is the same on fakes). StyleGAN and most GANs since train with it. Like WGAN-GP's
penalty it is a gradient of a gradient: the penalty differentiates D's input gradient, and
its backward reaches D's weights through a second-order graph.
"""

from __future__ import annotations

from collections.abc import Callable

from tinygan.losses_wgan import squared_input_gradient_norms
from tinygan.ops import mean
from tinygan.tensor import Tensor


def r1_penalty(discriminator: Callable[[Tensor], Tensor], real: Tensor, gamma: float) -> Tensor:
    """gamma/2 * mean_i ||d D(x)_i / d x_i||^2 over a batch of real samples x.

        g_i = d D(x)_i / d x_i          (sample i's gradient, all of it in one backward:
                                         D(x)_i depends on x_i only)
        R1  = gamma / 2 * mean_i ||g_i||^2

    The gradient is taken with ``create_graph`` on, so ``R1.backward()`` differentiates
    through it into D's weights (a true second-order gradient). There is no square root,
    so unlike WGAN-GP's norm nothing needs an epsilon at a zero gradient. Add it to D's
    loss; it trains D only (``real`` is a constant, x a new leaf). Under ``no_grad`` its value
    is still computed, with a first-order graph only.

    Lazy regularisation (StyleGAN2, Karras et al., 2020) computes R1 only every k-th D step,
    with gamma multiplied by k, so that its average strength stays the same for a k-th of
    the cost. As WGAN-GP's penalty, it assumes a D without BatchNorm, which would couple the
    samples.

    Args:
        discriminator: maps a batch (N, ...) to scores (N,) or (N, 1).
        real: a batch of real samples (N, ...).
        gamma: the penalty's weight, >= 0 (10 in the paper's CelebA-HQ runs; smaller for
            small images, e.g. 0.1 to 1 on MNIST).

    Returns:
        A scalar tensor.
    """
    if not isinstance(real, Tensor) or real.ndim < 1 or real.shape[0] == 0:
        raise ValueError("r1_penalty: real must be a non-empty batch Tensor (N, ...)")
    if not gamma >= 0.0:  # NaN fails too
        raise ValueError(f"r1_penalty: gamma must be a number >= 0, got {gamma}")
    x = Tensor(real.data, requires_grad=True)
    squared_norm = squared_input_gradient_norms(discriminator, x, "r1_penalty")  # (N,)
    return (0.5 * float(gamma)) * mean(squared_norm)
