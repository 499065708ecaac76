"""Would splitting a step's memory-bound passes over both cores pay? Timed, not assumed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/thread_split.py
    OPENBLAS_THREAD_TIMEOUT=4 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python benchmarks/thread_split.py

NumPy runs a copy or an elementwise pass on the calling thread and releases the GIL inside
it, so a second thread could take half of its rows. This script times two such passes of
seed 001's 64 px step on one thread and split in two halves (the calling thread and one
worker from a pool made once): LeakyReLU's first-order backward on a (32, 64, 32, 32)
activation, 8 MB (``tinygan.fast.ops.LeakyReLU``'s four passes, here into a buffer made
once), and the window copy of a 4x4 stride-2 im2col of it, 32 MB (the strided view of
:func:`tinygan.conv.im2col_array`, built here so that the copy alone is timed). Each
(a) **alone**, and
(b) **right after a matrix product**, as in a training step, where every few milliseconds
    a product runs on OpenBLAS's threads. After a product, OpenBLAS's idle threads keep
    spinning on their cores for about 2^28 cycles (``OPENBLAS_THREAD_TIMEOUT``, read when
    NumPy loads OpenBLAS) before they sleep, so the worker thread finds its core taken.

Alone: alternating blocks of 4 passes (the first untimed), medians of 40 timed passes.
After a product: the two alternate pass by pass, each pass timed after its own (untimed)
product, medians of 40. The split is bit for bit the one-thread pass (checked here, into
a buffer filled with NaN first): every element is computed by the same operations.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import alternating_medians, print_environment
from tinygan.conv import im2col_array

POOL = ThreadPoolExecutor(1)


def leaky_relu_backward(x: np.ndarray, g: np.ndarray, out: np.ndarray, rows: slice) -> None:
    """dL/dx = dL/dy * (1 if x > 0 else 0.2), the slopes built in ``out`` (fast/ops.py)."""
    s = out[rows]
    np.greater(x[rows], 0, out=s)
    s *= 1.0 - 0.2
    s += 0.2
    s *= g[rows]


def window_copy(windows: np.ndarray, out: np.ndarray, rows: slice) -> None:
    """im2col's one copy: the strided view of every window into rows."""
    out[rows] = windows[rows]


def one_thread(pass_: Callable, *arrays: np.ndarray) -> Callable[[], None]:
    return lambda: pass_(*arrays, slice(None))


def two_threads(pass_: Callable, *arrays: np.ndarray) -> Callable[[], None]:
    half = len(arrays[-1]) // 2

    def run():
        other = POOL.submit(pass_, *arrays, slice(half, None))
        pass_(*arrays, slice(0, half))
        other.result()

    return run


def after_product(
    run: Callable[[], None], a: np.ndarray, b: np.ndarray
) -> tuple[Callable[[], None], dict]:
    """``run`` preceded by a matrix product of seed 001's size (untimed)."""
    timed = {"s": 0.0}

    def both():
        a @ b
        start = time.perf_counter()
        run()
        timed["s"] = time.perf_counter() - start

    return both, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timed", type=int, default=40, help="timed passes per contender")
    args = parser.parse_args()
    print_environment("cpu")
    print(f"OPENBLAS_THREAD_TIMEOUT: {os.environ.get('OPENBLAS_THREAD_TIMEOUT', '(unset)')}\n")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    cols = im2col_array(np, x, (4, 4), (2, 2), (1, 1)).reshape(32, 16, 16, 4, 4, 64)
    padded = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    s_n, s_h, s_w, s_c = padded.strides
    windows = np.lib.stride_tricks.as_strided(
        padded, shape=cols.shape, strides=(s_n, 2 * s_h, 2 * s_w, s_h, s_w, s_c)
    )
    a = rng.standard_normal((800, 2048)).astype(np.float32)
    b = rng.standard_normal((2048, 1024)).astype(np.float32)
    passes = {
        "LeakyReLU backward, 8 MB": (leaky_relu_backward, x, g, np.empty_like(x)),
        "im2col window copy, 32 MB": (window_copy, windows, np.empty_like(cols)),
    }
    print("| pass | when | one thread ms | two threads ms | one / two |")
    print("|---|---|---:|---:|---:|")
    for name, (pass_, *arrays) in passes.items():
        one_thread(pass_, *arrays)()
        single = arrays[-1].copy()
        arrays[-1].fill(np.nan)  # a row the split failed to write would show
        two_threads(pass_, *arrays)()
        assert np.array_equal(single, arrays[-1]), "the split changed the result"
        ms = alternating_medians(
            {"one": one_thread(pass_, *arrays), "two": two_threads(pass_, *arrays)},
            args.timed,
            4,
        )
        print(
            f"| {name} | alone | {ms['one']:.2f} | {ms['two']:.2f} | {ms['one'] / ms['two']:.2f} |"
        )
        runs = {
            "one": after_product(one_thread(pass_, *arrays), a, b),
            "two": after_product(two_threads(pass_, *arrays), a, b),
        }
        times: dict[str, list[float]] = {"one": [], "two": []}
        for _ in range(args.timed):  # alternate pass by pass: each follows its own product
            for key, (run, timed) in runs.items():
                run()
                times[key].append(timed["s"])
        medians = {key: 1000 * float(np.median(t)) for key, t in times.items()}
        print(
            f"| {name} | after a product | {medians['one']:.2f} | {medians['two']:.2f} | "
            f"{medians['one'] / medians['two']:.2f} |"
        )


if __name__ == "__main__":
    main()
