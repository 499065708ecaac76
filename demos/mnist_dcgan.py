"""DCGAN on MNIST: the convolutional DCGAN-28 networks with the original GAN loss.

    python demos/mnist_dcgan.py                # about 8 minutes on a 2-core laptop CPU

Same networks as demos/mnist_lsgan.py (DCGAN-28, CONTRIBUTING.md: transposed convolutions with
BatchNorm and ReLU in G, strided convolutions with LeakyReLU(0.2) in D, N(0, 0.02) init),
trained with binary cross-entropy on logits and the non-saturating generator loss.
Output in runs/mnist_dcgan/.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan.train import MnistConfig, train_mnist
from tinygan.utils.cli import parse_config

if __name__ == "__main__":
    config = parse_config(
        MnistConfig, loss="gan", model="dcgan", steps=2000, out="runs/mnist_dcgan"
    )
    train_mnist(config, stream=sys.stdout)
