"""What the MNIST demos share: their settings, and the wiring of data, models and trainer.

Each ``demos/mnist_*.py`` script only chooses defaults (loss, model, steps) and calls
:func:`run`, which reads top to bottom: flags -> images -> models -> trainer. The training
loop itself is ``tinygan/train.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan import data, models  # noqa: E402
from tinygan.cli import parse_config  # noqa: E402
from tinygan.train import GANTrainer, TrainConfig, sample_from_checkpoint  # noqa: E402


@dataclass
class MnistConfig(TrainConfig):
    """Train a GAN on MNIST (or Fashion-MNIST) and write samples, losses and checkpoints.

    Attributes:
        dataset: "mnist" or "fashion-mnist".
        data_root: a folder with the IDX files, searched before the usual places.
        download: fetch missing files from the dataset's mirrors.
        model: "dcgan" (the DCGAN-28 of DESIGN.md) or "mlp" (the classic MLP GAN).
        sample: only load out/checkpoint.npz and write a sample grid and an interpolation.
    """

    dataset: str = "mnist"
    data_root: str = ""
    download: bool = True
    model: str = "dcgan"
    sample: bool = False


def load_images(config: MnistConfig) -> np.ndarray:
    """Training images, uint8 (N, 28, 28); the bundled test set when MNIST's is missing."""
    root = config.data_root or None
    if config.dataset == "fashion-mnist":
        images, _ = data.load_fashion_mnist("train", root=root, download=config.download)
    elif config.dataset == "mnist":
        images, _ = data.load_mnist_or_bundled(root=root, download=config.download, log=print)
    else:
        raise SystemExit(f"--dataset must be mnist or fashion-mnist, not {config.dataset!r}")
    return images


def build_models(config: MnistConfig):
    """(generator, discriminator) for ``config.model``, seeded by ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    if config.model == "mlp":
        return models.mlp_generator(config.z_dim, rng=rng), models.mlp_discriminator(rng=rng)
    if config.model == "dcgan":
        critic = config.loss == "wgan-gp"  # no BatchNorm in a gradient-penalty critic
        return (
            models.dcgan28_generator(config.z_dim, rng=rng),
            models.dcgan28_discriminator(batch_norm=not critic, rng=rng),
        )
    raise SystemExit(f"--model must be dcgan or mlp, not {config.model!r}")


def run(**defaults) -> None:
    """Parse the flags (with this demo's ``defaults``), then train or sample."""
    config = parse_config(MnistConfig, **defaults)
    if config.eval_every and config.dataset != "mnist":
        raise SystemExit("--eval-every scores digits with an MNIST classifier: MNIST runs only")
    generator, discriminator = build_models(config)
    if config.sample:
        checkpoint = Path(config.out) / "checkpoint.npz"
        sample_from_checkpoint(
            generator,
            checkpoint,
            config.out,
            config.z_dim,
            config.seed,
            device=config.device,
            log=print,
        )
        return
    images = load_images(config)
    loader = data.BatchLoader(images, config.batch_size, seed=config.seed)
    trainer = GANTrainer(generator, discriminator, loader, config)
    try:
        trainer.train()
    except KeyboardInterrupt:
        sys.exit(130)
