"""Shared helpers for the benchmarks: the timing protocol, the machine, OpenBLAS, optional torch.

The protocol (CONTRIBUTING.md, "Measuring speed honestly") in one function,
:func:`alternating_medians`: the contenders run in one process, in alternating blocks of
calls, the first call of each block untimed, and each gets the median of its timed calls.
Interleaving call by call would let one library's still-spinning BLAS/OpenMP threads slow
the other; running all of one, then all of the other, would expose the comparison to the
machine's drift.

Every script prints :func:`print_environment` first: the CPU, the thread count, which
OpenBLAS kernel NumPy runs (``OPENBLAS_CORETYPE`` can force an older one, so benchmark
commands unset it: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/...``)
and the NumPy matrix-product peak measured in the same run.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinygan.fast.memory import keep_freed_memory

# The protocol's defaults: blocks of 4 calls, the first untimed, 30 timed calls each.
BLOCK = 4
TIMED = 30


def alternating_medians(
    contenders: dict[str, Callable[[], object]], timed: int = TIMED, block: int = BLOCK
) -> dict[str, float]:
    """Median milliseconds per call of each contender, timed in alternating blocks.

    Each round runs every contender for ``block`` calls in turn; the first call of each
    block is untimed (it absorbs the previous contender's spinning threads and any
    warm-up). Rounds repeat until every contender has at least ``timed`` timed calls.

    Args:
        contenders: name -> a function doing one unit of work (it must wait for a GPU).
        timed: the minimum number of timed calls per contender.
        block: calls per block, the first of them untimed (at least 2).
    """
    if block < 2 or timed < 1:
        raise ValueError(f"need block >= 2 and timed >= 1, got block={block}, timed={timed}")
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(math.ceil(timed / (block - 1))):
        for name, fn in contenders.items():
            fn()
            for _ in range(block - 1):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(t) for name, t in times.items()}


def add_memory_flag(parser: argparse.ArgumentParser) -> None:
    """``--keep-freed-memory``: time tinygan as its training loops run it."""
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="let glibc's malloc keep freed memory, as tinygan's training loops do "
        "(tinygan.fast.memory; a setting of the whole process, so PyTorch's too)",
    )


def apply_memory_flag(args: argparse.Namespace) -> str:
    """Apply ``--keep-freed-memory``; the words that say which malloc ran."""
    if args.keep_freed_memory and keep_freed_memory():
        return "malloc keeps freed memory (as the training loops run tinygan)"
    return "the C library's malloc as it comes"


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


def openblas_kernel() -> str:
    """Which OpenBLAS NumPy runs, and with which kernel: "OpenBLAS 0.3.31 ... (kernel SkylakeX)".

    Asks threadpoolctl when it is installed; otherwise asks the OpenBLAS library that NumPy
    loaded, through its ``get_config`` and ``get_corename`` functions (named
    ``scipy_openblas_*64_`` in NumPy's wheels, ``openblas_*`` elsewhere).
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        for pool in threadpool_info():
            if pool.get("internal_api") == "openblas":
                return f"OpenBLAS {pool.get('version')} (kernel {pool.get('architecture')})"
    for path in _loaded_libraries("openblas"):
        lib = ctypes.CDLL(path)
        config, core = _call_first(lib, "get_config"), _call_first(lib, "get_corename")
        if config or core:
            return f"{config or 'OpenBLAS'} (kernel {core or 'unknown'})"
    return "unknown (not OpenBLAS, or install threadpoolctl to see it)"


def _loaded_libraries(name: str) -> list[str]:
    """Paths of the shared libraries this process has loaded whose file name holds ``name``."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    paths = {line.split()[-1] for line in maps if "/" in line}
    return sorted(p for p in paths if name in Path(p).name.lower())


def _call_first(lib: ctypes.CDLL, what: str) -> str | None:
    for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
        fn = getattr(lib, f"{prefix}{what}{suffix}", None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            return fn().decode().strip()
    return None


def numpy_peak_gflops(size: int = 2048) -> float:
    """GFLOP/s of NumPy's float32 product of two ``size`` x ``size`` matrices (the median of
    5 after a warm-up), the yardstick for a step's share of the machine."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    times = []
    a @ a
    for _ in range(5):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


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


def print_environment(device: str, torch=False) -> float:
    """Print what ran (machine, GPU, threads, OpenBLAS kernel, PyTorch unless ``torch`` is
    False) and the NumPy float32 matrix-product peak measured now; return that peak in
    GFLOP/s."""
    print(f"machine: {machine()}")
    if device == "cuda":
        import cupy

        print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    print(f"threads: {blas_thread_count()} (NumPy's OpenBLAS and PyTorch alike)")
    forced = {
        k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ
    }
    note = f"; FORCED by {forced}: unset them for benchmarks" if forced else ""
    print(f"NumPy BLAS: {openblas_kernel()}{note}")
    if torch is not False:
        print(f"torch: {torch.__version__ if torch else 'not installed'}")
    peak = numpy_peak_gflops()
    print(f"NumPy float32 matmul peak (2048^3, this run): {peak:.0f} GFLOP/s")
    return peak
