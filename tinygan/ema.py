"""An exponential moving average (EMA) of a model's weights, for sampling and evaluation.

A GAN's generator never settles: each update chases the discriminator of the moment, so
the weights of step t circle around a good solution rather than sitting on it, and the
samples of one step show that step's quirks. Averaging the weights over the last few
hundred steps (Yazıcı et al., 2019, "The unusual effectiveness of averaging in GAN
training") cancels much of that circling. The average is kept beside training and used
only to sample and evaluate; training itself never sees it::

    ema = EMA(G, decay=0.995)
    for step in ...:
        ...                             # the D update and the G update
        ema.update()                    # theta_ema <- decay theta_ema + (1 - decay) theta
    ema.recompute_batchnorm(noise)      # only if G has BatchNorm (see below)
    images = generate(ema.model, z)     # sample with the averaged weights

**The update.** After each generator step, for every parameter theta of the live model
and its average theta_ema,

    theta_ema <- decay * theta_ema + (1 - decay) * theta,

done in place as ``theta_ema -= (1 - decay) * (theta_ema - theta)`` (the same value, and
a parameter that stopped moving keeps its exact value), in the parameter's dtype and on
its device (NumPy or CuPy), outside any graph. After t updates the average weighs the
weights of s steps ago by (1 - decay) decay^s: its memory is about 1 / (1 - decay) steps
(200 for 0.995), and the starting (random) weights still weigh decay^t, so choose the decay
such that decay^steps is small (0.995^1500 = 5e-4, but 0.999^1500 = 0.22).

**BatchNorm buffers.** A BatchNorm layer in eval mode normalises with its running mean
and variance, which estimate the statistics of its input *under the weights that produced
them*. Averaged weights produce different activations, so the running statistics of the
live model (``update`` copies them into the average at every step, PyTorch's choice too)
fit the average only approximately, and averaging them like the weights fits no better:
they were all measured under live weights. :meth:`EMA.recompute_batchnorm` measures them
under the averaged weights instead: it runs the average in training mode on K batches of
noise, with momentum 1/k at the k-th batch, so that each running statistic ends as the
plain mean of the K batch statistics (the running variance the mean of the unbiased batch
variances), as PyTorch's ``momentum=None`` does. The recomputed statistics stay until the
next ``update``, which copies the live ones again: recomputing never feeds back into the
average, and a run that evaluates follows the same path as one that does not.

**Measured** with ``benchmarks/ema_check.py``, on the recipes of 0.1.0 (one seed; Fréchet
distance on 2,000 samples, 5 for real digits): the MLP generator of demos/mnist_gan.py
(no BatchNorm; Adam 1e-3 for both networks, then as now) gains once its fast early
progress is over: at step 5,000 FD 220 live, 134 averaged (decay 0.995), and speckle 4.7
against 2.4; at step 1,500 FD 902 live, 717 at 0.99, but 2,080 at 0.999, whose random
start still weighs 0.22. DCGAN-28 with 0.1.0's demos/mnist_dcgan.py recipe (BatchNorm in
G; the GAN loss, Adam 2e-4 for both, betas (0.5, 0.999)) did not gain within 1,500 steps
(FD 289 live, 301 at 0.99), but whenever the average was far from the live weights the
buffers mattered, and recomputing them was never worse: at 0.999, step 1,500, FD 566
copied, 1,648 averaged, 426 recomputed; at 0.995, step 400, 1,169 copied, 910 recomputed.
So: recompute before sampling or evaluating the average of a BatchNorm generator.

**With today's recipes** (``benchmarks/quality.py --sweep``, BENCHMARKS.md; seeds 0, 1, 2,
FD on 2,000 samples, decay 0.995, statistics recomputed), the average helps DCGAN-28 too,
a little: the main demo's LSGAN (G 1e-3, D 2e-4, betas (0.5, 0.9)) scores 177 +- 10
averaged against 184 +- 19 live at 1,500 steps, its default, with speckle 0.12 against
0.16 (199 +- 9 against 207 +- 13 at 1,000 steps; 175 for both at 2,000); the GAN of
demos/mnist_dcgan.py (G 1e-3, D 2e-4) 167 +- 19 against 174 +- 32 at 2,000 steps. Those
gains lie within the spread between seeds, but the average was never worse on the mean,
and at each demo's own step count it spread less. The MLP GAN gains far more: 77 +- 11
against 150 +- 22 at 5,000 steps.
WGAN-GP (G 5e-4, critic 1e-4) lost with it at 1,000 steps: 284 +- 12 against 267 +- 19
(seeds 0 and 1), its generator still changing fast.

**Checkpoints.** :meth:`EMA.state_dict` is the averaged model's state dict (same keys as
the model's), so a checkpoint saves the average as one more model, and a resumed run
continues bit for bit::

    save_checkpoint(path, generator=G, generator_ema=ema.model, ...)
    load_checkpoint(path, generator=G, generator_ema=ema.model, ...)
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Iterable, Iterator
from typing import Any

from tinygan.autograd import no_grad
from tinygan.backend import device_of
from tinygan.extras.module import IncompatibleKeys
from tinygan.nn import BatchNorm1d, BatchNorm2d, Module
from tinygan.tensor import Tensor


class EMA:
    """The exponential moving average of ``model``'s weights, kept in a copy of the model.

    Args:
        model: the live model (a generator); build the EMA after moving it to its device.
        decay: weight of the old average in each update, in [0, 1): 0.999 remembers about
            1,000 steps, 0.99 about 100; 0 makes the average a copy of the live model.

    Attributes:
        model: the averaged copy, in eval mode, its parameters not requiring gradients:
            sample and evaluate with it, never train it.
        source: the live model the average follows.
        decay: as given.

    Raises:
        ValueError: ``decay`` is not a number in [0, 1).
    """

    def __init__(self, model: Module, decay: float = 0.999) -> None:
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
            raise ValueError(f"EMA decay must be a number in [0, 1), got {decay!r}")
        if not (math.isfinite(decay) and 0.0 <= decay < 1.0):
            raise ValueError(
                f"EMA decay must be in [0, 1) (e.g. 0.999: an average over about 1,000 "
                f"steps), got {decay}"
            )
        self.decay = float(decay)
        self.source = model
        self.model = copy.deepcopy(model)
        for p in self.model.parameters():
            p.requires_grad = False
            p.grad = None
        self.model.eval()

    def update(self) -> None:
        """One step of the average: theta_ema <- decay theta_ema + (1 - decay) theta.

        Call it after each generator update. Buffers (BatchNorm's running statistics and
        batch counts) are copied from the live model.

        Raises:
            ValueError: the live model was moved to another device after the EMA was made
                (move the average too: ``ema.model.to(device)``).
        """
        rate = 1.0 - self.decay
        for name, average, live in _paired_arrays(self.model, self.source, buffers=False):
            _check_same_device(name, average, live)
            average -= rate * (average - live)
        for p in self.model.parameters():
            p._mark_changed()  # written into: graphs recorded before refuse to backward
        for name, average, live in _paired_arrays(self.model, self.source, buffers=True):
            _check_same_device(name, average, live)
            average[...] = live

    def recompute_batchnorm(self, noise_batches: Iterable[Any]) -> int:
        """Measure the averaged model's BatchNorm statistics on ``noise_batches``.

        See :func:`recompute_batchnorm`; it is applied to :attr:`model`, which stays in
        eval mode.
        """
        return recompute_batchnorm(self.model, noise_batches)

    def state_dict(self) -> dict[str, Any]:
        """A copy of the averaged model's parameters and buffers (the model's keys)."""
        return self.model.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> IncompatibleKeys:
        """Restore the average from :meth:`state_dict` (strictly: every key, every shape)."""
        return self.model.load_state_dict(state_dict)


def recompute_batchnorm(model: Module, inputs: Iterable[Any]) -> int:
    """Set every BatchNorm layer's running statistics to their mean over ``inputs``.

    ``model`` runs in training mode, without a graph, on each input batch x_1 .. x_K; at
    batch k every BatchNorm layer moves its running statistics with momentum 1/k,

        r_k = (1 - 1/k) r_(k-1) + (1/k) b_k,   so   r_K = (b_1 + ... + b_K) / K,

    where b_k is the batch mean (or unbiased batch variance) of the layer's input at batch
    k. The old statistics are forgotten (momentum 1 at k = 1), the layers' momenta and the
    model's mode are restored afterwards, and ``num_batches_tracked`` grows by K.
    A model without BatchNorm is left untouched and nothing is run.

    Args:
        model: a model with BatchNorm layers, e.g. an averaged generator.
        inputs: the batches (arrays or Tensors on the model's device), e.g. noise
            (B, z_dim); a few thousand samples in all give stable statistics.

    Returns:
        The number of batches used (0 for a model without BatchNorm).

    Raises:
        ValueError: ``inputs`` is empty and the model has BatchNorm layers.
    """
    layers = [m for m in model.modules() if isinstance(m, (BatchNorm1d, BatchNorm2d))]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    was_training = model.training
    count = 0
    model.train()
    try:
        with no_grad():
            for count, x in enumerate(inputs, start=1):
                for layer in layers:
                    layer.momentum = 1.0 / count
                model(x if isinstance(x, Tensor) else Tensor(x))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    if count == 0:
        raise ValueError(
            "recompute_batchnorm: no input batches; pass several noise batches, e.g. "
            "[rng.standard_normal((250, z_dim), dtype=np.float32) for _ in range(8)]"
        )
    return count


def _paired_arrays(average: Module, live: Module, buffers: bool) -> Iterator[tuple[str, Any, Any]]:
    """``(state_dict key, average's array, live array)`` for parameters or for buffers.

    The average is a deep copy of the live model, so both list the same parameters and
    modules in the same order (a shared parameter once).
    """
    if not buffers:
        for (name, a), (_, b) in zip(average.named_parameters(), live.named_parameters()):
            yield name, a.data, b.data
        return
    for (prefix, a), (_, b) in zip(average.named_modules(), live.named_modules()):
        dot = prefix + "." if prefix else ""
        for name, array in a._buffers.items():
            yield dot + name, array, b._buffers[name]


def _check_same_device(name: str, average: Any, live: Any) -> None:
    if device_of(average) != device_of(live):
        raise ValueError(
            f"EMA: {name!r} is on {device_of(live)} in the live model but on "
            f"{device_of(average)} in the average; move the average too: "
            f"ema.model.to({device_of(live)!r})"
        )
