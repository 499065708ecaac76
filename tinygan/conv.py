"""Convolution as a matrix product: im2col / col2im, conv2d, conv_transpose2d.

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
that) with no extra code. (Pooling, in :mod:`tinygan.extras.pooling`, reuses im2col on one
channel at a time.)

Why channels-last inside: a window row (u, v, c) then reads C neighbouring floats at a
time, which makes the im2col copy about 5x and col2im about 4x faster than (c, u, v) rows
on NCHW memory (see BENCHMARKS.md). Outputs are NCHW tensors whose memory happens to be
channels-last; the next convolution's ``transpose(0, 2, 3, 1)`` is then free.

DCGAN's layer (kernel 4, stride 2, padding 1) has fast paths (:mod:`tinygan.fast.conv`):
the same numbers by the sub-pixel identity, without col2im's scatter-adds.
"""

from __future__ import annotations

from tinygan import fast
from tinygan.autograd import Function
from tinygan.ops import matmul, reshape, transpose
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

    im2col, one matrix product, reshape.

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
    if fast.enabled() and fast_conv.is_dcgan_layer((kh, kw), stride, padding):  # fast/conv.py
        return fast_conv.StridedConv2d(stride, padding)(
            x, weight, *([] if bias is None else [bias])
        )
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
    (C_in, KH*KW*C_out), with OH = (H - 1) * s - 2p + KH + output_padding.

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
    if fast.enabled() and fast_conv.sub_pixel_pays(
        c_in, c_out, (kh, kw), (sh, sw), (ph, pw), (oph, opw)
    ):
        return fast_conv.SubPixelConvTranspose2d()(x, weight, *([] if bias is None else [bias]))
    rows = reshape(transpose(x, (0, 2, 3, 1)), (n * h * w, c_in))
    w_rows = reshape(transpose(weight, (0, 2, 3, 1)), (c_in, kh * kw * c_out))
    cols = matmul(rows, w_rows)  # (N*H*W, KH*KW*C_out)
    y = col2im(cols, (n, c_out, out_h, out_w), (kh, kw), (sh, sw), (ph, pw))
    return y if bias is None else y + reshape(bias, (1, c_out, 1, 1))


def _check_bias(bias: Tensor, channels: int, op: str) -> None:
    if bias.shape != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},), got {bias.shape}")


# The fast paths build on the functions above, so they are imported once those exist.
# Pooling (im2col on one channel at a time), which the main demo does not use.
from tinygan.extras.pooling import avg_pool2d, max_pool2d  # noqa: E402, F401
from tinygan.fast import conv as fast_conv  # noqa: E402
