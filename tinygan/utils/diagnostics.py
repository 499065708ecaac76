"""What a run's numbers say about its health, and the known GAN failures told in plain words.

:class:`~tinygan.utils.run.Run` keeps, beside each step's losses (``losses.csv``, and
``diagnostics.png`` beside ``losses.png``):

* ``d_real`` and ``d_fake``: the means of D(x) and D(G(z)) (probabilities for the GAN
  losses, whose D outputs logits), and their gap ``wasserstein`` = E[D(x)] - E[D(G(z))]:
  for a WGAN critic, the estimate of the Wasserstein distance it maximises;
* ``g_grad_norm`` and ``d_grad_norm``: each network's gradient norm after its update,
  :func:`gradient_norm`, sqrt(sum over parameters p of sum_i (dL/dp_i)^2): how strongly
  the loss pulls the weights (a generator whose gradient fades has stopped learning);
* ``penalty``: WGAN-GP's or R1's penalty, when the run has one.

A :class:`Watch` reads that history, and the scores of ``--eval-every``, and warns once
each, naming the usual fixes, when it sees the signature of a known failure:

* **D is winning**: for :data:`WINDOW` steps D(G(z)) has sat at its target for fakes
  (within a tenth of the gap between the targets) while G's gradient norm has fallen
  below :data:`FADED` of its peak: G gets almost no signal (Goodfellow et al.'s saturating
  loss does this; Arjovsky and Bottou, 2017, say why).
* **Mode collapse**: one digit is more than :data:`TOP_CLASS_SHARE` of the scored samples
  (3 times its 10%), or the samples of the grid, drawn from fixed noise, are less than
  :data:`DIVERSITY_FLOOR` as far apart (mean distance between two of them) as real images
  are, which works for any images; at :data:`PERSIST` evaluations (or grids) in a row
  after step :data:`WARMUP`, since every GAN's samples start out alike and most spread
  out within a few hundred steps (docs/08-training.md shows one).
* **Oscillation**: over the last :data:`SWING_WINDOW` steps the means of G's loss over
  blocks of :data:`BLOCK` steps swing by more than :data:`SWING` times their mean, up and
  down at least :data:`SWING_CROSSINGS` times: the two players chase each other instead of
  settling. (Not for a critic: its losses have no scale to hold a swing against.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tinygan.backend import array_module, to_numpy
from tinygan.tensor import Tensor

WINDOW = 100  # steps a sign must last
FADED = 0.1  # G's gradient norm below this share of its peak has faded
TOP_CLASS_SHARE = 0.3  # one digit above this share of the samples: mode collapse
DIVERSITY_FLOOR = 0.3  # grid samples less than this share as far apart as real images
WARMUP, PERSIST = 500, 2  # collapse is judged after step WARMUP, at PERSIST checks in a row
SWING_WINDOW, BLOCK, SWING, SWING_CROSSINGS = 400, 25, 1.0, 4


def gradient_norm(parameters: Iterable[Tensor]) -> Any:
    """sqrt(sum_p sum_i (dL/dp_i)^2) over the parameters p with a ``.grad``; 0.0 if none.

    A 0-d array where the gradients are (on a GPU, reading it waits for the device: a Run
    reads it with the losses), so recording it every step costs one pass over the
    gradients and no wait. It is inf when the sum of squares overflows the gradients'
    dtype (float32: entries above about 1e19, in a run that is diverging).
    """
    squares = []
    for p in parameters:
        if p.grad is not None:
            g = p.grad.data.ravel()
            squares.append(array_module(g).dot(g, g))
    if not squares:
        return 0.0
    return array_module(squares[0]).sqrt(sum(squares[1:], squares[0]))


def diversity(images: Any) -> float:
    """The mean Euclidean distance between two of ``images`` (N >= 2, any shape per image).

    With x_i the flattened images: mean over i < j of ||x_i - x_j||, from
    ||x_i - x_j||^2 = ||x_i||^2 + ||x_j||^2 - 2 x_i . x_j. Identical images give 0.
    """
    x = to_numpy(images).astype(np.float64).reshape(len(images), -1)
    if len(x) < 2:
        raise ValueError(f"diversity needs at least 2 images, got {len(x)}")
    sq = (x * x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    upper = np.triu_indices(len(x), k=1)
    return float(np.sqrt(d2[upper]).mean())


class Watch:
    """The warnings of one run: each failure's signature is looked for, and told once.

    Args:
        fake_target: the mean D(G(z)) of a D that wins outright (``LossFamily.fake_target``;
            None for a critic: no "D is winning" warning then).
        real_target: the mean D(x) of such a D (1 for every family with a target).

    A resumed run's watch starts afresh: the loss signatures are read from the restored
    history, so a warning of the run before the stop can be given again, and the count of
    collapsed checks in a row starts from 0.
    """

    def __init__(self, fake_target: float | None, real_target: float = 1.0) -> None:
        self.fake_target, self.real_target = fake_target, real_target
        self.given: set[str] = set()
        self._collapsed = {"scores": 0, "grid": 0}  # checks in a row that showed a collapse

    def after_steps(self, history: Mapping[str, Sequence[float]]) -> list[str]:
        """The new warnings the loss history (one entry per step) calls for."""
        oscillation = None if self.fake_target is None else _oscillation(history)
        found = {"d winning": self._d_winning(history), "oscillation": oscillation}
        return self._once(found)

    def after_scores(self, step: int, scores: Any) -> list[str]:
        """The new warnings an evaluation's scores (``tinygan.metrics.QualityScores``) call for."""
        share = scores.top_class_share
        text = (
            f"mode collapse? {share:.0%} of the {scores.samples} samples of step {step} are "
            f"one digit (a balanced set has 10% of each, and real digits at most 11%): G "
            f"draws a few kinds of image, whatever the noise. {_COLLAPSE_FIXES}"
        )
        return self._collapse("scores", step, share > TOP_CLASS_SHARE, text)

    def after_grid(self, step: int, ratio: float) -> list[str]:
        """The new warnings a grid calls for, given ``ratio`` = :func:`diversity` of the grid's
        samples / that of real images.
        """
        text = (
            f"mode collapse? the grid of step {step} is {ratio:.0%} as diverse as real images "
            f"(mean distance between two samples): many noise vectors draw the same "
            f"picture. {_COLLAPSE_FIXES}"
        )
        return self._collapse("grid", step, ratio < DIVERSITY_FLOOR, text)

    def _collapse(self, check: str, step: int, shows: bool, text: str) -> list[str]:
        """Warn once a collapse has shown at PERSIST checks of one kind in a row after WARMUP."""
        if step > WARMUP:
            self._collapsed[check] = self._collapsed[check] + 1 if shows else 0
        persists = self._collapsed[check] >= PERSIST
        return self._once({"mode collapse": text if persists else None})

    def _once(self, found: Mapping[str, str | None]) -> list[str]:
        new = [
            f"warning: {text}" for name, text in found.items() if text and name not in self.given
        ]
        self.given |= {name for name, text in found.items() if text}
        return new

    def _d_winning(self, history: Mapping[str, Sequence[float]]) -> str | None:
        if self.fake_target is None or len(history["step"]) < 2 * WINDOW:
            return None
        d_fake = float(np.mean(history["d_fake"][-WINDOW:]))
        near = self.fake_target + 0.1 * (self.real_target - self.fake_target)
        norms = np.asarray(history["g_grad_norm"], dtype=np.float64)
        if not np.isfinite(norms[-WINDOW:]).all():  # resumed from a run without norms
            return None
        blocks = norms[: len(norms) // WINDOW * WINDOW].reshape(-1, WINDOW)
        known = blocks[np.isfinite(blocks).all(axis=1)]
        if not len(known):  # every block holds a step of a run without norms
            return None
        peak = float(np.median(known, axis=1).max())
        now = float(np.median(norms[-WINDOW:]))
        if not (d_fake <= near and now < FADED * peak):
            return None
        return (
            f"D is winning: for {WINDOW} steps D(G(z)) has averaged {d_fake:.3g} (a perfect "
            f"D's is {self.fake_target:g}) and G's gradient norm is {now:.2g}, down from "
            f"{peak:.2g}{f' ({peak / now:,.0f} times smaller)' if now else ''}: G gets almost "
            "no signal. Usual "
            "fixes: the non-saturating loss (loss gan) or a loss whose gradient does not "
            "fade (lsgan, hinge, wgan-gp); a lower lr_d or higher lr_g; spectral norm or R1 "
            "on D; DiffAugment"
        )


_COLLAPSE_FIXES = (
    "Usual fixes: a lower lr_g, or a higher lr_d, so D catches up and punishes the repeats; "
    "R1 or spectral norm on D; the EMA of G; a loss with steadier gradients (lsgan, wgan-gp)"
)


def _oscillation(history: Mapping[str, Sequence[float]]) -> str | None:
    losses = np.asarray(history["g_loss"][-SWING_WINDOW:], dtype=np.float64)
    if len(history["g_loss"]) < SWING_WINDOW:
        return None
    means = losses.reshape(-1, BLOCK).mean(axis=1)
    centre = means.mean()
    swing = means.max() - means.min()
    crossings = int(np.count_nonzero(np.diff(np.sign(means - centre)) != 0))
    scale = max(abs(centre), float(losses.std()))  # a loss near 0 (hinge): its noise
    if not (swing > SWING * scale and crossings >= SWING_CROSSINGS):
        return None
    return (
        f"the losses oscillate: over the last {SWING_WINDOW} steps G's loss, averaged over "
        f"{BLOCK} steps, swung between {means.min():.3g} and {means.max():.3g} (mean "
        f"{centre:.3g}), up and down {crossings} times: the players chase each other instead "
        "of settling. Usual fixes: lower learning rates (both), Adam's beta1 0.5 or 0, "
        "spectral norm or R1 on D, the EMA of G (which averages the swings out of the samples)"
    )
