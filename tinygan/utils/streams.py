"""The named random streams of a training run.

Everything random in a run is drawn from a stream that is a pure function of the run's
seed, the stream's name and a position (the step, the discriminator update within it):
``numpy.random.default_rng([seed, TAG, stream id, position...])``. Nothing random is
carried from one step to the next, so a checkpoint needs no generator state, and a resumed
run draws exactly what an uninterrupted one would.

Two different keys give independent generators, but NumPy reads a key as if padded with
zeros (``[s]`` and ``[s, 0]`` seed the same generator). The constant ``TAG`` in second
place keeps these streams apart from the other seeded draws of a run: the weights
(``default_rng(seed)``) and the batch order (``default_rng([seed, epoch])``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TAG = 0x7467616E  # "tgan": no epoch number or seed component of another draw is this large
# The stream ids: part of every key, so changing one changes that stream's numbers.
NOISE = 0  # z of the discriminator and generator updates
GRID_NOISE = 1  # the fixed z of the sample grids, the same at every step
PENALTY = 2  # WGAN-GP's interpolation weights epsilon
EVALUATION_NOISE = 3  # the fixed z of the quality scores
LABELLED = 4  # which labelled examples a semi-supervised step sees
SAMPLES = 5  # the z of a sample grid drawn from a checkpoint (--sample)
INTERPOLATION = 6  # the two ends of a latent interpolation
BATCHNORM_NOISE = 7  # the z on which an EMA generator's BatchNorm statistics are measured
AUGMENT = 8  # DiffAugment's shifts, cutouts and colour changes
SPECTRAL_NORM = 9  # the starting u and v of spectral normalisation's power iteration


@dataclass(frozen=True)
class RandomStreams:
    """The random streams of a run with seed ``seed``."""

    seed: int

    def rng(self, stream: int, *position: int) -> np.random.Generator:
        """The generator of ``stream`` (one of this module's ids) at ``position``."""
        return np.random.default_rng([self.seed, TAG, stream, *position])

    def noise(self, step: int, n: int, z_dim: int, update: int = 0) -> np.ndarray:
        """z ~ N(0, I), float32 (n, z_dim), for discriminator update ``update`` of ``step``."""
        return self.rng(NOISE, step, update).standard_normal((n, z_dim), dtype=np.float32)

    def grid_noise(self, n: int, z_dim: int) -> np.ndarray:
        """The z of the sample grids, float32 (n, z_dim): the same faces at every step."""
        return self.rng(GRID_NOISE).standard_normal((n, z_dim), dtype=np.float32)

    def evaluation_noise(self, n: int, z_dim: int) -> np.ndarray:
        """The z of the quality scores, float32 (n, z_dim): the same at every evaluation."""
        return self.rng(EVALUATION_NOISE).standard_normal((n, z_dim), dtype=np.float32)

    def penalty(self, step: int, update: int = 0) -> np.random.Generator:
        """Draws WGAN-GP's epsilon for discriminator update ``update`` of ``step``."""
        return self.rng(PENALTY, step, update)

    def augment(self, step: int, update: int = 0) -> np.random.Generator:
        """Draws DiffAugment's transforms for update ``update`` of ``step``: D's updates are
        0..k-1 (real images first, then fakes), G's update is k.
        """
        return self.rng(AUGMENT, step, update)

    def spectral_norm(self) -> np.random.Generator:
        """Draws the starting u and v of D's spectrally normalised layers, once per run."""
        return self.rng(SPECTRAL_NORM)

    def batchnorm_noise(self, z_dim: int, batches: int = 8, n: int = 64) -> np.ndarray:
        """The z on which an EMA generator's BatchNorm statistics are measured, float32
        (batches, n, z_dim): the same every time (see :mod:`tinygan.ema`).
        """
        z = self.rng(BATCHNORM_NOISE).standard_normal((batches, n, z_dim))
        return z.astype(np.float32)
