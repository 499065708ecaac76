"""``Tensor``: an n-dimensional array that remembers how it was computed.

A Tensor wraps a NumPy array (CPU) or a CuPy array (GPU) in ``.data``. When it was made by
an op from inputs that require grad, ``._ctx`` points at that op (a
:class:`~tinygan.autograd.Function`), whose ``inputs`` point at the input Tensors: that
chain is the graph that ``backward`` walks. Leaves (tensors made by the user) have no
``_ctx``; those with ``requires_grad=True`` collect their gradient in ``.grad``.

Every operator below is written out and calls the op of the same name in
:mod:`tinygan.ops`; nothing is registered by magic.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from tinygan.backend import array_module, device_of, is_cupy_array, to_device, to_numpy

_FLOAT_DTYPES = (np.float32, np.float64)


class Tensor:
    """An array plus what autograd needs: ``requires_grad``, ``grad`` and the creating op.

    ``Tensor(array)`` keeps a float32 or float64 NumPy/CuPy array as it is (no copy) and
    converts anything else to float32. Use :func:`tensor` for an always-copying factory.
    """

    __array_priority__ = 1000  # numpy_array * tensor calls Tensor.__rmul__, not numpy's

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        elif isinstance(data, np.generic):  # NumPy reductions return scalars: keep the dtype
            data = np.asarray(data)
        if dtype is not None:
            data = _as_array(data, np.dtype(dtype))
        elif not (_is_array(data) and data.dtype in _FLOAT_DTYPES):
            data = _as_array(data, np.dtype(np.float32))
        self.data = data
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self._ctx = None  # the Function that made this tensor (None for leaves)

    # ------------------------------------------------------------------ array properties
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def xp(self) -> ModuleType:
        """The array module (numpy or cupy) holding ``data``."""
        return array_module(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(to_numpy(self.data), separator=", ", prefix="tensor(")
        extras = [f"dtype={self.dtype}"] if self.dtype != np.float32 else []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # ------------------------------------------------------------------ conversions
    def numpy(self) -> np.ndarray:
        """A host NumPy copy of the data."""
        return to_numpy(self.data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return float(self.data.reshape(()))

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory, requires_grad=False)."""
        return Tensor(self.data)

    def to(self, device: str) -> Tensor:
        """This tensor on ``device`` ("cpu" or "cuda"); differentiable across the move."""
        return ops.to_device(self, device)

    def cpu(self) -> Tensor:
        """This tensor on the CPU (itself when it is there already), as ``to("cpu")``."""
        return ops.to_device(self, "cpu")

    def cuda(self) -> Tensor:
        """This tensor on the GPU, as ``to("cuda")``."""
        return ops.to_device(self, "cuda")

    def float(self) -> Tensor:
        """Cast to float32 (differentiable)."""
        return ops.cast(self, np.float32)

    def double(self) -> Tensor:
        """Cast to float64 (differentiable)."""
        return ops.cast(self, np.float64)

    # ------------------------------------------------------------------ autograd
    def backward(
        self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False
    ) -> None:
        """Accumulate the gradient of this tensor into every leaf's ``.grad``.

        Each leaf's ``.grad`` holds an array of its own, shared with no other leaf and not
        with ``gradient``, so an in-place update of one (clipping, an optimizer step)
        changes nothing else.

        Args:
            gradient: d(loss)/d(self); may be omitted for a one-element tensor.
            retain_graph: keep the graph for a second backward (default: ``create_graph``).
            create_graph: record the backward pass so gradients can be differentiated again.
        """
        autograd.backward(self, gradient, retain_graph, create_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ operators
    def __add__(self, other: Any) -> Tensor:
        return ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return ops.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return ops.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return ops.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return ops.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return ops.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.div(other, self)

    def __pow__(self, exponent: Any) -> Tensor:
        return ops.pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return ops.pow(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return ops.neg(self)

    def __getitem__(self, index: Any) -> Tensor:
        return ops.getitem(self, index)

    # Comparisons give plain boolean arrays: they have no gradient.
    def __lt__(self, other: Any) -> Any:
        return self.data < array_of(other)

    def __le__(self, other: Any) -> Any:
        return self.data <= array_of(other)

    def __gt__(self, other: Any) -> Any:
        return self.data > array_of(other)

    def __ge__(self, other: Any) -> Any:
        return self.data >= array_of(other)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self.data == array_of(other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self.data != array_of(other)

    __hash__ = object.__hash__  # tensors are identities, usable as dict keys

    # ------------------------------------------------------------------ methods
    def reshape(self, *shape: Any) -> Tensor:
        return ops.reshape(self, _shape_arg(shape))

    def view(self, *shape: Any) -> Tensor:
        return ops.view(self, _shape_arg(shape))

    def transpose(self, *axes: Any) -> Tensor:
        return ops.transpose(self, _shape_arg(axes) or None)

    def permute(self, *axes: Any) -> Tensor:
        return ops.transpose(self, _shape_arg(axes))

    @property
    def T(self) -> Tensor:
        return ops.transpose(self, None)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.mean(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.max(self, axis, keepdims)

    def exp(self) -> Tensor:
        return ops.exp(self)

    def log(self) -> Tensor:
        return ops.log(self)

    def sqrt(self) -> Tensor:
        return ops.sqrt(self)

    def abs(self) -> Tensor:
        return ops.abs(self)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        return ops.clip(self, min, max)

    def relu(self) -> Tensor:
        return ops.relu(self)

    def sigmoid(self) -> Tensor:
        return ops.sigmoid(self)

    def tanh(self) -> Tensor:
        return ops.tanh(self)


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


def _is_array(data: Any) -> bool:
    return isinstance(data, np.ndarray) or is_cupy_array(data)


def _as_array(data: Any, dtype: np.dtype) -> Any:
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"tensors hold float32 or float64 data, not {dtype}")
    xp = array_module(data)
    return xp.asarray(data, dtype=dtype)


def array_of(value: Any) -> Any:
    """The array of a Tensor, or ``value`` itself (an array or a number)."""
    return value.data if isinstance(value, Tensor) else value


def _shape_arg(args: tuple) -> tuple:
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


# The ops and the graph walk build Tensors, so they are imported after the class exists.
from tinygan import autograd, ops  # noqa: E402
