"""Time an upsampling generator's forward + backward: the fused Upsample + conv against the
layers one by one, and against PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/upsample_generator.py

The network is :func:`tinygan.models.upsample_generator` (seed 001's generator: z in R^128,
width 64, 3 channels) at ``--size`` px, batch ``--batch``, in training mode (BatchNorm on
batch statistics): one forward pass and the backward pass of a fixed random output
gradient (the gradients of every parameter; z needs none). Three contenders in one
process, timed by the protocol of :mod:`benchmarks.common` (alternating blocks of
``--block`` calls, the first untimed, medians of at least ``--timed`` timed calls each):

* ``fused``: the model as it runs, fast paths on: ``nn.Sequential`` runs each
  ``Upsample(2)`` + 3x3 ``Conv2d`` pair as one op (:mod:`tinygan.fast.upsample_conv`);
* ``unfused``: the same layers called one by one (so no pair is fused), every other fast
  path on: tinygan before that op;
* ``torch``: the model's PyTorch twin (:func:`tinygan.bridge.to_torch`), same weights.

The three start from the same weights and see the same z and output gradient.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygan as tg
from benchmarks.common import BLOCK, TIMED, alternating_medians, frameworks, print_environment
from tinygan import models


def tinygan_call(g, z: np.ndarray, grad: np.ndarray, fused: bool):
    zt, gt = tg.tensor(z), tg.tensor(grad)
    params = list(g.parameters())

    def forward_backward():
        if fused:
            y = g(zt)
        else:  # the layers one by one: Sequential.forward, and its fused pairs, skipped
            y = zt
            for layer in g:
                y = layer(y)
        y.backward(gt)
        for p in params:
            p.grad = None

    return forward_backward


def torch_call(torch, g, z: np.ndarray, grad: np.ndarray):
    from tinygan.bridge import to_torch

    twin = to_torch(g).train()
    zq, gq = torch.from_numpy(z), torch.from_numpy(grad)

    def forward_backward():
        y = twin(zq)
        y.backward(gq)
        twin.zero_grad(set_to_none=True)

    return forward_backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image size (32, 64, 128, 256)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--timed", type=int, default=TIMED, help="timed calls per contender")
    parser.add_argument("--block", type=int, default=BLOCK, help="calls per block (1st untimed)")
    args = parser.parse_args()

    torch, _, _ = frameworks("cpu")
    print_environment("cpu", torch)
    rng = np.random.default_rng(0)
    g = models.upsample_generator(args.size, channels=3, z_dim=128, width=64, rng=rng)
    z = rng.standard_normal((args.batch, 128)).astype(np.float32)
    grad = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    contenders = {
        "fused": tinygan_call(g, z, grad, fused=True),
        "unfused": tinygan_call(g, z, grad, fused=False),
    }
    if torch is not None:
        contenders["torch"] = torch_call(torch, g, z, grad)
    print(
        f"upsample_generator({args.size}), batch {args.batch}, forward + backward; medians "
        f"of at least {args.timed} timed calls, in alternating blocks of {args.block} "
        "(the first untimed)\n"
    )
    ms = alternating_medians(contenders, args.timed, args.block)
    print("| contender | ms | / torch | / unfused |")
    print("|---|---|---|---|")
    for name, t in ms.items():
        vs_torch = f"{t / ms['torch']:.2f}" if "torch" in ms else "-"
        print(f"| {name} | {t:.1f} | {vs_torch} | {t / ms['unfused']:.2f} |")


if __name__ == "__main__":
    main()
