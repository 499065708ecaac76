"""Where does a training step spend its time? Milliseconds per op kind, per step.

    python benchmarks/profile_step.py                 # DCGAN-28 LSGAN step
    python benchmarks/profile_step.py --loss wgan-gp  # WGAN-GP (one critic + one G update)
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
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import blas_thread_count, machine
from tinygan import autograd, models
from tinygan.data import BatchLoader, load_mnist_or_bundled
from tinygan.gan import LOSSES
from tinygan.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="lsgan", choices=list(LOSSES))
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")

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
    generator, discriminator = models.mnist_models("dcgan", 100, LOSSES[args.loss].critic)
    with tempfile.TemporaryDirectory() as out:
        # The warm-up ends with a checkpoint (and nothing else is written); the timed run
        # resumes from it and writes nothing.
        config = TrainConfig(loss=args.loss, steps=args.warmup, out=out, device="cpu",
                             sample_every=0, checkpoint_every=args.warmup)  # fmt: skip
        loader = BatchLoader(images, config.batch_size, seed=config.seed)
        train(generator, discriminator, loader, config)
        config = dataclasses.replace(
            config, steps=args.warmup + args.steps, checkpoint_every=0, resume=True
        )
        autograd.Function.__call__ = timed_call
        try:
            run = train(generator, discriminator, loader, config)
        finally:
            autograd.Function.__call__ = untimed_call
    timed_seconds = run.history["seconds"][-1] - run.history["seconds"][args.warmup - 1]
    total = 1000 * timed_seconds / args.steps

    print(f"machine: {machine()}; threads: {blas_thread_count()}")
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


if __name__ == "__main__":
    main()
