"""What the version counters cost in a step of the main demo (DCGAN-28, LSGAN, batch 64).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/version_counters.py

Every recorded op notes the change counts of its inputs and output at forward (and checks
whether its output is a view of an input), and the graph walk compares them before the
op's backward. This script counts the ops of one training step, times that bookkeeping
alone on the step's own tensors (the same statements ``Function.__call__`` and the walk
run, repeated) and the reads of ``.data``, now a property, and times whole steps, all in
one process: the counters' share of a step is their time over a step's.
"""

from __future__ import annotations

import sys
import time
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygan as tg
from benchmarks.common import print_environment
from tinygan import autograd, data, losses, models, optim
from tinygan.backend import is_view


def main() -> None:
    print_environment("cpu")
    images = data.load_training_images("mnist", None, download=False)
    G, D = models.mnist_models("dcgan", 100, seed=0)
    opt_g = optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.9))
    opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.9))
    loader = data.BatchLoader(images, 64, seed=0)
    rng = np.random.default_rng(0)
    calls: list[tuple[tuple[tg.Tensor, ...], tg.Tensor, bool]] = []  # (inputs, out, recorded)
    original_call = autograd.Function.__call__

    def recording_call(self, *inputs):
        out = original_call(self, *inputs)
        calls.append((inputs, out, out._ctx is self))
        return out

    def step(n: int) -> None:
        real = tg.Tensor(loader.batch(n).astype(np.float32))
        fake = G(tg.Tensor(rng.standard_normal((64, 100), dtype=np.float32)))
        opt_d.minimize(losses.lsgan_d_loss(D(real), D(fake.detach())))
        opt_g.minimize(losses.lsgan_g_loss(D(fake)))

    for n in range(1, 4):  # warm up
        step(n)
    data_property, reads = tg.Tensor.data, [0]

    def counted_read(self):
        reads[0] += 1
        return self._data

    autograd.Function.__call__ = recording_call
    tg.Tensor.data = property(counted_read, data_property.fset)
    step(4)
    autograd.Function.__call__, tg.Tensor.data = original_call, data_property
    t = tg.Tensor(np.ones(1, dtype=np.float32))
    read_cost = min(timeit.repeat(lambda: t.data, number=100_000, repeat=7)) / 100_000
    attribute_cost = min(timeit.repeat(lambda: t._data, number=100_000, repeat=7)) / 100_000
    data_cost = reads[0] * (read_cost - attribute_cost)
    print(f".data read {reads[0]} times in one step; as a property: {data_cost * 1e3:.3f} ms more")
    recorded = sum(r for _, _, r in calls)
    print(f"ops in one step: {len(calls)}, of which recorded for a backward: {recorded}")

    def bookkeeping():
        for inputs, out, was_recorded in calls:  # what __call__ adds, then the walk
            for t in inputs:
                if is_view(out.data, t.data):
                    pass
            if was_recorded:
                versions = tuple(t._changes[0] for t in (*inputs, out))
                for t, version in zip((*inputs, out), versions):
                    if t._changes[0] != version:
                        raise AssertionError

    cost = min(timeit.repeat(bookkeeping, number=50, repeat=7)) / 50
    timings = []
    for n in range(5, 25):
        start = time.perf_counter()
        step(n)
        timings.append(time.perf_counter() - start)
    per_step = float(np.median(timings))
    print(f"the counters' bookkeeping per step: {cost * 1e3:.3f} ms")
    cost += data_cost
    print(f"a step (median of 20): {per_step * 1e3:.1f} ms; the counters, {cost * 1e3:.2f} ms: "
          f"{100 * cost / per_step:.2f}%")  # fmt: skip


if __name__ == "__main__":
    main()
