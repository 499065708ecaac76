"""Differentiable ops: elementwise math, activations, reductions, shapes and matmul.

Each op is one :class:`~tinygan.autograd.Function` subclass (``forward`` on arrays,
``backward`` on Tensors, the derivative in the docstring) and one lower-case function that
users call. Because every ``backward`` is written with these same ops, gradients are
themselves differentiable.

Broadcasting follows NumPy. An op whose inputs were broadcast gets a gradient of the
*output's* shape and hands each input ``sum_to(grad, input.shape)``: the sum over the
axes that broadcasting added or stretched. That single helper is the whole story of
broadcasting in reverse mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import fast
from tinygan.autograd import Function
from tinygan.tensor import Tensor

# ------------------------------------------------------------------------------ helpers


def _constant(value: Any, like: Tensor) -> Tensor:
    """Wrap a Python/NumPy number or array as a constant with ``like``'s dtype and device.

    Casting to ``like.dtype`` is what keeps float32 training float32: a NumPy float64
    scalar or array would otherwise promote the whole computation to float64.
    """
    if isinstance(value, Tensor):
        return value
    return Tensor(like.xp.asarray(value, dtype=like.dtype))


def _pair_up(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError("at least one operand must be a Tensor")
        return _constant(a, b), b
    return a, _constant(b, a)


def _check_broadcast(op: str, a: Tensor, b: Tensor) -> None:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast") from None


def _normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


# ------------------------------------------------------------------------ broadcasting


class BroadcastTo(Function):
    """y = x broadcast to ``shape``.  dL/dx = sum_to(dL/dy, x.shape)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x):
        return self.xp.broadcast_to(x, self.shape)

    def backward(self, grad_output):
        return sum_to(grad_output, self.inputs[0].shape)


class SumTo(Function):
    """y = x summed over broadcast axes down to ``shape``.  dL/dx = broadcast(dL/dy)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x):
        lead = x.ndim - len(self.shape)
        stretched = tuple(
            lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1
        )
        y = x.sum(axis=tuple(range(lead)) + stretched, keepdims=True)
        return y.reshape(self.shape)

    def backward(self, grad_output):
        return broadcast_to(grad_output, self.inputs[0].shape)


def broadcast_to(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Broadcast ``x`` to ``shape`` (NumPy rules)."""
    shape = tuple(shape)
    return x if x.shape == shape else BroadcastTo(shape)(x)


def sum_to(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``x`` down to ``shape``: the reverse of broadcasting ``shape`` to ``x.shape``."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo(shape)(x)


# -------------------------------------------------------------------- binary arithmetic


class Add(Function):
    """y = a + b.  dL/da = dL/dy,  dL/db = dL/dy (each summed to its input's shape)."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad_output):
        a, b = self.inputs
        ga = sum_to(grad_output, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(grad_output, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Sub(Function):
    """y = a - b.  dL/da = dL/dy,  dL/db = -dL/dy."""

    def forward(self, a, b):
        return a - b

    def backward(self, grad_output):
        a, b = self.inputs
        ga = sum_to(grad_output, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-grad_output, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Mul(Function):
    """y = a * b.  dL/da = dL/dy * b,  dL/db = dL/dy * a."""

    def forward(self, a, b):
        return a * b

    def backward(self, grad_output):
        a, b = self.inputs
        ga = sum_to(grad_output * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(grad_output * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def _binary(cls: type[Function], name: str, a: Any, b: Any) -> Tensor:
    a, b = _pair_up(a, b)
    _check_broadcast(name, a, b)
    return cls()(a, b)


def add(a: Any, b: Any) -> Tensor:
    """Elementwise ``a + b`` with broadcasting."""
    return _binary(Add, "add", a, b)


def sub(a: Any, b: Any) -> Tensor:
    """Elementwise ``a - b`` with broadcasting."""
    return _binary(Sub, "sub", a, b)


def mul(a: Any, b: Any) -> Tensor:
    """Elementwise ``a * b`` with broadcasting."""
    return _binary(Mul, "mul", a, b)


class PowScalar(Function):
    """y = x^p for a constant p.  dL/dx = dL/dy * p * x^(p-1)."""

    def __init__(self, exponent: float) -> None:
        self.exponent = exponent

    def forward(self, x):
        return x**self.exponent

    def backward(self, grad_output):
        (x,) = self.inputs
        p = self.exponent
        if p == 2.0:
            return grad_output * (x * 2.0)
        return grad_output * (x ** (p - 1.0) * p)


def pow(base: Any, exponent: Any) -> Tensor:  # noqa: A001 (the operator's name)
    """``base ** exponent``. A constant exponent is one op; a tensor one is exp(e * log(b))."""
    if isinstance(base, Tensor) and not isinstance(exponent, Tensor):
        if np.ndim(exponent) != 0:
            raise TypeError("pow: a non-tensor exponent must be a number")
        return PowScalar(float(exponent))(base)
    base, exponent = _pair_up(base, exponent)
    return exp(exponent * log(base))


class MatMul(Function):
    """y = a @ b (last two axes are matrices; leading axes broadcast).

    dL/da = dL/dy @ b^T,  dL/db = a^T @ dL/dy  (summed over broadcast batch axes).
    """

    def forward(self, a, b):
        return self.xp.matmul(a, b)

    def backward(self, grad_output):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(matmul(grad_output, swap_last(b)), a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(matmul(swap_last(a), grad_output), b.shape)
        return ga, gb


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product ``a @ b`` of tensors with at least two dimensions."""
    a, b = _pair_up(a, b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(
            f"matmul: both operands need at least 2 dimensions, got shapes {a.shape} and "
            f"{b.shape} (reshape a vector to (1, n) or (n, 1))"
        )
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not match "
            f"({a.shape[-1]} columns against {b.shape[-2]} rows)"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} differ") from None
    if fast.enabled():  # the same product in faster layouts: tinygan/fast/ops.py
        return fast_ops.MatMul()(a, b)
    return MatMul()(a, b)


# ---------------------------------------------------------------------- unary math


class Neg(Function):
    """y = -x.  dL/dx = -dL/dy."""

    def forward(self, x):
        return -x

    def backward(self, grad_output):
        return -grad_output


def neg(x: Tensor) -> Tensor:
    """``-x``."""
    return Neg()(x)


# ---------------------------------------------------------------------- activations


class ReLU(Function):
    """y = max(x, 0).  dL/dx = dL/dy * [x > 0]; the mask is constant almost everywhere."""

    def forward(self, x):
        return self.xp.maximum(x, 0)

    def backward(self, grad_output):
        return grad_output * _constant(self.inputs[0].data > 0, grad_output)


class LeakyReLU(Function):
    """y = x if x > 0 else a*x.  dL/dx = dL/dy * (1 if x > 0 else a), a constant mask."""

    def __init__(self, negative_slope: float) -> None:
        self.slope = negative_slope

    def forward(self, x):
        return self.xp.where(x > 0, x, x * self.slope)

    def _slopes(self, x):
        """A new array with the local slope of every element: 1 where x > 0, a elsewhere."""
        slopes = (x > 0).astype(x.dtype)
        slopes *= 1.0 - self.slope
        slopes += self.slope
        return slopes

    def backward(self, grad_output):
        return grad_output * _constant(self._slopes(self.inputs[0].data), grad_output)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2 so it never overflows.

    dL/dx = dL/dy * y (1 - y).
    """

    def forward(self, x):
        return (self.xp.tanh(x * 0.5) + 1) * 0.5

    def backward(self, grad_output):
        y = self.output
        return grad_output * (y * (1.0 - y))


class Tanh(Function):
    """y = tanh x.  dL/dx = dL/dy * (1 - y^2)."""

    def forward(self, x):
        return self.xp.tanh(x)

    def backward(self, grad_output):
        y = self.output
        return grad_output * (1.0 - y * y)


class Softplus(Function):
    """y = log(1 + e^x), computed as logaddexp(0, x) (stable for large |x|).

    dL/dx = dL/dy * sigmoid(x).
    """

    def forward(self, x):
        return self.xp.logaddexp(0, x)

    def backward(self, grad_output):
        return grad_output * sigmoid(self.inputs[0])


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return ReLU()(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, ``negative_slope * x`` otherwise."""
    if fast.enabled():  # fewer memory passes: tinygan/fast/ops.py
        return fast_ops.LeakyReLU(float(negative_slope))(x)
    return LeakyReLU(float(negative_slope))(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x)."""
    return Sigmoid()(x)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh()(x)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), stable for large |x|."""
    return Softplus()(x)


# ---------------------------------------------------------------------- reductions


class Sum(Function):
    """y = sum of x over ``axes``.  dL/dx = dL/dy broadcast back over the summed axes."""

    def __init__(self, axes: tuple[int, ...], keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, grad_output):
        shape = self.inputs[0].shape
        return broadcast_to(reshape(grad_output, _kept_shape(shape, self.axes)), shape)


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (None: all axes)."""
    return Sum(_normalize_axes(axis, x.ndim), keepdims)(x)


def mean(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (None: all axes): the sum times 1/count."""
    axes = _normalize_axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    return Sum(axes, keepdims)(x) * (1.0 / count)


# ---------------------------------------------------------------------- shapes


class Reshape(Function):
    """y = x with a new shape.  dL/dx = dL/dy reshaped back."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, grad_output):
        return reshape(grad_output, self.inputs[0].shape)


class Transpose(Function):
    """y = x with its axes permuted.  dL/dx = dL/dy permuted by the inverse permutation."""

    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, grad_output):
        return transpose(grad_output, tuple(np.argsort(self.axes)))


def reshape(x: Tensor, shape: Any) -> Tensor:
    """``x`` with a new shape (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
    known = int(np.prod([n for n in shape if n != -1]))
    if shape.count(-1) == 1 and known > 0 and x.size % known == 0:
        shape = tuple(x.size // known if n == -1 else n for n in shape)
    if shape.count(-1) or int(np.prod(shape)) != x.size or any(n < 0 for n in shape):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} to {shape}")
    if shape == x.shape:
        return x
    return Reshape(shape)(x)


def transpose(x: Tensor, axes: Any = None) -> Tensor:
    """Permute the axes (None: reverse them)."""
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: {axes} is not a permutation of the axes of {x.shape}")
    return Transpose(axes)(x)


def swap_last(x: Tensor) -> Tensor:
    """Swap the last two axes (the matrix transpose of a batch of matrices)."""
    axes = list(range(x.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return transpose(x, axes)


# The ops the main demo does not use (indexing, concatenation, padding, upsampling,
# log-softmax and cross-entropy, abs, clip, max, sqrt), in the same namespace; and the fast
# paths, which subclass the ops above. Both are imported once those exist.
from tinygan.extras.ops import (  # noqa: E402, F401
    abs,  # noqa: A004
    cast,
    clip,
    concat,
    cross_entropy,
    div,
    exp,
    getitem,
    log,
    log_softmax,
    logsumexp,
    logsumexp_array,
    max,  # noqa: A004
    pad2d,
    scatter_add,
    softmax,
    sqrt,
    stack,
    to_device,
    upsample_nearest,
    view,
)
from tinygan.fast import ops as fast_ops  # noqa: E402
