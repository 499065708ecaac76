"""A GAN on any folder of images (CelebA faces, UT-Zappos50K shoes, cat faces...), 32 to 128 px.

    python demos/image_folder_dcgan.py --root ~/data/celeba --image-size 64
    python demos/image_folder_dcgan.py --root ~/data/celeba --sample

Every image under --root (searched recursively) is centre-cropped to a square, resized and
cached in one .npz file beside the run, so the second run starts at once. A run's folder
below --root (this run's --out, or any folder with a config.json and a checkpoint.npz) is
skipped and named: a run's grids are never its training images. By default the networks
are the DCGAN paper's (Radford et al., 2016): G turns 100 numbers into an image through
transposed convolutions with BatchNorm and ReLU; D mirrors it with strided convolutions
and LeakyReLU(0.2). Adam(2e-4, betas (0.5, 0.999)).

--generator upsample doubles the image by nearest-neighbour upsampling and a 3x3
convolution instead, which cannot draw the checkerboard a transposed convolution can, for
about 2.25 times the multiply-adds (see models.upsample_generator). Transposed stays the
default: it is the DCGAN paper's network, and the cheaper one on a CPU. The WGAN-GP
paper's CelebA generator is the upsampling one, with z in R^128, trained by its
Algorithm 1 (lambda = 10, n_critic = 5, Adam alpha = 1e-4, beta1 = 0, beta2 = 0.9) against
a critic with layer normalisation:

    python demos/image_folder_dcgan.py --root ~/data/celeba --generator upsample \\
        --z-dim 128 --image-size 128 --loss wgan-gp --gp-weight 10 --d-steps 5 \\
        --lr-g 1e-4 --lr-d 1e-4 --beta1 0 --beta2 0.9 --out runs/celeba_wgan_gp

With few images, D memorises them; the stabilisers of the shared loop help (the math is in
docs/08-training.md): DiffAugment on every image D sees (--augment translation,cutout,color),
the R1 penalty on real images (--r1-gamma 1; the "auto" norm is then LayerNorm) and spectral
normalisation of D's layers (--spectral-norm), for example SN-GAN's recipe:

    python demos/image_folder_dcgan.py --root ~/data/cats --image-size 32 --loss hinge \
        --spectral-norm --augment translation,cutout,color --out runs/cats_sn_hinge

A GPU helps a lot here: on a laptop CPU a 64 px step takes seconds (see BENCHMARKS.md);
--device cuda with the gpu extra.
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
from tinygan.utils.cli import parse_config, require_choice, require_positive, run_main, usage_errors
from tinygan.utils.run import check_folder, sample_from_checkpoint


@dataclass
class FolderConfig(TrainConfig):
    """Train a GAN on a folder of images.

    Attributes:
        root: the folder of images (required).
        image_size: 32, 64 or 128 pixels.
        width: channels of D's first layer and G's last hidden layer (64 in the paper).
        generator: "transposed" (the DCGAN paper's transposed convolutions) or "upsample"
            (nearest-neighbour upsampling x2, then a 3x3 convolution).
        norm: D's normalisation: "batch", "layer" or "none"; "auto" is BatchNorm, or
            LayerNorm for a WGAN-GP critic or with R1 (BatchNorm would mix the samples
            that a gradient penalty treats one by one).
    """

    root: str = ""
    image_size: int = 64
    width: int = 64
    generator: str = "transposed"
    norm: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("image_size", self.image_size, (32, 64, 128))
        require_positive(self, "width")
        require_choice("generator", self.generator, ("transposed", "upsample"))
        require_choice("norm", self.norm, ("auto", *models.NORMS))
        if self.norm == "batch" and LOSSES[self.loss].critic:
            raise ValueError("norm: a WGAN-GP critic cannot use BatchNorm; use layer or none")
        if self.norm == "batch" and self.r1_gamma:
            raise ValueError("norm: R1 needs a D without BatchNorm; use layer or none")
        if not (self.root or self.sample):
            raise ValueError("--root is required: a folder of .jpg/.png images")


def main() -> None:
    config = parse_config(
        FolderConfig, loss="gan", steps=5000, sample_every=200, out="runs/image_folder_dcgan"
    )
    rng = np.random.default_rng(config.seed)
    size, z_dim, width = config.image_size, config.z_dim, config.width
    if config.generator == "upsample":
        generator = models.upsample_generator(size, 3, z_dim, width, rng=rng)
    else:
        generator = models.dcgan_generator(size, 3, z_dim, width, rng=rng)
    norm = config.norm
    if norm == "auto":
        norm = "layer" if LOSSES[config.loss].critic or config.r1_gamma else "batch"
    discriminator = models.dcgan_discriminator(size, 3, width, norm, rng=rng)
    if config.sample:
        generator.to(resolve_device(config.device))
        checkpoint = Path(config.out) / "checkpoint.npz"
        sample_from_checkpoint(
            generator, checkpoint, config.out, z_dim, config.seed, log=print, config=config
        )
        return
    check_folder(config)  # before the images load, which can take minutes

    def show_progress(done: int, total: int) -> None:
        print(f"\rreading images: {done}/{total}", end="\n" if done == total else "", flush=True)

    folder = data.load_image_folder(
        config.root, size, cache_dir=config.out, progress=show_progress, exclude=[config.out]
    )
    left_out = f"; left out: {len(folder.unreadable)} unreadable, {len(folder.ignored)} other files"
    print(f"{len(folder.images):,} images of {size}x{size} from {config.root}" + left_out)
    for run_folder in folder.run_folders:
        print(f"skipped {run_folder.path}: {run_folder.reason}")
    if folder.cache_warning:
        print(folder.cache_warning)
    with usage_errors():  # a batch larger than the folder: one line, before the first step
        loader = data.BatchLoader(folder.images, config.batch_size, seed=config.seed)
    train(generator, discriminator, loader, config, stream=sys.stdout)


if __name__ == "__main__":
    run_main(main)
