"""Where does a training step spend its time? Milliseconds per op kind, per step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_step.py
    python benchmarks/profile_step.py --loss wgan-gp  # WGAN-GP (one critic + one G update)
    python benchmarks/profile_step.py --main-demo     # demos/mnist_lsgan.py's recipe
    python benchmarks/profile_step.py --matmuls       # also every matrix product of a step
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py

Every op is a ``Function`` called through ``Function.__call__``; this script wraps that
call with a timer, trains on the bundled MNIST, on the CPU, with
:func:`tinygan.train.train` (the loop the demos run, records included), and prints the
time and the number of calls of each op kind per step. Ops called inside backward passes
are ops too, so the table covers forward and backward. Nested calls (an op whose forward
calls another op) would be counted twice; tinygan's forwards call none. The first
``--warmup`` steps are a separate ``train`` call, which the timed one resumes from; the
step time is the run's own clock (``history["seconds"]``), which leaves the loading of
the checkpoint out.

``--matmuls`` lists the matrix products of the last timed step, in the order they ran (every
product in tinygan goes through the array module's ``matmul``, which the script wraps): the
operand shapes, whether BLAS can take each operand as it is ("C": row-major, "T": the
transpose of a row-major array, also free; anything else costs a copy), the dtype, and
the speed, against the NumPy peak that every benchmark prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import print_environment
from tinygan import autograd, models
from tinygan.data import BatchLoader, load_mnist_or_bundled
from tinygan.gan import LOSSES
from tinygan.train import TrainConfig, discriminator_batchnorm, train

# demos/mnist_lsgan.py's settings that differ from the shared loop's defaults.
MAIN_DEMO = {"batch_size": 32, "spectral_norm": True, "lr_g": 1e-3, "beta2": 0.9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="lsgan", choices=list(LOSSES))
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--matmuls", action="store_true", help="list every matrix product")
    parser.add_argument(
        "--main-demo",
        action="store_true",
        help="the main demo's recipe: batches of 32, spectral norm in D, its learning rates",
    )
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    if args.main_demo and args.loss != "lsgan":
        parser.error("--main-demo trains its own loss, lsgan")
    recipe = MAIN_DEMO if args.main_demo else {}

    seconds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    untimed_call = autograd.Function.__call__
    untimed_matmul = np.matmul
    products: list[tuple] = []  # (a, b, seconds) of every matrix product, a and b described

    def timed_call(self, *inputs):
        start = time.perf_counter()
        out = untimed_call(self, *inputs)
        seconds[type(self).__name__] += time.perf_counter() - start
        calls[type(self).__name__] += 1
        return out

    def timed_matmul(a, b):
        start = time.perf_counter()
        out = untimed_matmul(a, b)
        seconds = time.perf_counter() - start
        products.append((_operand(a), _operand(b), seconds))  # not the arrays: keeping them
        return out  # would keep every step's memory, and slow the steps down

    images, _ = load_mnist_or_bundled(download=False)
    with tempfile.TemporaryDirectory() as out:
        # The warm-up ends with a checkpoint (and nothing else is written); the timed run
        # resumes from it and writes nothing.
        config = TrainConfig(loss=args.loss, steps=args.warmup, out=out, device="cpu",
                             sample_every=0, checkpoint_every=args.warmup, **recipe)  # fmt: skip
        batchnorm = discriminator_batchnorm(config)
        generator, discriminator = models.mnist_models("dcgan", 100, d_batchnorm=batchnorm)
        loader = BatchLoader(images, config.batch_size, seed=config.seed)
        train(generator, discriminator, loader, config)
        config = dataclasses.replace(
            config, steps=args.warmup + args.steps, checkpoint_every=0, resume=True
        )
        autograd.Function.__call__ = timed_call
        if args.matmuls:
            np.matmul = timed_matmul
        # New networks (train installs spectral norm on D), loaded from the checkpoint.
        generator, discriminator = models.mnist_models("dcgan", 100, d_batchnorm=batchnorm)
        try:
            run = train(generator, discriminator, loader, config)
        finally:
            autograd.Function.__call__ = untimed_call
            np.matmul = untimed_matmul
    timed_seconds = run.history["seconds"][-1] - run.history["seconds"][args.warmup - 1]
    total = 1000 * timed_seconds / args.steps

    peak = print_environment("cpu")
    print(
        f"DCGAN-28 {args.loss} step, batch {config.batch_size}: {total:.1f} ms "
        f"(mean of {args.steps})\n"
    )
    print("| op | ms per step | share | calls per step |")
    print("|---|---:|---:|---:|")
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        ms = 1000 * s / args.steps
        print(f"| {name} | {ms:.1f} | {100 * ms / total:.0f}% | {calls[name] // args.steps} |")
    in_ops = 1000 * sum(seconds.values()) / args.steps
    print(f"| (outside ops: Adam, data, records, Python) | {total - in_ops:.1f} | "
          f"{100 * (total - in_ops) / total:.0f}% | |")  # fmt: skip
    if args.matmuls:
        per_step = len(products) // args.steps
        print_products(products[-per_step:], peak)


def _operand(a) -> tuple[tuple[int, ...], str, str]:
    """Shape, layout ("C" row-major, "T" transposed row-major: both free for BLAS, else
    "copy") and dtype of a matrix product's operand."""
    layout = "C" if a.flags.c_contiguous else "T" if a.flags.f_contiguous else "copy"
    return a.shape, layout, str(a.dtype)


def print_products(products: list[tuple], peak: float) -> None:
    """One row per matrix product: shapes, layouts, dtype, milliseconds, GFLOP/s, share."""
    print("\n| # | a | b | dtype | ms | GFLOP/s | % of peak |")
    print("|---|---|---|---|---:|---:|---:|")
    for i, ((a_shape, a_layout, dtype), (b_shape, b_layout, _), seconds) in enumerate(products):
        flops = 2 * math.prod(a_shape) * b_shape[-1]
        rate = flops / seconds / 1e9
        print(
            f"| {i} | {a_shape} {a_layout} | {b_shape} {b_layout} | {dtype} | "
            f"{1000 * seconds:.2f} | {rate:.0f} | {100 * rate / peak:.0f}% |"
        )


if __name__ == "__main__":
    main()
