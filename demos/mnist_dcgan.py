"""DCGAN on MNIST: the convolutional DCGAN-28 networks with the original GAN loss.

    python demos/mnist_dcgan.py                # about 5 minutes on a 2-core CPU

Same networks as demos/mnist_lsgan.py (DCGAN-28, CONTRIBUTING.md: transposed convolutions with
BatchNorm and ReLU in G, strided convolutions with LeakyReLU(0.2) in D, N(0, 0.02) init),
trained with binary cross-entropy on logits and the non-saturating generator loss. The
main demo's recipe: G learns five times faster than D (Adam 1e-3 against 2e-4) and an
EMA of G's weights (--ema 0.995) draws the grids; at 2,000 steps that took the Fréchet
distance from 257 (Adam 2e-4 for both, seed 0) to 167 +- 19 over three seeds
(benchmarks/quality.py --sweep --only dcgan-gan-2e-4 dcgan-gan; BENCHMARKS.md).
Output in runs/mnist_dcgan/.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan.train import MnistConfig, train_mnist
from tinygan.utils.cli import parse_config, run_main


def main() -> None:
    config = parse_config(
        MnistConfig, loss="gan", model="dcgan", lr_g=1e-3, lr_d=2e-4, ema=0.995, steps=2000,
        out="runs/mnist_dcgan",
    )  # fmt: skip
    train_mnist(config, stream=sys.stdout)


if __name__ == "__main__":
    run_main(main)
