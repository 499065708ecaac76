"""Fast paths of DCGAN's layer (kernel 4, stride 2, padding 1), nearly every DCGAN's shape.

col2im's scatter-add (16 strided adds, one per kernel offset) is the slow part of such a
transposed convolution, and the input gradient of a convolution of that shape is the same
transposed convolution. The sub-pixel identity (:func:`sub_pixel_conv_transpose2d`)
computes it with no scatter at all: one stride-1 2x2 im2col, one matrix product, four
strided copies. Two fused ops, each a Function with a differentiable backward built from
the lesson functions of :mod:`tinygan.conv`, run DCGAN's layer:

* :class:`SubPixelConvTranspose2d`, the transposed convolution by the sub-pixel identity
  (a generator's upsampling layer), where that moves less memory than col2im;
* :class:`StridedConv2d`, the convolution with the bias added to the product in place,
  whose input gradient is a transposed convolution (by the sub-pixel identity where it
  pays) and whose first-order weight gradient reuses the forward's columns.

The tests hold both against the im2col/col2im composition, first and second order.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from tinygan import ops
from tinygan.autograd import Function, is_grad_enabled
from tinygan.conv import conv_output_size, conv_transpose2d, im2col, im2col_array
from tinygan.ops import matmul, reshape, transpose
from tinygan.tensor import Tensor


def is_dcgan_layer(kernel, stride, padding) -> bool:
    """Kernel 4, stride 2, padding 1 (each axis): DCGAN's layer, which has fast paths."""
    return tuple(kernel) == (4, 4) and tuple(stride) == (2, 2) and tuple(padding) == (1, 1)


def sub_pixel_pays(c_in: int, c_out: int, kernel, stride, padding, output_padding) -> bool:
    """Whether conv_transpose2d from ``c_in`` to ``c_out`` channels takes the sub-pixel path.

    The identity holds for DCGAN's layer without output padding. It pays when its columns
    (4*C_in floats per input pixel) are smaller than those col2im would add up (16*C_out):
    DCGAN's 128 -> 64 channels, not its last layer's 64 -> 1.
    """
    return (
        is_dcgan_layer(kernel, stride, padding)
        and tuple(output_padding) == (0, 0)
        and (c_in < 4 * c_out)
    )


def sub_pixel_conv_transpose2d(xp, x, weight, bias=None):
    """conv_transpose2d(x, w) for kernel 4, stride 2, padding 1, on arrays, without col2im.

    Along each axis, output pixel 2a + r of such a transposed convolution receives exactly
    two taps: input rows a - 1 and a (kernel rows 3 and 1) when r = 0, rows a and a + 1
    (kernel rows 2 and 0) when r = 1. So each of the four phases (r, s) of the output is a
    stride-1 2x2 convolution of x padded by 1, and the four together are one matrix product
    (Shi et al., 2016, "Is the deconvolution layer the same as a convolutional layer?")::

        cols = im2col(x, kernel 2, stride 1, padding 1)          (N*(H+1)*(W+1), 4*C_in)
        P    = cols @ W,   W[(du, dv, c), (r, s, o)] = w[c, o, 3 - r - 2du, 3 - s - 2dv]
        y[n, o, 2a + r, 2b + s] = P[(n, a + r, b + s), (r, s, o)]      four strided copies

    Window (q, p) covers input rows q - 1, q and columns p - 1, p; its du = 0 row is the
    input row a + r - 1. Each phase uses H*W of the (H+1)*(W+1) windows; the copies add
    the bias when there is one. Returns (N, C_out, 2H, 2W), channels-last in memory like
    every convolution output here.
    """
    n, c_in, h, w = x.shape
    c_out = weight.shape[1]
    cols = im2col_array(xp, x, (2, 2), (1, 1), (1, 1))
    # w[c, o, 3 - u', 3 - v'] with u' = 2du + r, v' = 2dv + s: flip, split, regroup.
    flipped = weight[:, :, ::-1, ::-1].reshape(c_in, c_out, 2, 2, 2, 2)  # (c, o, du, r, dv, s)
    w_phases = flipped.transpose(2, 4, 0, 3, 5, 1).reshape(4 * c_in, 4 * c_out)
    phases = xp.matmul(cols, w_phases).reshape(n, h + 1, w + 1, 2, 2, c_out)
    return interleave_phases(xp, phases, bias)


def interleave_phases(xp: ModuleType, phases: Any, bias: Any = None) -> Any:
    """The image whose pixel (2a + r, 2b + s) is phase (r, s)'s window (a + r, b + s).

    phases (N, H+1, W+1, 2, 2, C), the product of both sub-pixel identities (this one and
    :mod:`tinygan.fast.upsample_conv`'s) -> (N, C, 2H, 2W), channels-last in memory, plus
    ``bias`` (C,) when given: four strided copies.
    """
    n, h, w, c = phases.shape[0], phases.shape[1] - 1, phases.shape[2] - 1, phases.shape[5]
    y = xp.empty((n, h, 2, w, 2, c), dtype=phases.dtype)  # rows (a, r), columns (b, s)
    for r in range(2):
        for s in range(2):
            phase = phases[:, r : r + h, s : s + w, r, s, :]
            if bias is None:
                y[:, :, r, :, s, :] = phase
            else:
                xp.add(phase, bias, out=y[:, :, r, :, s, :])
    return y.reshape(n, 2 * h, 2 * w, c).transpose(0, 3, 1, 2)


class SubPixelConvTranspose2d(Function):
    """y = conv_transpose2d(x, w) + b for kernel 4, stride 2, padding 1 (a fused op).

    Forward: :func:`sub_pixel_conv_transpose2d`. Backward, the adjoint of a
    transposed convolution, which is a convolution: with cols = im2col(dL/dy, 4, 2, 1),

        dL/dx = cols @ W^T (reshaped),   dL/dw = x_rows^T @ cols (reshaped),
        dL/db = dL/dy summed over N, H, W

    (W, x_rows as in conv_transpose2d), built from tinygan ops, so it is differentiable
    again, and the same whether or not a graph is recorded.
    """

    def forward(self, x, weight, bias=None):
        return sub_pixel_conv_transpose2d(self.xp, x, weight, bias)

    def backward(self, grad_output):
        x, weight = self.inputs[:2]
        n, c_in, h, w = x.shape
        c_out = weight.shape[1]
        needs = self.needs_input_grad
        grads = [None] * len(self.inputs)
        if needs[0] or needs[1]:
            cols = im2col(grad_output, 4, 2, 1)  # (N*H*W, 16*C_out)
        if needs[0]:
            w_rows = reshape(transpose(weight, (0, 2, 3, 1)), (c_in, 16 * c_out))
            gx_rows = matmul(cols, transpose(w_rows, None))  # (N*H*W, C_in)
            grads[0] = transpose(reshape(gx_rows, (n, h, w, c_in)), (0, 3, 1, 2))
        if needs[1]:
            x_rows = reshape(transpose(x, (0, 2, 3, 1)), (n * h * w, c_in))
            gw_rows = matmul(transpose(x_rows, None), cols)  # (C_in, 16*C_out)
            grads[1] = transpose(reshape(gw_rows, (c_in, 4, 4, c_out)), (0, 3, 1, 2))
        if len(grads) == 3 and needs[2]:
            grads[2] = ops.sum(grad_output, axis=(0, 2, 3))
        return tuple(grads)


class StridedConv2d(Function):
    """y = conv2d(x, w, stride, padding) + b, for kernel 4, stride 2, padding 1 (a fused op).

    Forward: im2col, one matrix product, the bias added to its rows in place. Backward:

        dL/dx = conv_transpose2d(dL/dy, w)   (the adjoint; sub-pixel where that pays)
        dL/dw = dy_rows^T @ cols (reshaped),   dL/db = dL/dy summed over N, H, W

    with cols = im2col(x) and dy_rows = dL/dy as (N*OH*OW, O) rows. Two paths compute
    dL/dw, like every fused op: when a graph is recorded, cols is rebuilt with im2col
    from x, a tinygan op, so the gradient is differentiable again; when none is (plain
    training), the forward's cols (kept for that use only) and one matrix product on
    arrays. The tests hold the two against each other.
    """

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        n, _, h, w = x.shape
        o, c, kh, kw = weight.shape
        oh = conv_output_size(h, kh, self.stride[0], self.padding[0])
        ow = conv_output_size(w, kw, self.stride[1], self.padding[1])
        self.cols = im2col_array(self.xp, x, (kh, kw), self.stride, self.padding)
        w_rows = weight.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)
        rows = self.xp.matmul(self.cols, w_rows.T)  # (N*OH*OW, O)
        if bias is not None:
            rows += bias
        return rows.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)

    def backward(self, grad_output):
        x, weight = self.inputs[:2]
        o, c, kh, kw = weight.shape
        needs = self.needs_input_grad
        grads = [None] * len(self.inputs)
        if needs[0]:
            output_padding = _gradient_output_padding(x, weight, self.stride, self.padding)
            grads[0] = conv_transpose2d(
                grad_output, weight, None, self.stride, self.padding, output_padding
            )
        if needs[1]:
            if is_grad_enabled():  # the reference: cols rebuilt from x, differentiable
                gy_rows = reshape(transpose(grad_output, (0, 2, 3, 1)), (-1, o))
                cols = im2col(x, (kh, kw), self.stride, self.padding)
                gw_rows = matmul(transpose(gy_rows, None), cols)  # (O, KH*KW*C)
                grads[1] = transpose(reshape(gw_rows, (o, kh, kw, c)), (0, 3, 1, 2))
            else:  # first order, on arrays, with the forward's cols
                gy_rows = grad_output.data.transpose(0, 2, 3, 1).reshape(-1, o)
                gw_rows = self.xp.matmul(gy_rows.T, self.cols)
                gw = gw_rows.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
                grads[1] = Tensor(self.xp.ascontiguousarray(gw))
        if len(grads) == 3 and needs[2]:
            grads[2] = ops.sum(grad_output, axis=(0, 2, 3))
        return tuple(grads)


def _gradient_output_padding(x: Tensor, weight: Tensor, stride, padding) -> tuple[int, int]:
    """The output_padding with which conv_transpose2d maps conv2d's output back to x's size."""
    kh, kw = weight.shape[2:]
    return tuple((n + 2 * p - k) % s for n, k, s, p in zip(x.shape[2:], (kh, kw), stride, padding))
