"""The functional API, ``from tinygan import functional as F``.

Every op of :mod:`tinygan.ops` and :mod:`tinygan.conv` is available here, plus the
layer-level functions ``linear``, ``batch_norm`` and ``dropout``, composed from them (so
their gradients, of any order, come from the ops they are made of).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.autograd import Function, is_grad_enabled
from tinygan.conv import avg_pool2d, col2im, conv2d, conv_transpose2d, im2col, max_pool2d
from tinygan.ops import (
    abs,
    add,
    broadcast_to,
    cast,
    clip,
    concat,
    cross_entropy,
    div,
    exp,
    getitem,
    leaky_relu,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    mean,
    mul,
    neg,
    pad2d,
    pow,
    relu,
    reshape,
    sigmoid,
    softmax,
    softplus,
    sqrt,
    stack,
    sub,
    sum,
    sum_to,
    tanh,
    to_device,
    transpose,
)
from tinygan.tensor import Tensor

__all__ = [
    "abs", "add", "avg_pool2d", "batch_norm", "broadcast_to", "cast", "clip", "col2im",
    "concat", "conv2d", "conv_transpose2d", "cross_entropy", "div", "dropout", "exp",
    "getitem", "im2col", "leaky_relu", "linear", "log", "log_softmax", "logsumexp", "matmul",
    "max", "max_pool2d", "mean", "mul", "neg", "pad2d", "pow", "relu", "reshape", "sigmoid",
    "softmax", "softplus", "sqrt", "stack", "sub", "sum", "sum_to", "tanh", "to_device",
    "transpose",
]  # fmt: skip


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ W^T + b, with W of shape (out, in) as in PyTorch.

    Args:
        x: (..., in).
        weight: (out, in).
        bias: (out,) or None.

    Returns:
        (..., out).
    """
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
            "(expected input (..., in) and weight (out, in))"
        )
    y = matmul(x, transpose(weight, None))
    if bias is None:
        return y
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    return y + bias


class BatchStandardize(Function):
    """xhat = (x - mu) / sqrt(var + eps): each channel standardised by its batch statistics.

    mu and var are the mean and (biased) variance over ``axes`` (N, or N, H, W), m values
    per channel. With s = 1 / sqrt(var + eps) and g = dL/dxhat, the chain rule through mu
    and var gives the well-known

        dL/dx = s * (g - mean(g) - xhat * mean(g * xhat))        (means over ``axes``)

    When the backward pass is not recorded (plain training), that formula runs on arrays,
    with s from the per-channel statistics of the forward pass: exact, since nobody
    differentiates it. With ``create_graph=True`` it is rebuilt from x with tinygan ops,
    so second derivatives through the batch statistics are exact too.
    """

    def __init__(self, axes: tuple[int, ...], eps: float) -> None:
        self.axes, self.eps = axes, eps

    def forward(self, x):
        self.mean = x.mean(axis=self.axes, keepdims=True)  # (1, C, 1, 1): read for running stats
        centred = x - self.mean
        self.var = (centred * centred).mean(axis=self.axes, keepdims=True)
        self.inv_std = (self.var + self.eps) ** -0.5
        return centred * self.inv_std

    def backward(self, grad):
        axes = self.axes
        if not is_grad_enabled():
            g, xhat = grad.data, self.output.data
            g_mean = g.mean(axis=axes, keepdims=True)
            gx_mean = (g * xhat).mean(axis=axes, keepdims=True)
            return Tensor((g - g_mean - xhat * gx_mean) * self.inv_std)
        x = self.inputs[0]
        centred = x - mean(x, axes, keepdims=True)
        inv_std = pow(mean(centred * centred, axes, keepdims=True) + self.eps, -0.5)
        xhat = centred * inv_std
        g_mean, gx_mean = mean(grad, axes, keepdims=True), mean(grad * xhat, axes, keepdims=True)
        return inv_std * (grad - g_mean - xhat * gx_mean)


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over the batch (and spatial) axes, per channel.

    Training:  mu = mean(x),  var = mean((x - mu)^2)  over N (and H, W), then
               y = (x - mu) / sqrt(var + eps) * weight + bias,
    and the running statistics move towards the batch's:
               running_mean <- (1 - momentum) running_mean + momentum mu
               running_var  <- (1 - momentum) running_var  + momentum var * m / (m - 1)
    (the unbiased variance, m values per channel), as PyTorch does. The standardisation
    is one op, :class:`BatchStandardize`, whose gradient through the batch statistics (and
    that gradient's gradient) is exact.
    Evaluation: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.

    Args:
        x: (N, C) or (N, C, H, W).
        running_mean, running_var: (C,) buffers, updated in place when training (may be
            None when training).
        weight, bias: (C,) affine parameters, or None.
    """
    momentum, eps = float(momentum), float(eps)  # NumPy float64 scalars would upcast float32
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: expected input (N, C) or (N, C, H, W), got {x.shape}")
    channels = x.shape[1]
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, channels) + (1,) * (x.ndim - 2)
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):  # fmt: skip
        if t is not None and t.shape != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},), got {t.shape}")
    if training:
        count = x.size // channels
        if count < 2:
            raise ValueError(
                f"batch_norm: training needs more than one value per channel, got input {x.shape}"
            )
        standardize = BatchStandardize(axes, eps)
        y = standardize(x)
        if running_mean is not None:
            running_mean.data *= 1.0 - momentum
            running_mean.data += momentum * standardize.mean.reshape(channels)
        if running_var is not None:
            unbiased = standardize.var.reshape(channels) * (count / (count - 1))
            running_var.data *= 1.0 - momentum
            running_var.data += momentum * unbiased
        del standardize.mean, standardize.var  # backward needs only inv_std
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        inv_std = (running_var.data + eps) ** -0.5
        y = (x - reshape(running_mean.detach(), shape)) * Tensor(inv_std.reshape(shape))
    if weight is not None:
        y = y * reshape(weight, shape)
    if bias is not None:
        y = y + reshape(bias, shape)
    return y


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, generator: np.random.Generator | None = None
) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only).

    y = x * m / (1 - p), m ~ Bernoulli(1 - p). The mask m is a constant, so
    dL/dx = dL/dy * m / (1 - p).

    Args:
        generator: a NumPy Generator for CPU tensors (for reproducible masks); CuPy tensors
            draw from CuPy's generator.
    """
    p = float(p)  # a NumPy float64 p would make the mask float64
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    uniform = _uniform(x, generator)
    mask = (uniform >= p).astype(x.dtype) * (1.0 / (1.0 - p))
    return x * Tensor(mask)


def _uniform(x: Tensor, generator: Any) -> Any:
    if x.xp is np:
        rng = generator if generator is not None else np.random.default_rng()
        return rng.random(x.shape, dtype=x.dtype)
    return x.xp.random.random(x.shape, dtype=x.dtype)
