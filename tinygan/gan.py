"""The two updates of a GAN as functions: :func:`d_step` and :func:`g_step`.

Goodfellow et al.'s Algorithm 1 alternates them. The main demo ``demos/mnist_lsgan.py``
writes both out in its loop; the shared loop of :mod:`tinygan.train` (and the conditional
demo) call these two, which are the same lines (a test holds the main demo and the shared
loop to the same checkpoints)::

    for k steps:  x ~ data,  z ~ N(0, I)
                  D <- D - lr grad_D [ L_D(D(x), D(G(z))) (+ gradient penalty) ]    d_step
    z ~ N(0, I):  G <- G - lr grad_G [ L_G(D(G(z))) ]                              g_step

The losses are arguments, so the same two functions train a GAN, an LSGAN, a hinge GAN or
a WGAN-GP: :data:`LOSSES` names each family's pair. Two stabilisers are keyword arguments:
``r1_gamma`` adds the R1 penalty gamma/2 E||grad_x D(x)||^2 on the real images to L_D
(:func:`tinygan.losses.r1_penalty`), and ``augment`` passes every image D sees through
one random DiffAugment transform T (:mod:`tinygan.augment`), in both updates::

    L_D(D(T(x)), D(T(G(z))))  (+ penalty on T(x), T(G(z)))    L_G(D(T(G(z))))
 The fakes G(z) are made by the caller, once per
step: the discriminator sees them detached (its update must not move G), the generator
update differentiates through them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from tinygan import losses
from tinygan.augment import diff_augment
from tinygan.autograd import no_grad
from tinygan.nn import Module, evaluating
from tinygan.ops import sigmoid
from tinygan.optim import Optimizer
from tinygan.tensor import Tensor

DLoss = Callable[[Tensor, Tensor], Tensor]  # (D(x), D(G(z))) -> scalar
GLoss = Callable[[Tensor], Tensor]  # D(G(z)) -> scalar
Critic = Callable[[Tensor], Tensor]  # images -> scores: D, or a conditional D given labels


@dataclass(frozen=True)
class LossFamily:
    """A GAN objective: the discriminator's and the generator's loss, and what D outputs.

    Attributes:
        d_loss: L_D(D(x), D(G(z))).
        g_loss: L_G(D(G(z))).
        logits: D outputs logits (shown as probabilities sigmoid(D) in the logs).
        critic: D is a Wasserstein critic, kept 1-Lipschitz by the gradient penalty; such a
            critic has no BatchNorm, which would couple the samples that the penalty
            treats one by one (Gulrajani et al., 2017, section 4).
        fake_target: the mean D(G(z)) of a discriminator that wins outright, in the units
            the logs show (probabilities for logits): 0, or -1 for the hinge loss, which is
            satisfied at fake scores <= -1; None for a critic, whose scores have no target.
            The diagnostics (:mod:`tinygan.utils.diagnostics`) read it.
    """

    d_loss: DLoss
    g_loss: GLoss
    logits: bool = False
    critic: bool = False
    fake_target: float | None = 0.0


LOSSES: dict[str, LossFamily] = {
    "gan": LossFamily(losses.gan_d_loss, losses.gan_g_loss, logits=True),
    "gan-saturating": LossFamily(
        losses.gan_d_loss, partial(losses.gan_g_loss, saturating=True), logits=True
    ),
    "lsgan": LossFamily(losses.lsgan_d_loss, losses.lsgan_g_loss),
    "hinge": LossFamily(losses.hinge_d_loss, losses.hinge_g_loss, fake_target=-1.0),
    "wgan-gp": LossFamily(losses.wgan_d_loss, losses.wgan_g_loss, critic=True, fake_target=None),
}


@dataclass
class DStep:
    """What one discriminator update saw.

    Attributes:
        loss: L_D, penalty included, before the update.
        real_scores, fake_scores: D(x) and D(G(z)), (N, 1) each.
        penalty: WGAN-GP's gradient penalty's part of ``loss``, or None.
        r1: the R1 penalty's part of ``loss``, or None.
    """

    loss: Tensor
    real_scores: Tensor
    fake_scores: Tensor
    penalty: Tensor | None = None
    r1: Tensor | None = None

    def summary(self, logits: bool = False) -> dict[str, Any]:
        """``d_loss``, ``penalty`` and the mean scores ``d_real`` and ``d_fake``: one-element
        arrays where they were computed (on a GPU, reading them waits for it: Run.log does
        that every ``log_every`` steps), or 0.0 for a missing penalty. ``penalty`` is
        WGAN-GP's penalty plus R1 (the training loop never uses both).

        With ``logits=True`` the mean scores are probabilities, the mean of sigmoid(D).
        """
        with no_grad():
            real, fake = (
                (sigmoid(self.real_scores), sigmoid(self.fake_scores))
                if logits
                else (self.real_scores, self.fake_scores)
            )
        penalties = [p.data for p in (self.penalty, self.r1) if p is not None]
        return {
            "d_loss": self.loss.data,
            "d_real": real.data.mean(),
            "d_fake": fake.data.mean(),
            "penalty": sum(penalties[1:], penalties[0]) if penalties else 0.0,
        }


def d_step(
    D: Critic,
    opt_d: Optimizer,
    d_loss: DLoss,
    real: Tensor,
    fake: Tensor,
    gp_weight: float = 0.0,
    gp_rng: np.random.Generator | None = None,
    *,
    r1_gamma: float = 0.0,
    augment: str = "",
    augment_rng: np.random.Generator | None = None,
) -> DStep:
    """One discriminator update: score real and fake images, L_D, one optimizer step.

    Args:
        D: the discriminator (critic).
        opt_d: the optimizer of D's parameters.
        d_loss: L_D(D(x), D(G(z))), e.g. ``losses.lsgan_d_loss``.
        real: a batch of real images x (N, C, H, W).
        fake: a batch of fakes G(z), detached from G (N, C, H, W).
        gp_weight: lambda of WGAN-GP's gradient penalty (0: none).
        gp_rng: draws the penalty's interpolation weights.
        r1_gamma: gamma of the R1 penalty on the real images D is scored on (0: none).
        augment: a DiffAugment policy such as "translation,cutout" ("": none), applied to
            the real images, then to the fakes, before D sees them; the penalties see the
            augmented images too.
        augment_rng: draws the augmentations (needed with ``augment``).
    """
    if augment:  # T(x), T(G(z)): D only ever sees augmented images
        real = diff_augment(real, augment, augment_rng)
        fake = diff_augment(fake, augment, augment_rng)
    real_scores, fake_scores = D(real), D(fake)  # (N, 1) each
    loss = d_loss(real_scores, fake_scores)
    penalty = r1 = None
    if gp_weight:
        penalty = losses.gradient_penalty(D, real, fake, weight=gp_weight, rng=gp_rng)
        loss = loss + penalty
    if r1_gamma:
        r1 = losses.r1_penalty(D, real, r1_gamma)
        loss = loss + r1
    opt_d.minimize(loss)
    return DStep(loss, real_scores, fake_scores, penalty, r1)


def g_step(
    D: Critic,
    opt_g: Optimizer,
    g_loss: GLoss,
    fake: Tensor,
    *,
    augment: str = "",
    augment_rng: np.random.Generator | None = None,
) -> Tensor:
    """One generator update: score the fakes, L_G, one optimizer step on G's parameters.

    Args:
        D: the discriminator; its parameters are not changed here (its BatchNorm running
            statistics are: D runs in training mode on the fakes, as in PyTorch).
        opt_g: the optimizer of G's parameters.
        g_loss: L_G(D(G(z))), e.g. ``losses.lsgan_g_loss``.
        fake: G(z) with its graph (not detached), so the gradient reaches G.
        augment: the DiffAugment policy D's updates use ("": none); G's loss sees the
            augmented fakes T(G(z)), and the gradient flows back through T into G.
        augment_rng: draws the augmentations (needed with ``augment``).

    Returns:
        L_G before the update.
    """
    if augment:
        fake = diff_augment(fake, augment, augment_rng)
    loss = g_loss(D(fake))
    opt_g.minimize(loss)
    return loss


def generate(generator: Module, z: Tensor) -> np.ndarray:
    """Images G(z) as a NumPy array, the generator in eval mode (BatchNorm's running stats).

    Leaves the generator in the mode it was in.
    """
    with evaluating(generator):
        return generator(z).numpy()


def generate_many(
    generator: Module, z: np.ndarray, device: str = "cpu", batch_size: int = 250
) -> np.ndarray:
    """:func:`generate` for many noise vectors (N, z_dim), ``batch_size`` at a time.

    Batches keep the memory small (a transposed convolution's columns grow with the
    batch); the result is a NumPy array (N, C, H, W).
    """
    parts = [
        generate(generator, Tensor(z[start : start + batch_size]).to(device))
        for start in range(0, len(z), batch_size)
    ]
    return np.concatenate(parts)
