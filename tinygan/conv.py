"""Convolution as a matrix product: im2col / col2im, conv2d, conv_transpose2d, pooling.

**im2col** copies every KH x KW window of the (zero-padded) input into one row::

    x (N, C, H, W)  ->  cols (N*OH*OW, KH*KW*C),   OH = (H + 2*ph - KH) // sh + 1

    cols[(n, i, j), (u, v, c)] = x_pad[n, c, i*sh + u, j*sw + v]

so a convolution with weights w (O, C, KH, KW) is one matrix product::

    conv2d(x, w) = cols @ W^T,  W = w permuted to (O, KH, KW, C) and reshaped (O, KH*KW*C)

giving rows (N*OH*OW, O), which are the output (N, O, OH, OW) stored channels-last.

**col2im** is the adjoint of im2col: it adds every row back onto the window it came from
(overlapping windows add up). Being adjoint, each is the other's backward:
<im2col(x), c> = <x, col2im(c)>. A transposed convolution is the adjoint of a convolution,
so it is the same two pieces in the other order::

    conv_transpose2d(y, w) = col2im(y_rows @ W),  W = w as (C_in, KH*KW*C_out)

Because both directions are tinygan Functions with differentiable backward passes, the
gradients of conv2d and conv_transpose2d are themselves differentiable (WGAN-GP needs
that) with no extra code. Pooling reuses im2col on one channel at a time.

Why channels-last inside: a window row (u, v, c) then reads C neighbouring floats at a
time, which makes the im2col copy about 5x and col2im about 4x faster than (c, u, v) rows
on NCHW memory (see BENCHMARKS.md). Outputs are NCHW tensors whose memory happens to be
channels-last; the next convolution's ``transpose(0, 2, 3, 1)`` is then free.

**A fast path for DCGAN's layer** (kernel 4, stride 2, padding 1), an optimisation of the
above for the shape nearly every DCGAN uses. col2im's scatter-add (16 strided adds, one per
kernel offset) is the slow part of such a transposed convolution, and the input gradient of
a convolution of that shape is the same transposed convolution. The sub-pixel identity
(:func:`sub_pixel_conv_transpose2d`) computes it with no scatter at all: one stride-1 2x2
im2col, one matrix product, four strided copies. Two fused ops, each a Function with a
differentiable backward built from the functions of this module, run DCGAN's layer:

* :class:`SubPixelConvTranspose2d`, the transposed convolution by the sub-pixel identity
  (a generator's upsampling layer), where that moves less memory than col2im;
* :class:`StridedConv2d`, the convolution with the bias added to the product in place,
  whose input gradient is a transposed convolution (by the sub-pixel identity where it pays).

The tests hold both against the im2col/col2im composition, first and second order.
"""

from __future__ import annotations

from tinygan import ops
from tinygan.autograd import Function, is_grad_enabled
from tinygan.ops import matmul, mean, pad2d, reshape, transpose
from tinygan.tensor import Tensor

IntPair = int | tuple[int, int]


def as_pair(value: IntPair, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; a pair stays a pair; anything else is a TypeError naming ``name``."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis: (size + 2p - k) // s + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col_array(xp, x, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
    """Im2col's forward on a raw array: (N, C, H, W) -> (N*OH*OW, KH*KW*C).

    One channels-last padded copy of x, one strided view of all its windows (no Python
    loop), one copy into rows.
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    x = x.transpose(0, 2, 3, 1)  # (N, H, W, C) view
    if ph or pw:
        x = xp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    else:
        x = xp.ascontiguousarray(x)  # free when x is already channels-last
    s_n, s_h, s_w, s_c = x.strides
    windows = xp.lib.stride_tricks.as_strided(
        x, shape=(n, oh, ow, kh, kw, c), strides=(s_n, s_h * sh, s_w * sw, s_h, s_w, s_c)
    )
    return windows.reshape(n * oh * ow, kh * kw * c)  # the one copy


class Im2col(Function):
    """cols[(n, i, j), (u, v, c)] = x_pad[n, c, i*sh + u, j*sw + v].

    Forward: :func:`im2col_array`. Backward: dL/dx = col2im(dL/dcols), the adjoint.
    """

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        return im2col_array(self.xp, x, self.kernel, self.stride, self.padding)

    def backward(self, grad_output):
        return col2im(grad_output, self.inputs[0].shape, self.kernel, self.stride, self.padding)


class Col2im(Function):
    """x_pad[n, c, i*sh + u, j*sw + v] += cols[(n, i, j), (u, v, c)], then crop the padding.

    One vectorised add per kernel offset (u, v): KH*KW adds, no loop over pixels.
    Backward: dL/dcols = im2col(dL/dx), the adjoint.
    """

    def __init__(
        self,
        shape: tuple[int, int, int, int],
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
    ):
        self.shape, self.kernel, self.stride, self.padding = shape, kernel, stride, padding

    def forward(self, cols):
        n, c, h, w = self.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
        blocks = cols.reshape(n, oh, ow, kh, kw, c)
        out = self.xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)  # channels-last
        for u in range(kh):
            for v in range(kw):
                out[:, u : u + sh * oh : sh, v : v + sw * ow : sw, :] += blocks[:, :, :, u, v, :]
        return out[:, ph : ph + h, pw : pw + w, :].transpose(0, 3, 1, 2)

    def backward(self, grad_output):
        return im2col(grad_output, self.kernel, self.stride, self.padding)


def im2col(x: Tensor, kernel: IntPair, stride: IntPair = 1, padding: IntPair = 0) -> Tensor:
    """Unfold (N, C, H, W) into rows of windows: (N*OH*OW, KH*KW*C)."""
    kernel, stride, padding = (
        as_pair(kernel, "kernel"),
        as_pair(stride, "stride"),
        as_pair(padding, "padding"),
    )
    if x.ndim != 4:
        raise ValueError(f"im2col: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    _check_window("im2col", x.shape, kernel, stride, padding)
    return Im2col(kernel, stride, padding)(x)


def col2im(
    cols: Tensor,
    shape: tuple[int, int, int, int],
    kernel: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> Tensor:
    """Fold rows of windows (N*OH*OW, KH*KW*C) back onto an (N, C, H, W) image, adding."""
    kernel, stride, padding = (
        as_pair(kernel, "kernel"),
        as_pair(stride, "stride"),
        as_pair(padding, "padding"),
    )
    n, c, h, w = shape
    oh, ow = _check_window("col2im", shape, kernel, stride, padding)
    expected = (n * oh * ow, c * kernel[0] * kernel[1])
    if cols.shape != expected:
        raise ValueError(
            f"col2im: cols of shape {cols.shape} do not fit {shape}, expected {expected}"
        )
    return Col2im(tuple(shape), kernel, stride, padding)(cols)


def _check_window(op: str, shape, kernel, stride, padding) -> tuple[int, int]:
    if min(stride) < 1 or min(padding) < 0 or min(kernel) < 1:
        raise ValueError(f"{op}: need kernel >= 1, stride >= 1, padding >= 0")
    h, w = shape[2] + 2 * padding[0], shape[3] + 2 * padding[1]
    if h < kernel[0] or w < kernel[1]:
        raise ValueError(
            f"{op}: kernel {kernel} is larger than the padded input ({h}, {w}) "
            f"of shape {tuple(shape)} with padding {padding}"
        )
    return conv_output_size(shape[2], kernel[0], stride[0], padding[0]), conv_output_size(
        shape[3], kernel[1], stride[1], padding[1]
    )


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1, padding: IntPair = 0
) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch).

    y[n, o, i, j] = b[o] + sum_{c,u,v} w[o, c, u, v] * x_pad[n, c, i*s + u, j*s + v]

    im2col, one matrix product, reshape. DCGAN's layer (kernel 4, stride 2, padding 1) runs
    as the fused op :class:`StridedConv2d`: the same forward with the bias added in place,
    and an input gradient that is a transposed convolution (sub-pixel where that pays).

    Args:
        x: input (N, C, H, W).
        weight: (O, C, KH, KW).
        bias: (O,) or None.

    Returns:
        (N, O, OH, OW) with OH = (H + 2p - KH) // s + 1.
    """
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"conv2d: expected input (N, C, H, W) and weight (O, C, KH, KW), got shapes "
            f"{x.shape} and {weight.shape}"
        )
    n, c = x.shape[:2]
    o, wc, kh, kw = weight.shape
    if c != wc:
        raise ValueError(
            f"conv2d: input has {c} channels (shape {x.shape}) but weight expects {wc} "
            f"(shape {weight.shape})"
        )
    stride, padding = as_pair(stride, "stride"), as_pair(padding, "padding")
    oh, ow = _check_window("conv2d", x.shape, (kh, kw), stride, padding)
    if bias is not None:
        _check_bias(bias, o, "conv2d")
    if is_dcgan_layer((kh, kw), stride, padding):
        return StridedConv2d(stride, padding)(x, weight, *([] if bias is None else [bias]))
    cols = im2col(x, (kh, kw), stride, padding)  # (N*OH*OW, KH*KW*C)
    w_rows = reshape(transpose(weight, (0, 2, 3, 1)), (o, kh * kw * c))  # (O, KH*KW*C)
    rows = matmul(cols, transpose(w_rows, None))  # (N*OH*OW, O)
    y = transpose(reshape(rows, (n, oh, ow, o)), (0, 3, 1, 2))  # (N, O, OH, OW)
    return y if bias is None else y + reshape(bias, (1, o, 1, 1))


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
) -> Tensor:
    """2-D transposed convolution: the adjoint of conv2d with the same weight.

    y = col2im(x_rows @ W), W = w permuted to (C_in, KH, KW, C_out) and reshaped
    (C_in, KH*KW*C_out), with OH = (H - 1) * s - 2p + KH + output_padding. DCGAN's
    upsampling shape runs as the fused op :class:`SubPixelConvTranspose2d` (the same
    numbers, without col2im).

    Args:
        x: input (N, C_in, H, W).
        weight: (C_in, C_out, KH, KW), PyTorch's layout.
        bias: (C_out,) or None.
    """
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"conv_transpose2d: expected input (N, C_in, H, W) and weight (C_in, C_out, KH, KW), "
            f"got shapes {x.shape} and {weight.shape}"
        )
    n, c_in, h, w = x.shape
    wc, c_out, kh, kw = weight.shape
    if c_in != wc:
        raise ValueError(
            f"conv_transpose2d: input has {c_in} channels (shape {x.shape}) but weight expects "
            f"{wc} (shape {weight.shape})"
        )
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    oph, opw = as_pair(output_padding, "output_padding")
    if not (0 <= oph < sh and 0 <= opw < sw):
        raise ValueError(
            f"conv_transpose2d: output_padding {output_padding} must be smaller than "
            f"stride {stride}"
        )
    out_h, out_w = (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw
    if out_h < 1 or out_w < 1:
        raise ValueError(f"conv_transpose2d: padding {padding} leaves an empty output")
    if bias is not None:
        _check_bias(bias, c_out, "conv_transpose2d")
    if sub_pixel_pays(c_in, c_out, (kh, kw), (sh, sw), (ph, pw), (oph, opw)):
        return SubPixelConvTranspose2d()(x, weight, *([] if bias is None else [bias]))
    rows = reshape(transpose(x, (0, 2, 3, 1)), (n * h * w, c_in))
    w_rows = reshape(transpose(weight, (0, 2, 3, 1)), (c_in, kh * kw * c_out))
    cols = matmul(rows, w_rows)  # (N*H*W, KH*KW*C_out)
    y = col2im(cols, (n, c_out, out_h, out_w), (kh, kw), (sh, sw), (ph, pw))
    return y if bias is None else y + reshape(bias, (1, c_out, 1, 1))


def _check_bias(bias: Tensor, channels: int, op: str) -> None:
    if bias.shape != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},), got {bias.shape}")


def _gradient_output_padding(x: Tensor, weight: Tensor, stride, padding) -> tuple[int, int]:
    """The output_padding with which conv_transpose2d maps conv2d's output back to x's size."""
    kh, kw = weight.shape[2:]
    return tuple((n + 2 * p - k) % s for n, k, s, p in zip(x.shape[2:], (kh, kw), stride, padding))


# ------------------------------------------------------------------ the sub-pixel fast path


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
    y = xp.empty((n, h, 2, w, 2, c_out), dtype=phases.dtype)  # rows (a, r), columns (b, s)
    for r in range(2):
        for s in range(2):
            phase = phases[:, r : r + h, s : s + w, r, s, :]
            if bias is None:
                y[:, :, r, :, s, :] = phase
            else:
                xp.add(phase, bias, out=y[:, :, r, :, s, :])
    return y.reshape(n, 2 * h, 2 * w, c_out).transpose(0, 3, 1, 2)


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
