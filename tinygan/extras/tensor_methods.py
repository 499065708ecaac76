"""What a ``Tensor`` offers beyond the lesson: PyTorch's conveniences.

:class:`TensorExtras` is a base class of :class:`tinygan.tensor.Tensor`: printing,
``len``, ``cpu()``, ``cuda()``, ``float()``, ``double()``, ``view``, ``permute``, ``.T``,
indexing, division, the reflected ``**`` and ``@``, comparisons (plain boolean arrays: they have no
gradient), and ``max``, ``exp``, ``log``, ``sqrt``, ``abs``, ``clip``, ``relu``,
``sigmoid``, ``tanh`` as methods. Each calls the op of the same name in :mod:`tinygan.ops`.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from tinygan.backend import to_numpy

if TYPE_CHECKING:
    from tinygan.tensor import Tensor


def _ops() -> ModuleType:
    """:mod:`tinygan.ops`, imported on first use (it imports the Tensor this module helps
    to define).
    """
    from tinygan import ops

    return ops


class TensorExtras:
    """PyTorch's conveniences on tensors (see the module docstring)."""

    __hash__ = object.__hash__  # comparisons are elementwise; tensors are identities as keys

    @property
    def _version(self) -> int:
        """How often ``.data`` has changed (PyTorch's name): assignments to ``.data``, writes
        into the array through :meth:`_mark_changed`, and the same for every view of it.
        """
        return self._changes[0]

    def _mark_changed(self) -> None:
        """Count a change made by writing into the array (``data[...] = x``), which no
        assignment to ``.data`` records, so recorded graphs that read it refuse to backward.
        """
        self._changes[0] += 1

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

    def cpu(self) -> Tensor:
        """This tensor on the CPU (itself when it is there already), as ``to("cpu")``."""
        return _ops().to_device(self, "cpu")

    def cuda(self) -> Tensor:
        """This tensor on the GPU, as ``to("cuda")``."""
        return _ops().to_device(self, "cuda")

    def float(self) -> Tensor:
        """Cast to float32 (differentiable)."""
        return _ops().cast(self, np.float32)

    def double(self) -> Tensor:
        """Cast to float64 (differentiable)."""
        return _ops().cast(self, np.float64)

    def zero_grad(self) -> None:
        self.grad = None

    def __truediv__(self, other: Any) -> Tensor:
        return _ops().div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops().div(other, self)

    def __rpow__(self, base: Any) -> Tensor:
        return _ops().pow(base, self)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops().matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops().getitem(self, index)

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

    def view(self, *shape: Any) -> Tensor:
        return _ops().view(self, _shape_arg(shape))

    def permute(self, *axes: Any) -> Tensor:
        return _ops().transpose(self, _shape_arg(axes))

    @property
    def T(self) -> Tensor:
        return _ops().transpose(self, None)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().max(self, axis, keepdims)

    def exp(self) -> Tensor:
        return _ops().exp(self)

    def log(self) -> Tensor:
        return _ops().log(self)

    def sqrt(self) -> Tensor:
        return _ops().sqrt(self)

    def abs(self) -> Tensor:
        return _ops().abs(self)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        return _ops().clip(self, min, max)

    def relu(self) -> Tensor:
        return _ops().relu(self)

    def sigmoid(self) -> Tensor:
        return _ops().sigmoid(self)

    def tanh(self) -> Tensor:
        return _ops().tanh(self)


def array_of(value: Any) -> Any:
    """The array of a Tensor, or ``value`` itself (an array or a number)."""
    return value.data if isinstance(value, TensorExtras) else value


def _shape_arg(args: tuple) -> tuple:
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)
