"""LSGAN on MNIST: the whole training algorithm, top to bottom, in one file.

    python demos/mnist_lsgan.py                # digits in a few minutes on a laptop CPU
    python demos/mnist_lsgan.py --help         # every setting
    python demos/mnist_lsgan.py --resume       # continue an interrupted run exactly
    python demos/mnist_lsgan.py --overwrite    # delete the earlier run and start again
    python demos/mnist_lsgan.py --sample       # grid + interpolation from the checkpoint

A least-squares GAN (Mao et al., 2017): the discriminator D regresses real images to 1 and
fakes to 0, the generator G pulls the scores of its fakes to 1:

    L_D = 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]        L_G = 1/2 E[(D(G(z)) - 1)^2]

The loop below is Goodfellow et al.'s Algorithm 1 with one discriminator step (k = 1):

    for step in 1..steps:
        x ~ data (a batch of real digits),  z ~ N(0, I) (as many noise vectors)
        D <- D - lr grad_D L_D(D(x), D(G(z)))        gan.d_step, Adam
        G <- G - lr grad_G L_G(D(G(z)))              gan.g_step, Adam

The two updates live in tinygan/gan.py, written once for every loop in tinygan; each is
three lines:

    d_step:  real_scores, fake_scores = D(x), D(G(z))
             loss = L_D(real_scores, fake_scores)
             opt_d.minimize(loss)      # .grad = dL_D/dθ_D for D's parameters, then Adam
    g_step:  loss = L_G(D(G(z)))
             opt_g.minimize(loss)      # only G's parameters move

The recipe: G learns five times faster than D (Adam 1e-3 against 2e-4), Adam's beta2 is
0.9, and the grids and scores are drawn by an exponential moving average of G's weights
(--ema 0.995, kept by the run; tinygan/ema.py). Over three seeds that reaches in 1,500
steps a Fréchet distance of 177 +- 11, where 0.1.0's recipe (2e-4 for both, beta2 0.999,
no EMA) scored 356 after 2,000 (benchmarks/quality.py --sweep, BENCHMARKS.md).

To train another GAN, change the two loss functions in the loop: losses.gan_d_loss and
losses.gan_g_loss give the original (non-saturating) GAN (pass logits=True to summary()
to log D's outputs as probabilities). tinygan/train.py is the same loop with k
discriminator steps and WGAN-GP's gradient penalty, for the other demos.
Samples, loss curves and checkpoints go to runs/mnist_lsgan/.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan import data, losses, models
from tinygan.backend import resolve_device
from tinygan.gan import d_step, g_step
from tinygan.optim import Adam
from tinygan.tensor import Tensor
from tinygan.train import MnistSettings, require_update_settings
from tinygan.utils.cli import parse_config
from tinygan.utils.run import Run, RunConfig, sample_from_checkpoint
from tinygan.utils.streams import RandomStreams


@dataclass
class Config(MnistSettings, RunConfig):
    """Train an LSGAN on MNIST digits (or Fashion-MNIST) and write samples, losses, checkpoints.

    Attributes:
        batch_size: real and fake images per update.
        lr_g, lr_d: Adam's learning rates for G and D (G faster: see the module docstring).
        beta1, beta2: Adam's betas.
    """

    batch_size: int = 64
    lr_g: float = 1e-3
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.9
    ema: float = 0.995
    steps: int = 1500
    out: str = "runs/mnist_lsgan"

    def __post_init__(self) -> None:
        super().__post_init__()  # the checks of MnistSettings and RunConfig
        require_update_settings(self)  # batch_size >= 1, lr_g, lr_d > 0, betas in [0, 1)


def main() -> None:
    config = parse_config(Config)
    device = resolve_device(config.device)

    # The networks, initialised from the seed: G maps z (N, z_dim) to digits (N, 1, 28, 28)
    # in [-1, 1]; D maps digits to one score each (N, 1).
    G, D = models.mnist_models(config.model, config.z_dim, seed=config.seed)
    G, D = G.to(device), D.to(device)
    if config.sample:
        checkpoint = Path(config.out) / "checkpoint.npz"
        sample_from_checkpoint(G, checkpoint, config.out, config.z_dim, config.seed, log=print)
        return

    # The data: uint8 digits (N, 28, 28); batch s is a pure function of (seed, s).
    root = config.data_root or None
    images = data.load_training_images(config.dataset, root, config.download, log=print)
    loader = data.BatchLoader(images, config.batch_size, seed=config.seed)
    streams = RandomStreams(config.seed)  # the noise z of step s: a pure function of (seed, s)

    betas = (config.beta1, config.beta2)
    opt_g = Adam(G.parameters(), lr=config.lr_g, betas=betas)
    opt_d = Adam(D.parameters(), lr=config.lr_d, betas=betas)

    # The run keeps the records: progress line, grids, losses.csv/png, checkpoints, and
    # --resume. Ctrl-C lets the current step finish and saves it.
    run = Run(config, G, D, opt_g, opt_d, stream=sys.stdout)
    n = config.batch_size
    for step in run.steps():
        real = Tensor(loader.batch(step)).to(device)  # (n, 1, 28, 28) real digits
        z = Tensor(streams.noise(step, n, config.z_dim)).to(device)  # (n, z_dim)
        fake = G(z)  # (n, 1, 28, 28)

        # Discriminator: D(x) -> 1, D(G(z)) -> 0. fake.detach(): this update leaves G alone.
        d_update = d_step(D, opt_d, losses.lsgan_d_loss, real, fake.detach())
        # Generator: D(G(z)) -> 1, through D (whose weights stay as they are) into G.
        g_loss = g_step(D, opt_g, losses.lsgan_g_loss, fake)

        run.log(step, g_loss=g_loss.item(), **d_update.summary())  # first: it ends the step
        if run.due(step, config.sample_every):
            run.save_samples(step)  # samples/step_XXXXXX.png, from a fixed z
        if run.due(step, config.checkpoint_every):
            run.save_checkpoint()  # checkpoint.npz, losses.csv, losses.png
        if run.due(step, config.eval_every):
            run.evaluate(step)  # metrics.csv: Fréchet distance, IS, class coverage


if __name__ == "__main__":
    main()
