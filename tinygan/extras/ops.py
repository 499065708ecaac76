"""The ops the main demo does not use: division, exp and log, indexing, concatenation,
padding, upsampling, log-softmax and cross-entropy, abs, clip, max, sqrt, and the moves
between devices.

They follow the op contract of :mod:`tinygan.ops` (``forward`` on arrays, ``backward`` on
Tensors, the derivative in the docstring) and are part of its namespace: ``ops.getitem``,
``F.cross_entropy``. Read :mod:`tinygan.ops` first; nothing here is new in kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.autograd import Function
from tinygan.backend import array_module, normalize_device, to_numpy
from tinygan.backend import scatter_add as scatter_add_array
from tinygan.backend import to_device as _move_array
from tinygan.ops import (
    _binary,
    _constant,
    _kept_shape,
    _normalize_axes,
    broadcast_to,
    mean,
    reshape,
    sum_to,
)  # fmt: skip
from tinygan.tensor import Tensor


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


def max(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis`` (None: all axes)."""
    if x.size == 0:
        raise ValueError("max: the tensor is empty")
    return Max(_normalize_axes(axis, x.ndim), keepdims)(x)


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
    targets = array_module(targets).asarray(targets)  # checked where they are (see min_max)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integers, got dtype {targets.dtype}")
    if targets.shape != (n,):
        raise ValueError(
            f"cross_entropy: expected {n} targets (one per row of logits {logits.shape}), "
            f"got shape {targets.shape}"
        )
    low, high = min_max(targets)
    if low < 0 or high >= k:
        raise ValueError(
            f"cross_entropy: targets must be class indices in 0..{k - 1}, got values from "
            f"{low} to {high}"
        )
    targets = logits.xp.asarray(targets)
    picked = getitem(log_softmax(logits, axis=1), (logits.xp.arange(n), targets))  # (N,)
    return -mean(picked)


def min_max(indices: Any) -> tuple[int, int]:
    """The smallest and the largest of a non-empty integer array, as Python ints.

    For a check of indices before they are used. On a GPU, reading a number back makes the
    host wait for the device, so both come back together, in one transfer; host indices
    (a label batch) are checked before they are copied to the device, with no wait at all.
    """
    xp = array_module(indices)
    low, high = to_numpy(xp.stack([indices.min(), indices.max()])).tolist()
    return int(low), int(high)


class Div(Function):
    """y = a / b.  dL/da = dL/dy / b,  dL/db = -dL/dy * a / b^2 = -dL/dy * y / b."""

    def forward(self, a, b):
        return a / b

    def backward(self, grad_output):
        a, b = self.inputs
        ga = sum_to(grad_output / b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-(grad_output * self.output) / b, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def div(a: Any, b: Any) -> Tensor:
    """Elementwise ``a / b`` with broadcasting."""
    return _binary(Div, "div", a, b)


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


def exp(x: Tensor) -> Tensor:
    """Elementwise e^x."""
    return Exp()(x)


def log(x: Tensor) -> Tensor:
    """Elementwise natural logarithm."""
    return Log()(x)


class ToDevice(Function):
    """y = x copied to another device.  dL/dx = dL/dy copied back."""

    def __init__(self, device: str) -> None:
        self.device = device

    def forward(self, x):
        return _move_array(x, self.device)

    def backward(self, grad_output):
        return to_device(grad_output, self.inputs[0].device)


def to_device(x: Tensor, device: str) -> Tensor:
    """``x`` on ``device`` ("cpu" or "cuda"), differentiable across the move."""
    target = normalize_device(device)
    if x.device.split(":")[0] == target:
        return x
    return ToDevice(target)(x)
