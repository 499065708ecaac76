"""The functional API, ``from tinygan import functional as F``.

Every op of :mod:`tinygan.ops` and :mod:`tinygan.conv` is available here, plus the
layer-level functions ``linear``, ``batch_norm`` and ``dropout``, composed from them (so
their gradients, of any order, come from the ops they are made of).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.autograd import no_grad
from tinygan.conv import avg_pool2d, col2im, conv2d, conv_transpose2d, im2col, max_pool2d
from tinygan.ops import (
    abs,
    add,
    broadcast_to,
    cast,
    clip,
    concat,
    div,
    exp,
    getitem,
    leaky_relu,
    log,
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
    "concat", "conv2d", "conv_transpose2d", "div", "dropout", "exp", "getitem", "im2col",
    "leaky_relu", "linear", "log", "matmul", "max", "max_pool2d", "mean", "mul", "neg",
    "pad2d", "pow", "relu", "reshape", "sigmoid", "softplus", "sqrt", "stack", "sub", "sum",
    "sum_to", "tanh", "to_device", "transpose",
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
    (the unbiased variance, m values per channel), as PyTorch does.
    Evaluation: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.

    The training branch is composed of differentiable ops, so its gradient through the
    batch statistics, and that gradient's gradient, are exact.

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
        mu = mean(x, axes, keepdims=True)
        centred = x - mu
        var = mean(centred * centred, axes, keepdims=True)
        y = centred * pow(var + eps, -0.5)
        with no_grad():
            if running_mean is not None:
                running_mean.data *= 1.0 - momentum
                running_mean.data += momentum * mu.data.reshape(channels)
            if running_var is not None:
                running_var.data *= 1.0 - momentum
                running_var.data += (momentum * count / (count - 1)) * var.data.reshape(channels)
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
