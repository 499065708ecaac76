"""Shared helpers for the benchmarks: timing medians, machine description, optional torch."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np


def median_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def blas_thread_count() -> int:
    """Threads NumPy's OpenBLAS uses: ``OPENBLAS_NUM_THREADS`` when set (it must be set
    before NumPy is imported, so on the command line), else one per core."""
    return int(os.environ.get("OPENBLAS_NUM_THREADS", 0)) or os.cpu_count() or 1


def machine() -> str:
    """One line describing the CPU, core count and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}"
    )


def import_torch():
    """PyTorch if installed (an optional benchmark extra), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def frameworks(device: str):
    """(torch or None, tinygan's synchronize, torch's synchronize) for ``device``.

    PyTorch gets as many threads as NumPy's BLAS (:func:`blas_thread_count`). On a GPU the
    synchronize functions wait for queued kernels, so a timing covers the work itself.
    """
    torch = import_torch()
    sync_tinygan = sync_torch = _no_op
    if torch is not None:
        torch.set_num_threads(blas_thread_count())
        torch.manual_seed(0)
    if device == "cuda":
        import cupy

        sync_tinygan = cupy.cuda.Device().synchronize
        if torch is not None:
            sync_torch = torch.cuda.synchronize
    return torch, sync_tinygan, sync_torch


def _no_op() -> None:
    pass


def print_environment(device: str, torch) -> None:
    """The machine, GPU and PyTorch lines that head every benchmark's output."""
    print(f"machine: {machine()}")
    if device == "cuda":
        import cupy

        print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    print(f"threads: {blas_thread_count()} (NumPy's OpenBLAS and PyTorch alike)")
    print(f"torch: {torch.__version__ if torch else 'not installed'}")
