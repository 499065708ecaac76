"""LSGAN on MNIST: the whole training algorithm, top to bottom, in one file.

    python demos/mnist_lsgan.py                # digits in about 4.5 minutes on a 2-core CPU
    python demos/mnist_lsgan.py --help         # every setting
    python demos/mnist_lsgan.py --resume       # continue an interrupted run exactly
    python demos/mnist_lsgan.py --overwrite    # delete the earlier run and start again
    python demos/mnist_lsgan.py --sample       # grid + interpolation from the checkpoint
    python demos/mnist_lsgan.py --reference    # only the plain compositions the tour teaches

A least-squares GAN (Mao et al., 2017): the discriminator D regresses real images to 1 and
fakes to 0, the generator G pulls the scores of its fakes to 1:

    L_D = 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]        L_G = 1/2 E[(D(G(z)) - 1)^2]

The loop below is Goodfellow et al.'s Algorithm 1 with one discriminator step (k = 1);
every change of state the algorithm makes is a line of it:

    for step in 1..steps:
        x ~ data (a batch of real digits),  z ~ N(0, I) (as many noise vectors)
        D <- D - lr grad_D L_D(D(x), D(G(z)))          Adam on D's parameters
        G <- G - lr grad_G L_G(D(G(z)))                Adam on G's parameters
        G_ema <- decay G_ema + (1 - decay) G           with --ema: the average that draws

The recipe: D's layers are spectrally normalised (each weight divided by its largest
singular value: tinygan.nn.SpectralNorm) in place of BatchNorm, G learns five times faster
than D (Adam 1e-3 against 2e-4), Adam's beta2 is 0.9, and batches hold 32 digits. In
3,000 steps, over six runs (seeds 0-2 on one BLAS thread and on two), that reaches a
Fréchet distance of 123 to 159 (mean 137) with every digit drawn (class KL at most 0.037),
where 0.5.0's recipe (BatchNorm in D, batches of 64, 1,500 steps, an EMA of G) scored
177 +- 10 (benchmarks/quality.py --sweep, BENCHMARKS.md). --ema 0.995 draws with a moving
average of G's weights (tinygan/ema.py), which at 3,000 steps scores no better: off.

Change the two loss lines to train another GAN (losses.gan_d_loss and losses.gan_g_loss:
the original, non-saturating one). tinygan/train.py is this loop with k discriminator
steps and WGAN-GP's penalty, for the other demos (a test holds the two to the same
checkpoints). Optimisations of the plain compositions (fused convolutions, spectral norm,
BatchNorm, Adam without temporaries) live in tinygan/fast/; --reference turns them off.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan import data, losses, models, nn, use_fast_paths
from tinygan.backend import resolve_device
from tinygan.ema import EMA
from tinygan.fast.memory import keep_freed_memory
from tinygan.optim import Adam
from tinygan.tensor import Tensor
from tinygan.utils.cli import parse_config, run_main, usage_errors
from tinygan.utils.run import Run, check_folder, sample_from_checkpoint
from tinygan.utils.streams import RandomStreams


@dataclass
class Config:
    """Train an LSGAN on MNIST digits (or Fashion-MNIST) and write samples, losses, checkpoints.

    Attributes:
        steps: discriminator and generator updates in the whole run.
        batch_size: real and fake images per update.
        lr_g: Adam's learning rate for G (five times D's: see the module docstring).
        lr_d: Adam's learning rate for D.
        beta1: Adam's decay of the gradients' running mean.
        beta2: Adam's decay of the squared gradients' running mean.
        ema: decay of the moving average of G's weights that draws the grids and scores
            (0.995: about the last 200 steps); 0 (the default): G itself draws them.
        spectral_norm: divide each layer of D by its largest singular value (SN-GAN), in
            place of D's BatchNorm.
        z_dim: size of the noise vector z.
        model: "dcgan" (DCGAN-28, convolutional) or "mlp" (the classic fully connected GAN).
        dataset: "mnist" or "fashion-mnist".
        data_root: the folder with the IDX files (then the only one looked at).
        download: fetch missing files from the dataset's mirrors.
        seed: seeds the weights, the noise and the order of the batches.
        device: "auto" (the GPU when there is one), "cpu" or "cuda".
        out: the run's output folder; a new run refuses one that holds a run already.
        sample_every: steps between sample grids (and at the last step); 0: none.
        checkpoint_every: steps between checkpoints (and at the last step); 0: none.
        log_every: steps between log lines when the output is not a terminal.
        eval_every: steps between scores of 2,000 samples (tinygan.metrics: Fréchet
            distance, inception-style score, class coverage; MNIST only); 0: never.
        resume: continue from out/checkpoint.npz (from step 0 when there is none yet).
        overwrite: delete the run in out (only the files a run writes) and start again.
        sample: only load out/checkpoint.npz and write a sample grid and an interpolation.
        reference: run only the plain compositions the tour teaches (no tinygan/fast/).
    """

    steps: int = 3000
    batch_size: int = 32
    lr_g: float = 1e-3
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.9
    ema: float = 0.0
    spectral_norm: bool = True
    z_dim: int = 100
    model: str = "dcgan"
    dataset: str = "mnist"
    data_root: str = ""
    download: bool = True
    seed: int = 0
    device: str = "auto"
    out: str = "runs/mnist_lsgan"
    sample_every: int = 500
    checkpoint_every: int = 1000
    log_every: int = 50
    eval_every: int = 0
    resume: bool = False
    overwrite: bool = False
    sample: bool = False
    reference: bool = False


def main() -> None:
    config = parse_config(Config)
    use_fast_paths(not config.reference)  # --reference: the tour's compositions only
    with usage_errors():  # a setting that a constructor below refuses: one line, exit 2
        device = resolve_device(config.device)
        # Every random number of the run is a pure function of (seed, stream, step).
        streams = RandomStreams(config.seed)
        # The networks, initialised from the seed: G maps z (N, z_dim) to digits
        # (N, 1, 28, 28) in [-1, 1]; D maps digits to one score each (N, 1).
        G, D = models.mnist_models(config.model, config.z_dim, seed=config.seed,
                                   d_batchnorm=not config.spectral_norm)  # fmt: skip
        if config.spectral_norm:  # each layer of D: W / sigma(W), tinygan.nn.SpectralNorm
            nn.utils.spectral_norm_layers(D, streams.spectral_norm())
        G, D = G.to(device), D.to(device)
    if config.sample:  # its own mistakes (no checkpoint, another model's) stop as RunErrors
        checkpoint = Path(config.out) / "checkpoint.npz"
        sample_from_checkpoint(G, checkpoint, config.out, config.z_dim, config.seed, log=print)
        return
    with usage_errors():
        betas = (config.beta1, config.beta2)
        opt_g = Adam(G.parameters(), lr=config.lr_g, betas=betas)
        opt_d = Adam(D.parameters(), lr=config.lr_d, betas=betas)
        # The moving average of G's weights, in a copy of G that only draws samples. Its
        # BatchNorm layers need statistics measured under the averaged weights: on 8
        # batches of fixed noise, before it draws (tinygan/ema.py says why).
        ema = EMA(G, config.ema) if config.ema else None
        sampler = G if ema is None else ema.model
        batchnorm_noise = [Tensor(b).to(device) for b in streams.batchnorm_noise(config.z_dim)]
        check_folder(config)  # --out can hold this run: before the digits load, not after
        # The data: uint8 digits (N, 28, 28); batch s is a pure function of (seed, s).
        root = config.data_root or None
        images = data.load_training_images(config.dataset, root, config.download, log=print)
        loader = data.BatchLoader(images, config.batch_size, seed=config.seed)
        # The run keeps the records: progress line, grids, losses.csv/png, checkpoints,
        # --resume (which loads the checkpoint into G, D, the optimizers and the EMA), and
        # warns of mode collapse when a grid is far less diverse than a batch of real digits.
        # Ctrl-C lets the current step finish and saves it.
        run = Run(config, G, D, opt_g, opt_d, ema=ema, streams=streams, stream=sys.stdout,
                  real_examples=loader.batch(0))  # fmt: skip
    if not config.reference:
        keep_freed_memory()  # a process setting: malloc keeps freed memory (tinygan/fast/)

    n = config.batch_size
    for step in run.steps():
        real = Tensor(loader.batch(step)).to(device)  # (n, 1, 28, 28) real digits
        z = Tensor(streams.noise(step, n, config.z_dim)).to(device)  # (n, z_dim)
        fake = G(z)  # (n, 1, 28, 28)

        # Discriminator: D(x) -> 1, D(G(z)) -> 0. fake.detach(): this update leaves G alone.
        real_scores, fake_scores = D(real), D(fake.detach())  # (n, 1) each
        d_loss = losses.lsgan_d_loss(real_scores, fake_scores)
        opt_d.minimize(d_loss)  # .grad = dL_D/dθ_D for D's parameters, then one Adam step
        # Generator: D(G(z)) -> 1, through D into G. Only G's parameters move (D runs in
        # training mode, as in PyTorch: each D(...) steps spectral norm's u, v once).
        g_loss = losses.lsgan_g_loss(D(fake))
        opt_g.minimize(g_loss)
        if ema is not None:
            ema.update()  # θ_ema <- decay θ_ema + (1 - decay) θ_G

        run.log(step, d_loss=d_loss, g_loss=g_loss,  # read back every log_every steps
                d_real=real_scores.data.mean(), d_fake=fake_scores.data.mean())  # fmt: skip
        if run.due(step, config.sample_every):
            if ema is not None:  # BatchNorm's statistics, measured under the averaged weights
                ema.recompute_batchnorm(batchnorm_noise)
            run.save_samples(step, sampler)  # samples/step_XXXXXX.png, from a fixed z
        if run.due(step, config.checkpoint_every):
            run.save_checkpoint()  # checkpoint.npz, losses.csv, losses.png
        if run.due(step, config.eval_every):
            if ema is not None:
                ema.recompute_batchnorm(batchnorm_noise)
            run.evaluate(step, sampler)  # metrics.csv: Fréchet distance, IS, class coverage


if __name__ == "__main__":
    run_main(main)  # a mistake (a setting, the data, a checkpoint): one line, not a traceback
