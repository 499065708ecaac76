"""A conditional GAN on MNIST: "draw me a 7".

    python demos/mnist_cgan.py                    # a grid with one row per digit
    python demos/mnist_cgan.py --sample --digit 7 # 64 sevens from the checkpoint
    python demos/mnist_cgan.py --help

The loop of demos/mnist_lsgan.py, with a label y beside every image (Mirza & Osindero,
2014). G(z, y) draws a digit of class y; D(x, y) scores "a real y". Each step takes the
labels of the real batch and asks G for fakes of the same digits, so D must check both
that an image looks real and that it is the digit it claims to be:

    L_D = 1/2 E[(D(x, y) - 1)^2] + 1/2 E[D(G(z, y), y)^2]    L_G = 1/2 E[(D(G(z, y), y) - 1)^2]

G feeds a learned vector of the label into DCGAN-28's generator; D adds the label by
projection, <embed(y), phi(x)>, to DCGAN-28's score (tinygan/models.py explains why).
At the end, the shipped MNIST classifier (tinygan.metrics) checks 1,000 samples of
each digit: how often a "7" is classified as a 7, and scores them all (Fréchet distance,
inception-style score). G learns faster than D here (Adam 1e-3 against 2e-4): for the
unconditional LSGAN at 2,000 steps that took the Fréchet distance from 356 (2e-4 for both,
seed 0) to 204 +- 20 over three seeds in the recipe sweep of BENCHMARKS.md.
Output in runs/mnist_cgan/.
"""

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan import data, losses, metrics, models, nn, use_fast_paths
from tinygan.backend import resolve_device
from tinygan.checkpoint import load_checkpoint
from tinygan.gan import d_step, g_step
from tinygan.optim import Adam
from tinygan.tensor import Tensor
from tinygan.train import require_update_settings
from tinygan.utils.cli import parse_config, require_range, run_main, usage_errors
from tinygan.utils.images import save_grid
from tinygan.utils.run import Run, RunConfig, check_folder
from tinygan.utils.streams import RandomStreams

GRID_LABELS = np.repeat(np.arange(10), 10)  # the grid: one row of ten per digit


@dataclass
class Config(RunConfig):
    """Train a class-conditional LSGAN on MNIST and write samples, losses, checkpoints.

    Attributes:
        batch_size: real and fake images per update.
        lr_g: Adam's learning rate for G (by default five times D's: see the module docstring).
        lr_d: Adam's learning rate for D.
        beta1: Adam's beta1, the decay of its average of the gradient.
        beta2: Adam's beta2, the decay of its average of the squared gradient.
        sample: only load out/checkpoint.npz and write samples.png, a row of each digit
            drawn by G (or, with --digit, digit_D.png: 64 of that digit).
        digit: with --sample, the digit to draw (-1: a grid of every digit).
        check_samples: generated images per digit scored by the classifier at the end.
        eval_every: must stay 0: this demo scores its samples once, at the end
            (--check-samples of each digit).
        ema: must stay 0: this demo draws its grids, its check and --sample with G itself.
    """

    batch_size: int = 64
    lr_g: float = 1e-3
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    digit: int = -1
    check_samples: int = 1000
    out: str = "runs/mnist_cgan"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_update_settings(self)
        require_range(self, "digit", low=-1, high=9, high_open=False)
        require_range(self, "check_samples", low=1, high=100_000, high_open=False)
        if self.eval_every:
            raise ValueError("eval_every: the conditional demo checks its digits at the end")
        if self.ema:
            raise ValueError("ema: the conditional demo draws its samples with G itself")


def draw(G: nn.Module, z: np.ndarray, labels: np.ndarray, device: str) -> np.ndarray:
    """G(z, labels) in eval mode, 250 at a time: (N, 1, 28, 28) in [-1, 1]."""
    with nn.evaluating(G):
        parts = [G(Tensor(z[i : i + 250]).to(device), labels[i : i + 250]).numpy()
                 for i in range(0, len(z), 250)]  # fmt: skip
    return np.concatenate(parts)


def main() -> None:
    config = parse_config(Config)
    device = resolve_device(config.device)
    streams = RandomStreams(config.seed)
    G, D = models.conditional_mnist_models(config.z_dim, seed=config.seed)
    G, D = G.to(device), D.to(device)
    if config.sample:
        load_checkpoint(Path(config.out) / "checkpoint.npz", generator=G)
        labels = GRID_LABELS if config.digit < 0 else np.full(64, config.digit)
        z = streams.grid_noise(len(labels), config.z_dim)
        name = "samples.png" if config.digit < 0 else f"digit_{config.digit}.png"
        path = Path(config.out) / name
        save_grid(draw(G, z, labels, device), path, nrow=10 if config.digit < 0 else 8)
        print(f"wrote {path.resolve()}")
        return

    check_folder(config)  # before the digits load: an --out that is a file, a live run there
    images, labels = data.load_mnist_or_bundled(download=True, log=print)  # (N, 28, 28), (N,)
    with usage_errors():  # a batch larger than the data: one line, before the first step
        loader = data.BatchLoader(images, config.batch_size, seed=config.seed, labels=labels)
    betas = (config.beta1, config.beta2)
    opt_g = Adam(G.parameters(), lr=config.lr_g, betas=betas)
    opt_d = Adam(D.parameters(), lr=config.lr_d, betas=betas)

    run = Run(config, G, D, opt_g, opt_d, streams=streams, stream=sys.stdout)
    use_fast_paths(not config.reference)  # --reference: the tour's compositions only
    n, grid_z = config.batch_size, streams.grid_noise(len(GRID_LABELS), config.z_dim)
    for step in run.steps():
        real = Tensor(loader.batch(step)).to(device)  # (n, 1, 28, 28) real digits
        y = loader.batch_labels(step)  # (n,) their labels; the fakes are asked for the same
        z = Tensor(streams.noise(step, n, config.z_dim)).to(device)  # (n, z_dim)
        fake = G(z, y)  # (n, 1, 28, 28)

        D_y = partial(D, labels=y)  # D scores images as images of the digits y
        d_update = d_step(D_y, opt_d, losses.lsgan_d_loss, real, fake.detach())
        g_loss = g_step(D_y, opt_g, losses.lsgan_g_loss, fake)

        run.log(step, g_loss=g_loss, **d_update.summary())
        if run.due(step, config.sample_every):
            run.save_samples(step, images=draw(G, grid_z, GRID_LABELS, device), nrow=10)
        if run.due(step, config.checkpoint_every):
            run.save_checkpoint()

    # How often is a sample of digit d classified as d?
    asked = np.tile(np.arange(10), config.check_samples)  # mixed: the IS splits see every digit
    z = streams.evaluation_noise(len(asked), config.z_dim)
    samples = draw(G, z, asked, device)
    per_digit = metrics.conditional_accuracy(samples, asked)
    print("classified as asked: " + " ".join(f"{d}: {a:.1%}" for d, a in enumerate(per_digit))
          + f" | all: {per_digit.mean():.2%}")  # fmt: skip
    print(f"quality of all {len(samples):,} samples: {metrics.score(samples).summary()}")


if __name__ == "__main__":
    run_main(main)
