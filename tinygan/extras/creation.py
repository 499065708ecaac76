"""Making tensors with PyTorch's names: ``tensor``, ``randn``, ``rand``, ``full``, ``zeros``,
``ones``, ``zeros_like``, ``ones_like`` (float32 by default, ``tg.randn(64, 100)``).

Random numbers are drawn on the CPU from an explicit NumPy ``Generator`` and then moved,
so one seed gives the same numbers on every device. ``import tinygan as tg`` has them all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import to_device
from tinygan.tensor import _FLOAT_DTYPES, Tensor, _as_array, _is_array, _shape_arg


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None):
    """Make a new leaf tensor, always copying ``data``.

    float32 by default; float64 data stays float64 (for gradient checks); ``dtype``
    overrides both. ``device`` is "cpu" or "cuda" (default: where ``data`` already is).
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None:
        dtype = data.dtype if _is_array(data) and data.dtype in _FLOAT_DTYPES else np.float32
    array = _as_array(data, np.dtype(dtype))
    array = array.copy() if array is data else array
    if device is not None:
        array = to_device(array, device)
    return Tensor(array, requires_grad=requires_grad)


def randn(
    *size: Any,
    generator: np.random.Generator | None = None,
    dtype: Any = None,
    device: str | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """A new tensor of shape ``size`` filled with draws from N(0, 1), float32 by default.

    ``randn(64, 100)`` and ``randn((64, 100))`` are the same, as in PyTorch. The numbers are
    drawn on the CPU from ``generator``, a NumPy ``Generator`` (None: a fresh, unseeded
    one), then moved to ``device``, so one seed gives the same numbers on every device.
    """
    rng = np.random.default_rng() if generator is None else generator
    dtype = _float_dtype(dtype)
    return _new(rng.standard_normal(_size(size), dtype=dtype), device, requires_grad)


def rand(
    *size: Any,
    generator: np.random.Generator | None = None,
    dtype: Any = None,
    device: str | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """A new tensor of shape ``size`` filled with draws from U[0, 1), float32 by default.

    Drawn like :func:`randn`: on the CPU from ``generator``, then moved to ``device``.
    """
    rng = np.random.default_rng() if generator is None else generator
    dtype = _float_dtype(dtype)
    return _new(rng.random(_size(size), dtype=dtype), device, requires_grad)


def full(
    size: Any,
    fill_value: float,
    dtype: Any = None,
    device: str | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """A new tensor of shape ``size`` (an int or a tuple) holding ``fill_value`` everywhere."""
    array = np.full(_size((size,)), fill_value, dtype=_float_dtype(dtype))
    return _new(array, device, requires_grad)


def zeros(
    *size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False
) -> Tensor:
    """A new tensor of shape ``size`` filled with 0, float32 by default."""
    return full(_size(size), 0.0, dtype, device, requires_grad)


def ones(
    *size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False
) -> Tensor:
    """A new tensor of shape ``size`` filled with 1, float32 by default."""
    return full(_size(size), 1.0, dtype, device, requires_grad)


def zeros_like(x: Tensor, requires_grad: bool = False) -> Tensor:
    """A new tensor of zeros with ``x``'s shape, dtype and device."""
    return Tensor(x.xp.zeros(x.shape, dtype=x.dtype), requires_grad=requires_grad)


def ones_like(x: Tensor, requires_grad: bool = False) -> Tensor:
    """A new tensor of ones with ``x``'s shape, dtype and device."""
    return Tensor(x.xp.ones(x.shape, dtype=x.dtype), requires_grad=requires_grad)


def _float_dtype(dtype: Any) -> np.dtype:
    """float32 for None; float32 or float64 as asked; a clear error for anything else."""
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"tensors hold float32 or float64 data, not {dtype}")
    return dtype


def _size(args: tuple) -> tuple[int, ...]:
    """The shape from ``f(2, 3)`` or ``f((2, 3))``, each entry a non-negative int."""
    shape = _shape_arg(args)
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise ValueError(f"a tensor's size must be non-negative ints, got {shape}")
    return tuple(int(n) for n in shape)


def _new(array: np.ndarray, device: str | None, requires_grad: bool) -> Tensor:
    """A leaf tensor of a fresh CPU array, moved to ``device`` when one is given."""
    if device is not None:
        array = to_device(array, device)
    return Tensor(array, requires_grad=requires_grad)
