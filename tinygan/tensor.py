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

from tinygan.backend import array_module, device_of, is_cupy_array, to_numpy
from tinygan.extras.tensor_methods import TensorExtras, _shape_arg, array_of  # noqa: F401

_FLOAT_DTYPES = (np.float32, np.float64)


class Tensor(TensorExtras):
    """An array plus what autograd needs: ``requires_grad``, ``grad`` and the creating op.

    ``Tensor(array)`` keeps a float32 or float64 NumPy/CuPy array as it is (no copy) and
    converts anything else to float32. ``tinygan.tensor(data)`` always copies.
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
        self._data = data
        self._changes = [0]  # how often .data changed; one count shared with its views
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self._ctx = None  # the Function that made this tensor (None for leaves)

    # ------------------------------------------------------------------ array properties
    @property
    def data(self) -> Any:
        """The array; assigning it (``p.data -= lr * g``) counts a change (see Function)."""
        return self._data

    @data.setter
    def data(self, array: Any) -> None:
        self._data = array
        self._changes[0] += 1

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
        out = Tensor(self.data)
        out._changes = self._changes  # one array: a change through either counts for both
        return out

    def to(self, device: str) -> Tensor:
        """This tensor on ``device`` ("cpu" or "cuda"); differentiable across the move."""
        return ops.to_device(self, device)

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

    def __pow__(self, exponent: Any) -> Tensor:
        return ops.pow(self, exponent)

    def __matmul__(self, other: Any) -> Tensor:
        return ops.matmul(self, other)

    def __neg__(self) -> Tensor:
        return ops.neg(self)

    # ------------------------------------------------------------------ methods
    def reshape(self, *shape: Any) -> Tensor:
        return ops.reshape(self, _shape_arg(shape))

    def transpose(self, *axes: Any) -> Tensor:
        return ops.transpose(self, _shape_arg(axes) or None)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.mean(self, axis, keepdims)


def _is_array(data: Any) -> bool:
    return isinstance(data, np.ndarray) or is_cupy_array(data)


def _as_array(data: Any, dtype: np.dtype) -> Any:
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"tensors hold float32 or float64 data, not {dtype}")
    xp = array_module(data)
    return xp.asarray(data, dtype=dtype)


# The ops and the graph walk build Tensors, so they are imported after the class exists.
from tinygan import autograd, ops  # noqa: E402
