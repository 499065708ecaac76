"""DCGAN on any folder of images (CelebA faces, UT-Zappos50K shoes, cat faces...) at 64 or 128 px.

    python demos/image_folder_dcgan.py --root ~/data/celeba --image-size 64
    python demos/image_folder_dcgan.py --root ~/data/celeba --sample

Every image under --root (searched recursively) is centre-cropped to a square, resized and
cached to one .npy file beside the run, so the second run starts at once. The networks are
the DCGAN paper's (Radford et al., 2016): G turns 100 numbers into an image through
transposed convolutions with BatchNorm and ReLU; D mirrors it with strided convolutions
and LeakyReLU(0.2). Adam(2e-4, betas (0.5, 0.999)). A GPU helps a lot here: on a laptop
CPU a 64 px step takes seconds (see BENCHMARKS.md); --device cuda with the gpu extra.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan import data, models
from tinygan.backend import resolve_device
from tinygan.gan import LOSSES
from tinygan.train import TrainConfig, train
from tinygan.utils.cli import parse_config
from tinygan.utils.run import sample_from_checkpoint


@dataclass
class FolderConfig(TrainConfig):
    """Train a DCGAN on a folder of images.

    Attributes:
        root: the folder of images (required).
        image_size: 32, 64 or 128 pixels.
        width: channels of D's first layer and G's last hidden layer (64 in the paper).
    """

    root: str = ""
    image_size: int = 64
    width: int = 64


def main() -> None:
    config = parse_config(
        FolderConfig, loss="gan", steps=5000, sample_every=200, out="runs/image_folder_dcgan"
    )
    rng = np.random.default_rng(config.seed)
    size, critic = config.image_size, LOSSES[config.loss].critic
    generator = models.dcgan_generator(size, 3, config.z_dim, config.width, rng=rng)
    discriminator = models.dcgan_discriminator(
        size, 3, config.width, batch_norm=not critic, rng=rng
    )
    if config.sample:
        generator.to(resolve_device(config.device))
        checkpoint = Path(config.out) / "checkpoint.npz"
        sample_from_checkpoint(
            generator, checkpoint, config.out, config.z_dim, config.seed, log=print
        )
        return
    if not config.root:
        raise SystemExit("--root is required: a folder of .jpg/.png images")

    def show_progress(done: int, total: int) -> None:
        print(f"\rreading images: {done}/{total}", end="\n" if done == total else "", flush=True)

    folder = data.load_image_folder(config.root, size, cache_dir=config.out, progress=show_progress)
    print(
        f"{len(folder.images):,} images of {size}x{size} from {config.root}"
        + (f" ({folder.skipped} unreadable files skipped)" if folder.skipped else "")
    )
    loader = data.BatchLoader(folder.images, config.batch_size, seed=config.seed)
    train(generator, discriminator, loader, config, stream=sys.stdout)


if __name__ == "__main__":
    main()
