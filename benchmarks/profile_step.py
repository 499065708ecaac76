"""Where does a training step spend its time? Milliseconds per op kind, per step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_step.py
    python benchmarks/profile_step.py --loss wgan-gp  # WGAN-GP (one critic + one G update)
    python benchmarks/profile_step.py --main-demo     # demos/mnist_lsgan.py's recipe
    python benchmarks/profile_step.py --matmuls       # also every matrix product of a step
    python benchmarks/profile_step.py --case seed001-64  # an image-folder step of train_step.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py

Every op is a ``Function`` called through ``Function.__call__``; this script wraps that
call with a timer, trains on the bundled MNIST, on the CPU, with
:func:`tinygan.train.train` (the loop the demos run, records included), and prints the
time and the number of calls of each op kind per step. Each op's ``backward`` is timed
too, as its own row ("Conv2d backward"); the times are exclusive (an op called inside a
backward counts for that op, not twice), so the rows add up to the time spent in ops, and
the rest of the step is Adam, the graph walk's bookkeeping, the data and Python. The first
``--warmup`` steps are a separate ``train`` call, which the timed one resumes from; the
step time is the run's own clock (``history["seconds"]``), which leaves the loading of
the checkpoint out. ``--case NAME`` profiles a step of ``benchmarks/train_step.py``'s
image-folder case instead (its networks, random images of its size): ``--warmup`` steps
called directly, then ``--steps`` timed by the clock, with glibc's malloc keeping freed
memory as the training loops run tinygan (:mod:`tinygan.fast.memory`).

``--matmuls`` times the matrix products on their own row, "(matrix products)" (every
product in tinygan goes through the array module's ``matmul``, which the script wraps),
so each op's row is then the work around its products, and lists the products of the last
timed step in the order they ran: the
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
from benchmarks.train_step import FOLDER_CASES, data_source, folder_case, tinygan_step
from tinygan import autograd, models
from tinygan.data import BatchLoader, load_mnist_or_bundled
from tinygan.fast.memory import keep_freed_memory
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
    parser.add_argument(
        "--case",
        choices=FOLDER_CASES,
        help="instead, a step of benchmarks/train_step.py's image-folder case of that name",
    )
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    if args.main_demo and args.loss != "lsgan":
        parser.error("--main-demo trains its own loss, lsgan")
    if args.case and (args.main_demo or args.loss != "lsgan"):
        parser.error("--case runs its own step: leave out --main-demo and --loss")

    timer = OpTimer(matmuls=args.matmuls)
    if args.case:
        keep_freed_memory()  # as tinygan.train does before its first step
        case = folder_case(args.case)
        step = tinygan_step(case, "cpu", data_source(case, np.empty(0), 1))
        for _ in range(args.warmup):
            step()
        start = time.perf_counter()
        with timer:
            for _ in range(args.steps):
                step()
        total = 1000 * (time.perf_counter() - start) / args.steps
        title = case.name
    else:
        total, batch = train_loop_step(args, timer)
        title = f"DCGAN-28 {args.loss} step, batch {batch}"

    peak = print_environment("cpu")
    print(f"{title}: {total:.1f} ms (mean of {args.steps})\n")
    timer.report(total, args.steps, peak)


def train_loop_step(args: argparse.Namespace, timer: OpTimer) -> tuple[float, int]:
    """Time ``args.steps`` steps of :func:`tinygan.train.train` (the demos' loop) on MNIST:
    (milliseconds per step by the run's own clock, the batch size)."""
    recipe = MAIN_DEMO if args.main_demo else {}
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
        # New networks (train installs spectral norm on D), loaded from the checkpoint.
        generator, discriminator = models.mnist_models("dcgan", 100, d_batchnorm=batchnorm)
        with timer:
            run = train(generator, discriminator, loader, config)
    timed_seconds = run.history["seconds"][-1] - run.history["seconds"][args.warmup - 1]
    return 1000 * timed_seconds / args.steps, config.batch_size


class OpTimer:
    """Inside ``with``: every op's forward (``Function.__call__``) and ``backward`` timed
    per op kind, exclusively (the time of the timed calls inside a call is not its own);
    with ``matmuls``, every ``np.matmul`` too, as the row "(matrix products)", so that the
    op rows are then the work around the products: copies, elementwise passes, Python."""

    def __init__(self, matmuls: bool) -> None:
        self.matmuls = matmuls
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.products: list[tuple] = []  # (a, b, seconds) of every product, a and b described
        self.open: list[list] = []  # per open timer: [name, seconds of the timers inside it]

    def exclusive(self, name: str, run, *args):
        """``run(*args)``, its time less that of the timers inside it added to ``name``.

        A call inside a call of the same name (a fast op's backward calling the lesson op's,
        ``super().backward``) is counted once.
        """
        nested = bool(self.open) and self.open[-1][0] == name
        self.open.append([name, 0.0])
        start = time.perf_counter()
        try:
            return run(*args)
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] += elapsed - self.open.pop()[1]
            if not nested:
                self.calls[name] += 1
            if self.open:
                self.open[-1][1] += elapsed

    def __enter__(self) -> None:
        untimed_call = self.untimed_call = autograd.Function.__call__
        self.untimed_matmul = untimed_matmul = np.matmul
        self.untimed_backwards = {
            cls: cls.backward for cls in _op_classes() if "backward" in vars(cls)
        }

        def timed_call(op, *inputs):
            return self.exclusive(type(op).__name__, untimed_call, op, *inputs)

        def timed_backward(untimed):
            def backward(op, grad_output):
                return self.exclusive(f"{type(op).__name__} backward", untimed, op, grad_output)

            return backward

        def timed_matmul(a, b):
            start = time.perf_counter()
            out = self.exclusive("(matrix products)", untimed_matmul, a, b)
            seconds = time.perf_counter() - start
            # not the arrays: keeping them would keep every step's memory, and slow it down
            self.products.append((_operand(a), _operand(b), seconds))
            return out

        autograd.Function.__call__ = timed_call
        for cls, untimed in self.untimed_backwards.items():
            cls.backward = timed_backward(untimed)
        if self.matmuls:
            np.matmul = timed_matmul

    def __exit__(self, *exc_info: object) -> None:
        autograd.Function.__call__ = self.untimed_call
        for cls, untimed in self.untimed_backwards.items():
            cls.backward = untimed
        np.matmul = self.untimed_matmul

    def report(self, total: float, steps: int, peak: float) -> None:
        """The table per op kind, and with ``matmuls`` the products of the last step."""
        print("| op | ms per step | share | calls per step |")
        print("|---|---:|---:|---:|")
        for name, s in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            ms = 1000 * s / steps
            print(f"| {name} | {ms:.1f} | {100 * ms / total:.0f}% | {self.calls[name] // steps} |")
        in_ops = 1000 * sum(self.seconds.values()) / steps
        print(f"| (outside ops: Adam, the graph walk, data, records, Python) | "
              f"{total - in_ops:.1f} | {100 * (total - in_ops) / total:.0f}% | |")  # fmt: skip
        if self.matmuls:
            per_step = len(self.products) // steps
            print_products(self.products[len(self.products) - per_step :], peak)


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


def _op_classes() -> list[type]:
    """Every subclass of ``Function`` (tinygan's modules are imported by now)."""
    found, todo = [], [autograd.Function]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


if __name__ == "__main__":
    main()
