"""LSGAN on MNIST: the DCGAN-28 networks trained with least-squares losses.

    python demos/mnist_lsgan.py                # about 7 minutes on a 2-core laptop CPU
    python demos/mnist_lsgan.py --help         # every setting
    python demos/mnist_lsgan.py --sample       # grid + interpolation from the checkpoint

The discriminator regresses real images to 1 and fakes to 0, and the generator pulls its
fakes' scores to 1 (Mao et al., 2017):

    L_D = 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]        L_G = 1/2 E[(D(G(z)) - 1)^2]

Samples, loss curves and checkpoints go to runs/mnist_lsgan/.
"""

from mnist_common import run

if __name__ == "__main__":
    run(loss="lsgan", model="dcgan", steps=2000, out="runs/mnist_lsgan")
