"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

The array *is* the device: a ``numpy.ndarray`` lives on the CPU, a ``cupy.ndarray`` on a
GPU. This module only answers two questions, "which array module holds this array?" and
"move this array to that device", so no op ever needs a global device setting.

CuPy is imported lazily, the first time a GPU is asked about, so ``import tinygan`` never
fails (nor slows down) on a machine without CuPy or without a GPU.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

_cupy: ModuleType | None = None
_cupy_checked = False


def _import_cupy() -> ModuleType | None:
    """Return the ``cupy`` module, or None when it is not installed or unusable."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy

            _cupy = cupy
        except Exception:  # ImportError, or a broken CUDA install raising at import
            _cupy = None
    return _cupy


def cuda_available() -> bool:
    """True when CuPy is installed and can see at least one CUDA device."""
    cupy = _import_cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device
        return False


def is_cupy_array(array: Any) -> bool:
    """True for a ``cupy.ndarray``, without importing CuPy for NumPy arrays."""
    return type(array).__module__.startswith("cupy")


def array_module(array: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) that holds ``array``."""
    if is_cupy_array(array):
        return _import_cupy()
    return np


def device_of(array: Any) -> str:
    """``"cpu"`` for a NumPy array, ``"cuda:N"`` for a CuPy array on GPU N."""
    if is_cupy_array(array):
        return f"cuda:{array.device.id}"
    return "cpu"


def normalize_device(device: str) -> str:
    """Check a device name and return its canonical form (``"cpu"`` or ``"cuda"``)."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    name = device.split(":")[0]
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")
    if name == "cuda" and not cuda_available():
        raise RuntimeError(
            "device 'cuda' was asked for, but no CUDA GPU is usable: install the GPU extra "
            "(pip install -e .[gpu]) on a machine with an NVIDIA GPU, or use 'cpu'"
        )
    return name


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is usable, else ``"cpu"``; other names checked."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return normalize_device(device)


def to_device(array: Any, device: str) -> Any:
    """Return ``array`` on ``device`` (``"cpu"`` or ``"cuda"``); no copy if already there."""
    name = normalize_device(device)
    if name == "cpu":
        return array.get() if is_cupy_array(array) else array
    cupy = _import_cupy()
    return cupy.asarray(array)


def is_view(out: Any, array: Any) -> bool:
    """Whether ``out`` is ``array`` itself or a view of the memory ``array`` views (NumPy
    and CuPy point a view's ``.base`` at the array that owns the memory).
    """
    owner = array if array.base is None else array.base
    return out is array or (out.base is not None and out.base is owner)


def to_numpy(array: Any) -> np.ndarray:
    """A host NumPy copy of ``array``."""
    if is_cupy_array(array):
        return array.get()
    return np.array(array, copy=True)


def scatter_add(xp: ModuleType, out: Any, index: Any, values: Any) -> None:
    """``out[index] += values`` in place, adding repeated indices up (unbuffered)."""
    if xp is np:
        np.add.at(out, index, values)
    else:
        import cupyx

        cupyx.scatter_add(out, index, values)
