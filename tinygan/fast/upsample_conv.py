"""Nearest upsampling by 2 and a 3x3 convolution (stride 1, padding 1) as one fused op.

A generator that doubles its image with ``nn.Upsample(scale_factor=2)`` and then convolves
with ``nn.Conv2d(c, o, 3, padding=1)`` (:func:`tinygan.models.upsample_generator`, the
WGAN-GP CelebA generator) convolves an image of four copies of every pixel. The copies
make the convolution redundant: each output pixel sees only 2x2 distinct input pixels.

**The identity.** Along one axis, with u = upsample2(x) (u[r] = x[r // 2], zero outside)
and the 3x3 convolution's taps (w0, w1, w2) on that axis,

    y[p] = w0 u[p - 1] + w1 u[p] + w2 u[p + 1]

    phase 0, p = 2i:      y[2i]     = w0 x[i - 1] + (w1 + w2) x[i]
    phase 1, p = 2i + 1:  y[2i + 1] = (w0 + w1) x[i] + w2 x[i + 1]

(u[2i - 1] = x[i - 1], u[2i] = u[2i + 1] = x[i], u[2i + 2] = x[i + 1]; the zero padding of
u at p = -1 and p = 2H is the zero padding of x at i = -1 and i = H.) So each phase is a
2-tap convolution of x padded by 1, phase 0 on rows (i - 1, i) with kernel K_0 = (w0,
w1 + w2), phase 1 on rows (i, i + 1) with K_1 = (w0 + w1, w2). Both axes at once, the
output phase (a, b) in {0, 1}^2 is a 2x2 convolution of x with the outer sum of the two
axes' kernels, and the bias is added once per output pixel:

    y[n, o, 2i + a, 2j + b] = bias[o] + sum_{c, du, dv} K[o, c, a, du, b, dv]
                                            * x_pad[n, c, i + a + du, j + b + dv]
    K[o, c, a, du, b, dv]   = sum_{u, v} A[a, du, u] A[b, dv, v] w[o, c, u, v]

with A[0, 0] = (1, 0, 0), A[0, 1] = (0, 1, 1), A[1, 0] = (1, 1, 0), A[1, 1] = (0, 0, 1)
(which taps u each phase tap sums). x_pad rows i + a, i + a + 1 are x rows i + a - 1, i + a:
the window of a stride-1 2x2 im2col of x with padding 1 at position i + a. So, as the
sub-pixel identity of :mod:`tinygan.fast.conv`, all four phases are one matrix product:

    cols = im2col(x, kernel 2, stride 1, padding 1)            (N*(H+1)*(W+1), 4*C)
    P    = cols @ W,   W[(du, dv, c), (a, b, o)] = K[o, c, a, du, b, dv]
    y[n, o, 2i + a, 2j + b] = P[(n, i + a, j + b), (a, b, o)] + bias[o]   four strided copies

That is 16 multiply-adds per (low-resolution pixel, input channel, output channel) where
the composition does 36 (9 taps at four times the pixels), and neither the upsampled image
nor its 9-tap windows exist in memory: the windows are 4*C floats per low-resolution
pixel, against 36*C for the composition's. (Each phase uses H*W of the (H+1)*(W+1)
windows; the product computes the few extra rows at the border and drops them.) Measured
(``benchmarks/upsample_generator.py``, 2 shared cores, one run): seed 001's generator
(:func:`~tinygan.models.upsample_generator` at 64 px), forward + backward at batch 32, takes
409 ms fused against 1,111 ms with its layers one by one; PyTorch took 730 ms.

**Backward.** The adjoint of each step, in reverse: the output gradient is split into its
four phases (dP, zero where a phase drops a window), dcols = dP @ W^T is added back onto
x's pixels (col2im of a 2x2 kernel: four strided adds), dW = cols^T @ dP, and dw is the
adjoint of the tap sums (dw0 = dK_0[0] + dK_1[0], dw1 = dK_0[1] + dK_1[0], dw2 = dK_0[1] +
dK_1[1] along each axis). That first-order path runs on arrays and reuses the forward's
columns. Whenever a graph is recorded (``create_graph=True``: a gradient penalty through a
generator, a double backward), the backward is instead the plain composition's, built from
tinygan ops, so every order of gradient is the composition's:

    dL/dx = block-sum_2x2( conv_transpose2d(dL/dy, w, stride 1, padding 1) )
    dL/dw = dy_rows^T @ im2col(upsample2(x), 3, 1, 1) (reshaped),   dL/db = sum dL/dy

The tests (tests/test_upsample_conv.py) hold the fused op against the composition, first
and second order.

**Dispatch.** :func:`fused` is called by ``nn.Sequential.forward`` when the fast paths are
on: it gives the Sequential's layers with every ``Upsample(scale_factor=2)`` (nearest)
directly followed by a ``Conv2d`` of kernel 3, stride 1, padding 1 replaced by one
callable that runs this op with the Conv2d's parameters (the two layers stay registered as
they are, so ``state_dict``, the bridge to PyTorch and checkpoints are unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tinygan import nn, ops
from tinygan.autograd import Function, is_grad_enabled
from tinygan.conv import conv_transpose2d, im2col, im2col_array
from tinygan.extras.ops import upsample_nearest
from tinygan.fast.conv import interleave_phases
from tinygan.ops import matmul, reshape, transpose
from tinygan.tensor import Tensor


def _fold_taps(xp, w, axis: int):
    """The 3 taps (w0, w1, w2) on ``axis`` as the 2 phases' 2 taps: (w0, w1 + w2, w0 + w1,
    w2), index 2a + du on that axis (the matrix A of the module docstring).
    """
    w0, w1, w2 = (w[(slice(None),) * axis + (slice(u, u + 1),)] for u in range(3))
    return xp.concatenate([w0, w1 + w2, w0 + w1, w2], axis=axis)


def _unfold_taps(xp, dk, axis: int):
    """The adjoint of :func:`_fold_taps`: 4 phase taps on ``axis`` back to the 3 taps."""
    k0, k1, k2, k3 = (dk[(slice(None),) * axis + (slice(t, t + 1),)] for t in range(4))
    return xp.concatenate([k0 + k2, k1 + k2, k1 + k3], axis=axis)


def phase_weights(xp, weight):
    """W[(du, dv, c), (a, b, o)] = K[o, c, a, du, b, dv] from w (O, C, 3, 3): (4*C, 4*O)."""
    o, c = weight.shape[:2]
    k = _fold_taps(xp, _fold_taps(xp, weight, 2), 3)  # (O, C, (a, du), (b, dv))
    k = k.reshape(o, c, 2, 2, 2, 2)  # (o, c, a, du, b, dv)
    return k.transpose(3, 5, 1, 2, 4, 0).reshape(4 * c, 4 * o)


def weight_from_phases(xp, w_phases, c: int, o: int):
    """The adjoint of :func:`phase_weights`: dL/dW (4*C, 4*O) -> dL/dw (O, C, 3, 3)."""
    dk = w_phases.reshape(2, 2, c, 2, 2, o).transpose(5, 2, 3, 0, 4, 1)  # (o, c, a, du, b, dv)
    dk = dk.reshape(o, c, 4, 4)
    return xp.ascontiguousarray(_unfold_taps(xp, _unfold_taps(xp, dk, 2), 3))


def upsample_conv2d_array(xp, x, weight, bias=None, cols=None):
    """conv2d(upsample2(x), w, b, stride 1, padding 1) on arrays, by the phase identity.

    x (N, C, H, W), w (O, C, 3, 3), b (O,) or None -> (N, O, 2H, 2W), channels-last in
    memory like every convolution output here. ``cols`` (im2col of x, kernel 2, stride 1,
    padding 1) may be passed when the caller already has it.
    """
    n, c, h, w = x.shape
    o = weight.shape[0]
    if cols is None:
        cols = im2col_array(xp, x, (2, 2), (1, 1), (1, 1))  # (N*(H+1)*(W+1), 4*C)
    phases = xp.matmul(cols, phase_weights(xp, weight)).reshape(n, h + 1, w + 1, 2, 2, o)
    # y[n, o, 2i + a, 2j + b] = P[n, i + a, j + b, a, b, o] + bias[o]
    return interleave_phases(xp, phases, bias)


class UpsampleConv2d(Function):
    """y = conv2d(upsample_nearest(x, 2), w, b, stride 1, padding 1), as one op.

    Forward: :func:`upsample_conv2d_array` (the phase identity of the module docstring).
    Backward: first order on arrays with the forward's columns; the plain composition's
    gradient, built from tinygan ops, whenever a graph is recorded.
    """

    def forward(self, x, weight, bias=None):
        self.cols = im2col_array(self.xp, x, (2, 2), (1, 1), (1, 1))  # first-order dL/dw only
        return upsample_conv2d_array(self.xp, x, weight, bias, self.cols)

    def backward(self, grad_output):
        needs = self.needs_input_grad
        grads = [None] * len(self.inputs)
        if is_grad_enabled():
            grads[:2] = self._composition_backward(grad_output, needs)
        else:
            grads[:2] = self._phase_backward(grad_output.data, needs)
        if len(grads) == 3 and needs[2]:
            grads[2] = ops.sum(grad_output, axis=(0, 2, 3))
        return tuple(grads)

    def _composition_backward(self, grad_output: Tensor, needs) -> list[Tensor | None]:
        """The gradients of upsample-then-conv2d as the lesson's ops compute them."""
        x, weight = self.inputs[:2]
        n, c, h, w = x.shape
        o = weight.shape[0]
        gx = gw = None
        if needs[0]:  # conv2d's input gradient, then upsampling's (the sum of each 2x2 block)
            gu = conv_transpose2d(grad_output, weight, None, 1, 1)  # (N, C, 2H, 2W)
            gx = ops.sum(reshape(gu, (n, c, h, 2, w, 2)), axis=(3, 5))
        if needs[1]:
            cols = im2col(upsample_nearest(x, (2, 2)), 3, 1, 1)  # (N*2H*2W, 9*C)
            gy_rows = reshape(transpose(grad_output, (0, 2, 3, 1)), (-1, o))
            gw_rows = matmul(transpose(gy_rows, None), cols)  # (O, 9*C)
            gw = transpose(reshape(gw_rows, (o, 3, 3, c)), (0, 3, 1, 2))
        return [gx, gw]

    def _phase_backward(self, gy, needs) -> list[Tensor | None]:
        """First order on arrays: the adjoint of each step of the phase identity."""
        xp = self.xp
        x, weight = self.inputs[:2]
        n, c, h, w = x.shape
        o = weight.shape[0]
        d_phases = xp.zeros((n, h + 1, w + 1, 2, 2, o), dtype=gy.dtype)
        gy6 = gy.reshape(n, o, h, 2, w, 2)  # (n, o, i, a, j, b), a view
        for a in range(2):
            for b in range(2):
                d_phases[:, a : a + h, b : b + w, a, b, :] = gy6[:, :, :, a, :, b].transpose(
                    0, 2, 3, 1
                )
        d_rows = d_phases.reshape(-1, 4 * o)
        gx = gw = None
        if needs[0]:
            w_phases = phase_weights(xp, weight.data)
            d_cols = xp.matmul(d_rows, w_phases.T).reshape(n, h + 1, w + 1, 2, 2, c)
            # window (q, p) tap (du, dv) reads x pixel (q - 1 + du, p - 1 + dv): col2im
            gx_cl = d_cols[:, 1:, 1:, 0, 0, :] + d_cols[:, 1:, :w, 0, 1, :]
            gx_cl += d_cols[:, :h, 1:, 1, 0, :]
            gx_cl += d_cols[:, :h, :w, 1, 1, :]
            gx = Tensor(gx_cl.transpose(0, 3, 1, 2))
        if needs[1]:
            gw = Tensor(weight_from_phases(xp, xp.matmul(self.cols.T, d_rows), c, o))
        return [gx, gw]


def upsample_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """conv2d(upsample_nearest(x, (2, 2)), weight, bias, stride=1, padding=1), fused.

    Args:
        x: (N, C, H, W).
        weight: (O, C, 3, 3).
        bias: (O,) or None.

    Returns:
        (N, O, 2H, 2W).
    """
    if x.ndim != 4 or weight.ndim != 4 or weight.shape[1:] != (x.shape[1], 3, 3):
        raise ValueError(
            f"upsample_conv2d: expected x (N, C, H, W) and weight (O, C, 3, 3), got shapes "
            f"{x.shape} and {weight.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"upsample_conv2d: bias must have shape ({weight.shape[0]},)")
    return UpsampleConv2d()(x, weight, *([] if bias is None else [bias]))


def is_upsample_conv(first: Any, second: Any) -> bool:
    """Whether two layers are exactly Upsample(scale_factor=2, nearest) then Conv2d(kernel 3,
    stride 1, padding 1): the pattern the fused op replaces (subclasses are left alone,
    since they may change ``forward``).
    """
    if type(first) is not nn.Upsample or type(second) is not nn.Conv2d:
        return False
    scale = first.scale_factor
    scale = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
    return (
        first.size is None
        and first.mode == "nearest"
        and scale == (2, 2)
        and (second.kernel_size, second.stride, second.padding) == ((3, 3), (1, 1), (1, 1))
    )


class _FusedPair:
    """One Upsample(2) + Conv2d(3, 1, 1) pair of a Sequential, called as one layer."""

    def __init__(self, upsample: nn.Upsample, conv: nn.Conv2d) -> None:
        self.upsample, self.conv = upsample, conv

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.conv.in_channels:
            return self.conv(self.upsample(x))  # the layers raise their own clear errors
        for layer in (self.upsample, self.conv):  # as Module.__call__ would (spectral norm)
            for hook in layer._forward_pre_hooks:
                hook(layer)
        return upsample_conv2d(x, self.conv.weight, self.conv.bias)


def fused(sequential: Iterable[Any]) -> list[Callable[[Tensor], Tensor]]:
    """The layers of a Sequential, each Upsample(2) + 3x3 stride-1 padding-1 Conv2d pair
    replaced by one callable running :class:`UpsampleConv2d` with the Conv2d's parameters.
    """
    layers, out, i = list(sequential), [], 0
    while i < len(layers):
        if i + 1 < len(layers) and is_upsample_conv(layers[i], layers[i + 1]):
            out.append(_FusedPair(layers[i], layers[i + 1]))
            i += 2
        else:
            out.append(layers[i])
            i += 1
    return out
