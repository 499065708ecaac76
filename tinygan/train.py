"""The training loop the demos share: any loss family, k discriminator steps per G step.

``demos/mnist_lsgan.py`` writes the simplest case out (LSGAN, k = 1); this is the same
loop with the choices made by settings. Goodfellow et al.'s Algorithm 1, with the WGAN-GP
paper's penalty and n_critic when ``loss="wgan-gp"``::

    for step in 1..steps:
        for j in 1..k:  x ~ data, z_j ~ N(0, I)
                        D <- D - lr grad_D [ L_D(D(x), D(G(z_j))) (+ penalty) ]   gan.d_step
        G <- G - lr grad_G [ L_G(D(G(z_k))) ]                                      gan.g_step

The generator update reuses the fakes G(z_k) of the last discriminator update (their graph
is kept; the discriminator saw them detached), as PyTorch's DCGAN example does: one
generator forward pass fewer per step. Every random number comes from a named stream of
:mod:`tinygan.utils.streams`, and the real batches from
:class:`~tinygan.data.BatchLoader` by position, so a resumed run ends exactly where an
uninterrupted one does. The stabilisers are settings too: ``r1_gamma`` adds the R1 penalty
to L_D (every ``r1_every``-th D update), ``augment`` passes every image D sees, real and
fake, in both updates, through DiffAugment (:mod:`tinygan.augment`), and ``spectral_norm``
normalises D's layers (:mod:`tinygan.extras.nn_utils`) before the optimizers and the
checkpoint see them. With ``ema``, an exponential moving average of G's weights draws
the grids and scores (:mod:`tinygan.ema`), as in the main demo. The records (grids,
losses, checkpoints) are kept by :class:`~tinygan.utils.run.Run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

from tinygan import data, models, nn
from tinygan.augment import parse_policy
from tinygan.autograd import no_grad
from tinygan.backend import resolve_device
from tinygan.data import BatchLoader
from tinygan.ema import EMA
from tinygan.fast import use_fast_paths
from tinygan.fast.memory import keep_freed_memory
from tinygan.gan import LOSSES, d_step, g_step
from tinygan.nn import Module
from tinygan.optim import SGD, Adam, Optimizer
from tinygan.tensor import Tensor
from tinygan.utils.cli import (
    require_choice,
    require_folder,
    require_positive,
    require_range,
    usage_errors,
)
from tinygan.utils.run import Run, RunConfig, check_folder, sample_from_checkpoint
from tinygan.utils.streams import RandomStreams


@dataclass
class TrainConfig(RunConfig):
    """The settings of the shared training loop (the demos turn each field into a flag).

    Attributes:
        loss: "gan" (binary cross-entropy, non-saturating G loss), "gan-saturating" (G
            minimises log(1 - D(G(z))), the original minimax loss), "lsgan" (least
            squares), "hinge" (SN-GAN's hinge loss) or "wgan-gp" (Wasserstein critic with
            gradient penalty).
        batch_size: real and fake images per discriminator update.
        optimizer: "adam" or "sgd" (SGD with momentum).
        lr_g: the generator's learning rate, in (0, inf).
        lr_d: the discriminator's learning rate, in (0, inf).
        beta1: Adam's decay of the gradients' running mean, in [0, 1).
        beta2: Adam's decay of the squared gradients' running mean, in [0, 1).
        momentum: SGD's momentum, in [0, 1).
        d_steps: discriminator (critic) updates per generator update (k, n_critic).
        gp_weight: weight lambda of WGAN-GP's gradient penalty, in [0, inf).
        r1_gamma: weight gamma of the R1 penalty gamma/2 E||grad_x D(x)||^2 on real images
            (Mescheder et al., 2018), in [0, inf); 0: off. Not with wgan-gp, whose critic
            has its own gradient penalty. With R1 on, D has no BatchNorm (the MNIST
            demos drop it; the image-folder demo's norm "auto" is LayerNorm).
        r1_every: lazy R1: the penalty, with gamma * r1_every, on every r1_every-th D
            update only (StyleGAN2), >= 1.
        augment: DiffAugment policy applied to every image D sees, real and fake, in D's
            and G's updates (Zhao et al., 2020): names from "translation", "cutout" and
            "color" (colour images only), comma-separated; "": none.
        spectral_norm: spectral normalisation (Miyato et al., 2018) of every Linear,
            Conv2d and ConvTranspose2d layer of D, which then has no BatchNorm in the
            MNIST demos (see :func:`discriminator_batchnorm`).
    """

    loss: str = "lsgan"
    batch_size: int = 64
    optimizer: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    momentum: float = 0.9
    d_steps: int = 1
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    r1_every: int = 1
    augment: str = ""
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("loss", self.loss, tuple(LOSSES))
        require_choice("optimizer", self.optimizer, ("adam", "sgd"))
        require_update_settings(self)
        require_positive(self, "d_steps")
        require_range(self, "momentum", low=0, high=1)
        require_range(self, "gp_weight", low=0)
        require_stabiliser_settings(self)


def require_stabiliser_settings(config: Any, channels: int | None = None) -> None:
    """Check ``r1_gamma`` in [0, inf), ``r1_every`` >= 1 and the ``augment`` policy (with
    ``channels``, C of the images when known: "color" needs C > 1). R1 and WGAN-GP's
    penalty exclude each other: the critic's penalty holds its gradient norm near 1, R1
    pushes it to 0 on the real images. Raises ValueError otherwise.
    """
    require_range(config, "r1_gamma", low=0)
    require_positive(config, "r1_every")
    if config.r1_gamma and LOSSES[config.loss].critic:
        raise ValueError(
            "r1_gamma: a WGAN-GP critic has its own gradient penalty (gp_weight); R1 is for "
            "the other losses (gan, gan-saturating, lsgan, hinge)"
        )
    try:
        parse_policy(config.augment, channels)
    except (TypeError, ValueError) as err:
        raise ValueError(f"augment: {str(err).removeprefix('diff_augment: ')}") from None


def require_update_settings(config: Any) -> None:
    """Check the settings every GAN update has (for a config's ``__post_init__``).

    ``batch_size`` at least 1, learning rates ``lr_g`` and ``lr_d`` in (0, inf), Adam's
    ``beta1`` and ``beta2`` in [0, 1) (a beta of 1 would never forget, and its bias
    correction would divide by 0). Raises ValueError otherwise.
    """
    require_positive(config, "batch_size")
    require_range(config, "lr_g", "lr_d", low=0, low_open=True)
    require_range(config, "beta1", "beta2", low=0, high=1)


def discriminator_batchnorm(config: TrainConfig) -> bool:
    """Whether DCGAN-28's discriminator keeps its BatchNorm: not with a per-sample penalty
    (WGAN-GP's, R1), which BatchNorm would couple across the batch, and not with spectral
    norm, which takes its place (SN-GAN's discriminator has none).
    """
    return not (LOSSES[config.loss].critic or config.r1_gamma > 0 or config.spectral_norm)


def make_optimizer(params: Any, lr: float, config: TrainConfig) -> Optimizer:
    """Adam(lr, (beta1, beta2)) or SGD(lr, momentum), as the config says."""
    if config.optimizer == "adam":
        return Adam(params, lr=lr, betas=(config.beta1, config.beta2))
    return SGD(params, lr=lr, momentum=config.momentum)


def train(
    G: Module, D: Module, loader: BatchLoader, config: TrainConfig, stream: TextIO | None = None
) -> Run:
    """Train G against D on ``loader``'s batches, as ``config`` says; returns the run.

    Args:
        G: maps (N, z_dim) noise to (N, C, H, W) images in [-1, 1].
        D: maps images to (N, 1) scores; with ``config.spectral_norm`` its layers are
            normalised in place (see :func:`tinygan.nn.utils.spectral_norm_layers`).
        loader: the real images (its batch size is used).
        config: the run's settings.
        stream: where progress and messages go (the demos pass sys.stdout).
    """
    device = resolve_device(config.device)
    G, D = G.to(device).train(), D.to(device).train()
    family = LOSSES[config.loss]
    gp_weight = config.gp_weight if family.critic else 0.0
    streams = RandomStreams(config.seed)
    if config.spectral_norm:  # before the optimizer and the checkpoint: weight_orig, u, v
        nn.utils.spectral_norm_layers(D, streams.spectral_norm())
    opt_g = make_optimizer(G.parameters(), config.lr_g, config)
    opt_d = make_optimizer(D.parameters(), config.lr_d, config)
    ema = EMA(G, config.ema) if config.ema else None
    sampler = G if ema is None else ema.model
    batchnorm_noise = [Tensor(b).to(device) for b in streams.batchnorm_noise(config.z_dim)]
    run = Run(
        config, G, D, opt_g, opt_d, ema=ema, streams=streams, stream=stream, loss=config.loss,
        real_examples=loader.batch(0),  # each grid's diversity is held against theirs
    )  # fmt: skip
    if not config.reference:
        keep_freed_memory()  # a process setting: malloc keeps freed memory (tinygan/fast/)
    k, n = config.d_steps, loader.batch_size
    policy, r1_every = config.augment, config.r1_every
    with use_fast_paths(not config.reference):
        for step in run.steps():
            for j in range(k):
                real = Tensor(loader.batch(step * k + j)).to(device)  # (n, C, H, W)
                z = Tensor(streams.noise(step, n, config.z_dim, j)).to(device)  # (n, z_dim)
                if j < k - 1:
                    with no_grad():  # only the last fakes are needed by the G step
                        fake = G(z)
                else:
                    fake = G(z)
                gp_rng = streams.penalty(step, j)
                t = (step - 1) * k + j  # D updates before this one: lazy R1 on every r1_every-th
                r1_gamma = config.r1_gamma * r1_every if t % r1_every == 0 else 0.0
                d = d_step(
                    D, opt_d, family.d_loss, real, fake.detach(), gp_weight, gp_rng,
                    r1_gamma=r1_gamma, augment=policy, augment_rng=streams.augment(step, j),
                )  # fmt: skip
            g_loss = g_step(
                D, opt_g, family.g_loss, fake, augment=policy, augment_rng=streams.augment(step, k)
            )
            if ema is not None:
                ema.update()
            run.log(step, g_loss=g_loss, **d.summary(family.logits))
            if run.due(step, config.sample_every):
                if ema is not None:  # BatchNorm's statistics under the averaged weights
                    ema.recompute_batchnorm(batchnorm_noise)
                run.save_samples(step, sampler)
            if run.due(step, config.checkpoint_every):
                run.save_checkpoint()
            if run.due(step, config.eval_every):
                if ema is not None:
                    ema.recompute_batchnorm(batchnorm_noise)
                run.evaluate(step, sampler)
    return run


@dataclass
class MnistSettings:
    """Which digits and which networks: the settings every MNIST demo shares.

    Attributes:
        dataset: "mnist" or "fashion-mnist".
        data_root: the folder with the IDX files (then the only one looked at).
        download: fetch missing files from the dataset's mirrors.
        model: "dcgan" (DCGAN-28, convolutional) or "mlp" (the classic fully connected GAN).
    """

    dataset: str = "mnist"
    data_root: str = ""
    download: bool = True
    model: str = "dcgan"

    def __post_init__(self) -> None:
        super().__post_init__()  # the RunConfig this is mixed into
        require_choice("dataset", self.dataset, data.TRAINING_SETS)
        require_choice("model", self.model, models.MNIST_MODELS)
        require_folder(self, "data_root")
        require_stabiliser_settings(self, channels=1)  # digits are grey: no "color"
        if self.eval_every and self.dataset != "mnist":
            raise ValueError("eval_every scores digits with an MNIST classifier: MNIST runs only")


@dataclass
class MnistConfig(MnistSettings, TrainConfig):
    """Train a GAN on MNIST (or Fashion-MNIST) and write samples, losses and checkpoints."""


def train_mnist(config: MnistConfig, stream: TextIO | None = None) -> None:
    """Train (or, with ``config.sample``, only sample) the MNIST GAN that ``config`` describes.

    Raises:
        UsageError: a batch larger than the data, before the first step.
        DatasetError: the digits cannot be found, downloaded or read.
    """
    batchnorm = discriminator_batchnorm(config)
    G, D = models.mnist_models(config.model, config.z_dim, d_batchnorm=batchnorm, seed=config.seed)
    log = None if stream is None else (lambda line: print(line, file=stream))
    if config.sample:
        G.to(resolve_device(config.device))
        checkpoint = f"{config.out}/checkpoint.npz"
        sample_from_checkpoint(
            G, checkpoint, config.out, config.z_dim, config.seed, log=log, config=config
        )
        return
    check_folder(config)  # before the digits load: an --out that is a file, a live run there
    images = data.load_training_images(
        config.dataset, config.data_root or None, config.download, log
    )
    with usage_errors():  # a batch larger than the data: one line, before the first step
        loader = BatchLoader(images, config.batch_size, seed=config.seed)
    train(G, D, loader, config, stream)
