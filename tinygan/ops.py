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

from tinygan.autograd import Function, is_grad_enabled
from tinygan.backend import array_module, normalize_device
from tinygan.backend import scatter_add as scatter_add_array
from tinygan.backend import to_device as _move_array
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


class Div(Function):
    """y = a / b.  dL/da = dL/dy / b,  dL/db = -dL/dy * a / b^2 = -dL/dy * y / b."""

    def forward(self, a, b):
        return a / b

    def backward(self, grad_output):
        a, b = self.inputs
        ga = sum_to(grad_output / b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-(grad_output * self.output) / b, b.shape) if self.needs_input_grad[1] else None
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


def div(a: Any, b: Any) -> Tensor:
    """Elementwise ``a / b`` with broadcasting."""
    return _binary(Div, "div", a, b)


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

    Two layouts are chosen for speed, each the same numbers: an outer product (one column
    times one row, e.g. a batch of one feature into a Linear layer) is an elementwise
    product, which BLAS would run far slower; and when b is a transposed view (a Linear
    layer's W^T), dL/db is computed as (dL/dy^T @ a)^T, so that dL/dW comes out row-major,
    the layout in which the optimizer reads it without a copy.
    """

    def forward(self, a, b):
        if a.shape[-1] == 1:  # (..., m, 1) @ (..., 1, n): every entry is one product
            return a * b
        return self.xp.matmul(a, b)

    def backward(self, grad_output):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(matmul(grad_output, swap_last(b)), a.shape)
        if self.needs_input_grad[1]:
            if a.ndim == b.ndim == 2 and _is_transposed_view(b.data):
                gb = swap_last(matmul(swap_last(grad_output), a))  # (g^T a)^T = a^T g
            else:
                gb = sum_to(matmul(swap_last(a), grad_output), b.shape)
        return ga, gb


def _is_transposed_view(array: Any) -> bool:
    """True for a column-major (Fortran-ordered) matrix that is not also row-major."""
    return array.flags.f_contiguous and not array.flags.c_contiguous


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
    return MatMul()(a, b)


# ---------------------------------------------------------------------- unary math


class Neg(Function):
    """y = -x.  dL/dx = -dL/dy."""

    def forward(self, x):
        return -x

    def backward(self, grad_output):
        return -grad_output


class Exp(Function):
    """y = e^x.  dL/dx = dL/dy * y."""

    def forward(self, x):
        return self.xp.exp(x)

    def backward(self, grad_output):
        return grad_output * self.output


class Log(Function):
    """y = ln x.  dL/dx = dL/dy / x."""

    def forward(self, x):
        return self.xp.log(x)

    def backward(self, grad_output):
        return grad_output / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x).  dL/dx = dL/dy / (2 y)."""

    def forward(self, x):
        return self.xp.sqrt(x)

    def backward(self, grad_output):
        return grad_output / (self.output * 2.0)


class Abs(Function):
    """y = |x|.  dL/dx = dL/dy * sign(x); sign(x) is piecewise constant, so kept as a mask."""

    def forward(self, x):
        return self.xp.abs(x)

    def backward(self, grad_output):
        return grad_output * _constant(self.xp.sign(self.inputs[0].data), grad_output)


class Clip(Function):
    """y = min(max(x, lo), hi).  dL/dx = dL/dy where lo <= x <= hi, else 0 (a constant mask)."""

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return self.xp.clip(x, self.lo, self.hi)

    def backward(self, grad_output):
        x = self.inputs[0].data
        inside = self.xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        return grad_output * _constant(inside, grad_output)


def neg(x: Tensor) -> Tensor:
    """``-x``."""
    return Neg()(x)


def exp(x: Tensor) -> Tensor:
    """Elementwise e^x."""
    return Exp()(x)


def log(x: Tensor) -> Tensor:
    """Elementwise natural logarithm."""
    return Log()(x)


def sqrt(x: Tensor) -> Tensor:
    """Elementwise square root."""
    return Sqrt()(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001 (NumPy's name)
    """Elementwise absolute value."""
    return Abs()(x)


def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    """Clamp every element into [min, max] (either bound may be None)."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    # Python floats: a NumPy float64 bound would make np.clip upcast float32 data.
    return Clip(None if min is None else float(min), None if max is None else float(max))(x)


# ---------------------------------------------------------------------- activations


class ReLU(Function):
    """y = max(x, 0).  dL/dx = dL/dy * [x > 0]; the mask is constant almost everywhere."""

    def forward(self, x):
        return self.xp.maximum(x, 0)

    def backward(self, grad_output):
        return grad_output * _constant(self.inputs[0].data > 0, grad_output)


class LeakyReLU(Function):
    """y = x if x > 0 else a*x.  dL/dx = dL/dy * (1 if x > 0 else a), a constant mask.

    For 0 <= a <= 1, y = max(x, a*x): one ``maximum`` is over ten times faster than
    ``where`` on NumPy. Other slopes multiply by the mask (1 if x > 0 else a).

    Backward has two paths, like every fused op: when a graph is recorded
    (``create_graph=True``), dL/dy times the mask as a tinygan Mul, differentiable again (the
    mask is constant); when none is (plain training), the same product on arrays, written
    into the mask's buffer, which saves the Mul op and two temporary arrays. The tests hold
    the two against each other.
    """

    def __init__(self, negative_slope: float) -> None:
        self.slope = negative_slope

    def forward(self, x):
        if 0.0 <= self.slope <= 1.0:
            y = x * self.slope
            return self.xp.maximum(x, y, out=y)
        return x * self._slopes(x)

    def _slopes(self, x):
        """A new array with the local slope of every element: 1 where x > 0, a elsewhere."""
        slopes = (x > 0).astype(x.dtype)
        slopes *= 1.0 - self.slope
        slopes += self.slope
        return slopes

    def backward(self, grad_output):
        slopes = self._slopes(self.inputs[0].data)
        if not is_grad_enabled():  # first order: the product in place, on arrays
            slopes *= grad_output.data
            return Tensor(slopes)
        return grad_output * _constant(slopes, grad_output)


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


class Max(Function):
    """y = max of x over ``axes``.

    dL/dx = dL/dy at the positions that hold the maximum, 0 elsewhere (ties share it
    equally). The position mask is piecewise constant, so it is kept as a raw array.
    """

    def __init__(self, axes: tuple[int, ...], keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.max(axis=self.axes, keepdims=self.keepdims)

    def backward(self, grad_output):
        x = self.inputs[0].data
        kept = _kept_shape(x.shape, self.axes)
        is_max = (x == self.output.data.reshape(kept)).astype(x.dtype)
        share = is_max / is_max.sum(axis=self.axes, keepdims=True)
        return broadcast_to(reshape(grad_output, kept), x.shape) * _constant(share, grad_output)


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


def max(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis`` (None: all axes)."""
    if x.size == 0:
        raise ValueError("max: the tensor is empty")
    return Max(_normalize_axes(axis, x.ndim), keepdims)(x)


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


class GetItem(Function):
    """y = x[index].  dL/dx = zeros with dL/dy added at ``index`` (see ScatterAdd)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, grad_output):
        return scatter_add(grad_output, self.index, self.inputs[0].shape)


class ScatterAdd(Function):
    """y = zeros(shape) with y[index] += g (repeated indices add up).  dL/dg = dL/dy[index].

    The adjoint of GetItem, so each is the other's backward.
    """

    def __init__(self, index: Any, shape: tuple[int, ...]) -> None:
        self.index, self.shape = index, shape

    def forward(self, g):
        out = self.xp.zeros(self.shape, dtype=g.dtype)
        if _is_basic_index(self.index):
            out[self.index] = g  # slices and integers never repeat an element
        else:
            scatter_add_array(self.xp, out, self.index, g)
        return out

    def backward(self, grad_output):
        return getitem(grad_output, self.index)


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice, type(None), type(Ellipsis))) for p in parts)


class Concat(Function):
    """y = concatenation of the inputs along ``axis``.  Each input gets its slice of dL/dy."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *arrays):
        return self.xp.concatenate(arrays, axis=self.axis)

    def backward(self, grad_output):
        grads, start = [], 0
        for t, needed in zip(self.inputs, self.needs_input_grad):
            index = [slice(None)] * grad_output.ndim
            index[self.axis] = slice(start, start + t.shape[self.axis])
            grads.append(getitem(grad_output, tuple(index)) if needed else None)
            start += t.shape[self.axis]
        return tuple(grads)


class Pad(Function):
    """y = x surrounded by ``pad`` constant values on the last two axes (H and W).

    dL/dx = the centre of dL/dy (the padding is constant).
    """

    def __init__(self, pad: tuple[int, int], value: float) -> None:
        self.pad, self.value = pad, value

    def forward(self, x):
        ph, pw = self.pad
        width = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
        return self.xp.pad(x, width, constant_values=self.value)

    def backward(self, grad_output):
        ph, pw = self.pad
        h, w = grad_output.shape[-2:]
        return grad_output[..., ph : h - ph, pw : w - pw]


class Cast(Function):
    """y = x converted to another float dtype.  dL/dx = dL/dy converted back."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, grad_output):
        return cast(grad_output, self.inputs[0].dtype)


class ToDevice(Function):
    """y = x copied to another device.  dL/dx = dL/dy copied back."""

    def __init__(self, device: str) -> None:
        self.device = device

    def forward(self, x):
        return _move_array(x, self.device)

    def backward(self, grad_output):
        return to_device(grad_output, self.inputs[0].device)


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


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` with slices, integers, None, Ellipsis, integer or boolean arrays."""
    index = _raw_index(index, x)
    try:
        return GetItem(index)(x)
    except IndexError as err:
        raise IndexError(f"getitem: invalid index for a tensor of shape {x.shape}: {err}") from None


def scatter_add(g: Tensor, index: Any, shape: tuple[int, ...]) -> Tensor:
    """zeros(shape) with ``g`` added at ``index`` (a raw index, as GetItem holds it)."""
    return ScatterAdd(index, tuple(shape))(g)


def _raw_index(index: Any, x: Tensor) -> Any:
    """Tensors become integer arrays; boolean masks become integer arrays (for scatter)."""
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for p in parts:
        if isinstance(p, Tensor):
            p = p.data.astype(np.int64)
        if isinstance(p, list):
            p = x.xp.asarray(p)
        if hasattr(p, "dtype") and p.dtype == bool:
            out.extend(p.nonzero())
        else:
            out.append(p)
    return out[0] if len(out) == 1 and not isinstance(index, tuple) else tuple(out)


def concat(tensors: list[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    ndim = tensors[0].ndim
    axis = _normalize_axes(axis, ndim)[0]
    for t in tensors[1:]:
        if t.ndim != ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape)) if i != axis
        ):
            raise ValueError(
                f"concat: shapes {tensors[0].shape} and {t.shape} differ outside axis {axis}"
            )
    return Concat(axis)(*tensors)


def stack(tensors: list[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shape = tensors[0].shape
    for t in tensors[1:]:
        if t.shape != shape:
            raise ValueError(f"stack: shapes {shape} and {t.shape} differ")
    axis = axis % (len(shape) + 1)
    new_shape = shape[:axis] + (1,) + shape[axis:]
    return concat([reshape(t, new_shape) for t in tensors], axis)


def view(x: Tensor, shape: Any) -> Tensor:
    """``x`` with a new shape, sharing its memory: PyTorch's ``Tensor.view``.

    The same op as :func:`reshape` (one entry may be -1), but it refuses to copy. A
    contiguous array can always be viewed in another shape; a transposed or strided one
    often cannot, and then ``reshape`` silently copies while ``view`` raises, as PyTorch's
    does. Writing into ``x.data`` in place is then seen through the view too.
    """
    y = reshape(x, shape)
    if y.size and not x.xp.may_share_memory(y.data, x.data):  # reshape had to copy
        raise RuntimeError(
            f"view: a tensor of shape {x.shape} with strides {x.data.strides} cannot be "
            f"viewed as {y.shape} without copying (it is transposed or sliced); use "
            ".reshape(...) instead, which copies"
        )
    return y


def upsample_nearest(x: Tensor, scale: tuple[int, int]) -> Tensor:
    """Nearest-neighbour upsampling of the last two axes (H, W) by whole factors (sh, sw).

        y[..., i, j] = x[..., i // sh, j // sw]     y: (..., H*sh, W*sw)

    Every pixel becomes an sh x sw block of copies of itself. Built from three shape ops:
    x is reshaped to (..., H, 1, W, 1), broadcast to (..., H, sh, W, sw) and reshaped to
    (..., H*sh, W*sw). Its gradient comes from theirs: the output gradient is reshaped back
    to (..., H, sh, W, sw) and summed to (..., H, 1, W, 1) by ``sum_to``, which is the sum
    over each sh x sw block (a copied value gets the sum of its copies' gradients). That
    block sum is again made of ops, so the second derivative is exact as well.
    """
    sh, sw = scale
    if x.ndim < 2 or sh < 1 or sw < 1:
        raise ValueError(
            f"upsample_nearest: needs a tensor (..., H, W) and whole factors >= 1, got shape "
            f"{x.shape} and factors {scale}"
        )
    *lead, h, w = x.shape
    blocks = broadcast_to(reshape(x, (*lead, h, 1, w, 1)), (*lead, h, sh, w, sw))
    return reshape(blocks, (*lead, h * sh, w * sw))


def pad2d(x: Tensor, padding: tuple[int, int], value: float = 0.0) -> Tensor:
    """Pad the last two axes by ``padding = (ph, pw)`` on each side with ``value``."""
    if padding == (0, 0):
        return x
    return Pad(tuple(padding), float(value))(x)


def cast(x: Tensor, dtype: Any) -> Tensor:
    """``x`` as float32 or float64 (differentiable)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"cast: tensors hold float32 or float64, not {dtype}")
    return x if x.dtype == dtype else Cast(dtype)(x)


def to_device(x: Tensor, device: str) -> Tensor:
    """``x`` on ``device`` ("cpu" or "cuda"), differentiable across the move."""
    target = normalize_device(device)
    if x.device.split(":")[0] == target:
        return x
    return ToDevice(target)(x)


# ------------------------------------------------------- log-sum-exp, softmax, cross-entropy


def logsumexp_array(x: Any, axes: tuple[int, ...], keepdims: bool = False) -> Any:
    """log sum exp(x) over ``axes`` of a raw NumPy/CuPy array, shifted by the maximum.

    For every constant m, log sum_k e^(x_k) = m + log sum_k e^(x_k - m). With m = max_k x_k
    every exponent is <= 0, so nothing overflows, and the largest term is e^0 = 1, so the
    sum is at least 1 and its log never meets log 0: [1000, -1000] gives 1000 exactly, where
    the naive formula gives inf. Forward passes of Functions (LogSumExp, the semi-supervised
    GAN loss) compute with it.
    """
    xp = array_module(x)
    m = x.max(axis=axes, keepdims=True)
    y = m + xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True))
    return y if keepdims else y.squeeze(axis=axes)


class LogSumExp(Function):
    """y = log sum_k e^(x_k) over ``axes``, computed with the max shift (logsumexp_array).

    dL/dx_k = dL/dy * e^(x_k) / sum_j e^(x_j) = dL/dy * softmax(x)_k = dL/dy * e^(x_k - y).

    e^(x - y) is built from the output y (held weakly, so no cycle), which keeps the
    gradient differentiable: its own derivative runs back through y into this op. Since
    y >= max x, every x_k - y <= 0 and the exponential never overflows either.
    """

    def __init__(self, axes: tuple[int, ...], keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return logsumexp_array(x, self.axes, self.keepdims)

    def backward(self, grad_output):
        (x,) = self.inputs
        kept = _kept_shape(x.shape, self.axes)
        softmax_x = exp(x - reshape(self.output, kept))
        return broadcast_to(reshape(grad_output, kept), x.shape) * softmax_x


def logsumexp(x: Tensor, axis: Any = -1, keepdims: bool = False) -> Tensor:
    """log sum exp(x) over ``axis`` (default the last; None: all axes), stable for any x.

    Its gradient is the softmax over ``axis``; see :class:`LogSumExp`.
    """
    axes = _normalize_axes(axis, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"logsumexp: axis {axis} of a tensor of shape {x.shape} is empty")
    return LogSumExp(axes, keepdims)(x)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log softmax(x)_k = x_k - logsumexp(x) along ``axis`` (default the last).

    Computed as (x - m) - logsumexp(x - m) with m = max x along ``axis``. softmax ignores
    a shift of its inputs, so m is a constant here (no gradient flows through it), and
    shifting first avoids subtracting two large, nearly equal numbers: in float32,
    -1000 - logsumexp([-1000, -1000, -1000]) would lose five digits of -log 3.
    log_softmax([1000, -1000]) = [0, -2000] exactly. Gradient:
    dL/dx_k = dL/dy_k - softmax(x)_k * sum_j dL/dy_j.
    """
    axis = _normalize_axes(axis, x.ndim)
    shifted = x - _constant(x.data.max(axis=axis, keepdims=True), x)
    return shifted - logsumexp(shifted, axis, keepdims=True)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """e^(x_k) / sum_j e^(x_j) along ``axis`` (default the last), as exp(log_softmax(x))."""
    return exp(log_softmax(x, axis))


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean cross-entropy of integer class targets under softmax(logits).

        L = -(1/N) sum_i log softmax(logits_i)[t_i]
          =  (1/N) sum_i (logsumexp(logits_i) - logits_i[t_i])

    The log-probabilities come from :func:`log_softmax`, never from log(softmax), so a
    confidently wrong logit of 1000 costs 1000 (not inf) and its gradient stays finite.
    Gradient: dL/dlogits_ik = (softmax(logits_i)_k - [k = t_i]) / N, "prediction minus
    one-hot target, over N".

    Args:
        logits: (N, K) raw scores for K classes.
        targets: N class indices in 0..K-1: an integer NumPy/CuPy array or a sequence of
            ints (not a Tensor: tensors hold floats).

    Returns:
        A scalar tensor.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"cross_entropy: logits must be a Tensor, got {type(logits).__name__}")
    if logits.ndim != 2 or 0 in logits.shape:
        raise ValueError(
            f"cross_entropy: logits must have shape (N, K) with N, K >= 1, got {logits.shape}"
        )
    if isinstance(targets, Tensor):
        raise TypeError("cross_entropy: targets must be an integer array, not a (float) Tensor")
    n, k = logits.shape
    targets = logits.xp.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integers, got dtype {targets.dtype}")
    if targets.shape != (n,):
        raise ValueError(
            f"cross_entropy: expected {n} targets (one per row of logits {logits.shape}), "
            f"got shape {targets.shape}"
        )
    if int(targets.min()) < 0 or int(targets.max()) >= k:
        raise ValueError(
            f"cross_entropy: targets must be class indices in 0..{k - 1}, got values from "
            f"{int(targets.min())} to {int(targets.max())}"
        )
    picked = getitem(log_softmax(logits, axis=1), (logits.xp.arange(n), targets))  # (N,)
    return -mean(picked)
