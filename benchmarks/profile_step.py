"""Where does a training step spend its time? Milliseconds per op kind, per step.

    python benchmarks/profile_step.py                 # DCGAN-28 LSGAN step
    python benchmarks/profile_step.py --loss wgan-gp  # WGAN-GP (one critic + one G update)
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py

Every op is a ``Function`` called through ``Function.__call__``; this script wraps that
call with a timer, runs a few steps of ``GANTrainer.train_step`` on the bundled MNIST,
and prints the time and the number of calls of each op kind per step. Ops called inside
backward passes are ops too, so the table covers forward and backward. Nested calls (an
op whose forward calls another op) would be counted twice; tinygan's forwards call none.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import blas_thread_count, machine  # noqa: E402
from tinygan import autograd, models  # noqa: E402
from tinygan.data import BatchLoader, load_mnist_or_bundled  # noqa: E402
from tinygan.train import GANTrainer, TrainConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="lsgan", choices=["gan", "lsgan", "wgan-gp"])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    seconds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    untimed_call = autograd.Function.__call__

    def timed_call(self, *inputs):
        start = time.perf_counter()
        out = untimed_call(self, *inputs)
        seconds[type(self).__name__] += time.perf_counter() - start
        calls[type(self).__name__] += 1
        return out

    images, _ = load_mnist_or_bundled(download=False)
    rng = np.random.default_rng(0)
    critic = args.loss == "wgan-gp"
    generator = models.dcgan28_generator(100, rng=rng)
    discriminator = models.dcgan28_discriminator(batch_norm=not critic, rng=rng)
    config = TrainConfig(loss=args.loss, out="runs/profile_step")
    trainer = GANTrainer(generator, discriminator, BatchLoader(images, 64, seed=0), config)
    for _ in range(3):  # warm-up
        trainer.train_step()

    autograd.Function.__call__ = timed_call
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    total = (time.perf_counter() - start) / args.steps * 1000
    autograd.Function.__call__ = untimed_call

    print(f"machine: {machine()}; threads: {blas_thread_count()}")
    print(f"DCGAN-28 {args.loss} step, batch 64: {total:.1f} ms (mean of {args.steps})\n")
    print("| op | ms per step | share | calls per step |")
    print("|---|---:|---:|---:|")
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        ms = 1000 * s / args.steps
        print(f"| {name} | {ms:.1f} | {100 * ms / total:.0f}% | {calls[name] // args.steps} |")
    in_ops = 1000 * sum(seconds.values()) / args.steps
    print(f"| (outside ops: Adam, data, Python) | {total - in_ops:.1f} | "
          f"{100 * (total - in_ops) / total:.0f}% | |")  # fmt: skip


if __name__ == "__main__":
    main()
