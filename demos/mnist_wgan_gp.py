"""WGAN-GP on MNIST: a Wasserstein critic kept 1-Lipschitz by a gradient penalty.

    python demos/mnist_wgan_gp.py              # about 18 minutes on a 2-core CPU

The critic D (DCGAN-28's discriminator without BatchNorm, which would couple the samples
the penalty treats one by one) and the generator G play (Gulrajani et al., 2017):

    L_D = E[D(G(z))] - E[D(x)] + 10 E[(||grad D(x_hat)||_2 - 1)^2]      L_G = -E[D(G(z))]

with x_hat a random point between a real and a fake image. The penalty's gradient with
respect to D's weights is a second derivative: tinygan.grad(..., create_graph=True).
Five critic steps per generator step; Adam with betas (0.5, 0.9), the critic at 1e-4 and
the generator five times faster, at 5e-4: at 1,000 steps that took the Fréchet distance
from 350 (both at 1e-4, seed 0) to 253 and 280 (seeds 0 and 1), a 24% cut; an EMA of G
did not help at this budget (benchmarks/quality.py --sweep --only wgan-gp wgan-gp-g5e-4;
BENCHMARKS.md). Output in runs/mnist_wgan_gp/.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from tinygan.train import MnistConfig, train_mnist
from tinygan.utils.cli import parse_config, run_main


def main() -> None:
    config = parse_config(
        MnistConfig,
        loss="wgan-gp", model="dcgan", d_steps=5, lr_g=5e-4, lr_d=1e-4, beta1=0.5, beta2=0.9,
        steps=1000, sample_every=100, checkpoint_every=200, out="runs/mnist_wgan_gp",
    )  # fmt: skip
    train_mnist(config, stream=sys.stdout)


if __name__ == "__main__":
    run_main(main)
