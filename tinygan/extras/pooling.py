"""Pooling, which the main demo does not use: im2col on one channel at a time.

``max_pool2d`` and ``avg_pool2d`` unfold every channel's windows with
:func:`tinygan.conv.im2col` and reduce each row, so their gradients (a max-pool's goes to
each window's largest input) come from im2col's and the reduction's backward passes.
"""

from __future__ import annotations

from tinygan import ops
from tinygan.conv import IntPair, as_pair, conv_output_size, im2col
from tinygan.ops import mean, pad2d, reshape
from tinygan.tensor import Tensor


def _pool_windows(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, fill: float, op: str
):
    """Windows of every channel separately: (N*C*OH*OW, KH*KW), plus the output shape."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    kernel = as_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else as_pair(stride, "stride")
    padding = as_pair(padding, "padding")
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    n, c, h, w = x.shape
    padded = pad2d(reshape(x, (n * c, 1, h, w)), padding, fill)
    cols = im2col(padded, kernel, stride, 0)
    oh = conv_output_size(h, kernel[0], stride[0], padding[0])
    ow = conv_output_size(w, kernel[1], stride[1], padding[1])
    return cols, (n, c, oh, ow)


def max_pool2d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> Tensor:
    """Maximum over each window (stride defaults to the kernel size; padding is -inf)."""
    cols, shape = _pool_windows(x, kernel_size, stride, padding, float("-inf"), "max_pool2d")
    return reshape(ops.max(cols, axis=1), shape)


def avg_pool2d(
    x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> Tensor:
    """Mean over each window (stride defaults to the kernel size; zero padding counted)."""
    cols, shape = _pool_windows(x, kernel_size, stride, padding, 0.0, "avg_pool2d")
    return reshape(mean(cols, axis=1), shape)
