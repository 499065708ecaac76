"""The layer-level functions and losses the main demo does not use, with PyTorch's names.

``dropout``, ``layer_norm``, ``interpolate`` (nearest upsampling), ``embedding``,
``mse_loss`` and ``binary_cross_entropy_with_logits``, each composed of ops, so their
gradients of any order come from the ops they are made of. With them, ``__all__`` below
lists the rest of the ``F`` namespace (:mod:`tinygan.functional`): every op of
:mod:`tinygan.ops` and :mod:`tinygan.conv`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import fast, ops
from tinygan.backend import array_module
from tinygan.conv import avg_pool2d, col2im, conv2d, conv_transpose2d, im2col, max_pool2d
from tinygan.extras.ops import min_max
from tinygan.ops import (
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
    mean,
    mul,
    neg,
    pad2d,
    relu,
    reshape,
    sigmoid,
    softmax,
    softplus,
    sqrt,
    stack,
    sub,
    sum_to,
    tanh,
    to_device,
    transpose,
    upsample_nearest,
    view,
)
from tinygan.tensor import Tensor

# The ops named like Python builtins, for ``F.sum`` and friends; the library itself calls
# them qualified (``ops.sum``), so that no line reads like the builtin.
abs, max, pow, sum = ops.abs, ops.max, ops.pow, ops.sum  # noqa: A001

__all__ = [
    "abs", "add", "avg_pool2d", "binary_cross_entropy_with_logits",
    "broadcast_to", "cast", "clip", "col2im", "concat", "conv2d", "conv_transpose2d",
    "cross_entropy", "div", "dropout", "embedding", "exp", "getitem", "im2col", "interpolate",
    "layer_norm", "leaky_relu", "log", "log_softmax", "logsumexp", "matmul", "max",
    "max_pool2d", "mean", "mse_loss", "mul", "neg", "pad2d", "pow", "relu", "reshape",
    "sigmoid", "softmax", "softplus", "sqrt", "stack", "sub", "sum", "sum_to", "tanh",
    "to_device", "transpose", "upsample_nearest", "view",
]  # fmt: skip


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


def layer_norm(
    x: Tensor,
    normalized_shape: int | tuple[int, ...],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalisation (Ba et al., 2016): each sample standardised over its last axes.

        mu = mean(x),  var = mean((x - mu)^2)   over the trailing ``normalized_shape`` axes
        y  = (x - mu) / sqrt(var + eps) * weight + bias

    The statistics belong to one sample (and are the same in training and evaluation), so
    one sample's output never depends on the others in its batch. That is what a WGAN-GP
    critic needs: the gradient penalty treats samples one by one, and BatchNorm would mix
    them (Gulrajani et al., 2017, section 4, suggest layer normalisation instead). Composed
    of ops, so its gradient through mu and var, and that gradient's gradient, are exact;
    the fast path, BatchNorm's fused standardisation (tinygan/fast/norm.py), rebuilds its
    backward from ops whenever a graph is recorded, so they stay exact there too.

    Args:
        x: (..., *normalized_shape), e.g. (N, C, H, W) with normalized_shape (C, H, W).
        normalized_shape: the trailing shape to normalise over (an int for the last axis).
        weight, bias: per-element scale and shift of shape ``normalized_shape``, or None.
        eps: added to the variance.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or x.ndim < k or x.shape[x.ndim - k :] != shape:
        raise ValueError(
            f"layer_norm: input of shape {x.shape} does not end in normalized_shape {shape}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != shape:
            raise ValueError(f"layer_norm: {name} must have shape {shape}, got {t.shape}")
    axes = tuple(range(x.ndim - k, x.ndim))
    if fast.enabled():  # BatchNorm's fused standardisation, over these axes: fast/norm.py
        y = fast_norm.standardize(x, axes, float(eps))[0]
    else:
        centred = x - ops.mean(x, axes, keepdims=True)
        var = ops.mean(centred * centred, axes, keepdims=True)
        y = centred * ops.pow(var + float(eps), -0.5)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def interpolate(
    x: Tensor,
    size: int | tuple[int, int] | None = None,
    scale_factor: float | tuple[float, float] | None = None,
    mode: str = "nearest",
) -> Tensor:
    """Resize images (N, C, H, W) by nearest-neighbour upsampling, as PyTorch's ``interpolate``.

    Give either ``scale_factor`` (2: twice the height and width) or the output ``size``;
    either must make the image a whole number of times larger, since every pixel becomes an
    sh x sw block of copies (see :func:`~tinygan.ops.upsample_nearest`, which also gives
    the gradient). For whole factors this is exactly PyTorch's "nearest".
    """
    if mode != "nearest":
        raise ValueError(f"interpolate: only mode='nearest' is implemented, got {mode!r}")
    if x.ndim != 4:
        raise ValueError(f"interpolate: expected images (N, C, H, W), got shape {x.shape}")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    h, w = x.shape[2:]
    if size is not None:
        oh, ow = (size, size) if isinstance(size, int) else tuple(size)
        factors = (oh / h, ow / w)
    elif isinstance(scale_factor, (tuple, list)):
        factors = tuple(scale_factor)
    else:
        factors = (scale_factor, scale_factor)
    if not all(float(f).is_integer() and f >= 1 for f in factors):
        raise ValueError(
            f"interpolate: nearest upsampling here needs whole factors >= 1, got {factors} "
            f"for an input of {h}x{w} (use scale_factor=2, or a size that is a multiple)"
        )
    return upsample_nearest(x, (int(factors[0]), int(factors[1])))


def embedding(indices: Any, weight: Tensor) -> Tensor:
    """The rows of ``weight`` picked by integer ``indices``: y[...] = weight[indices[...]].

    A lookup table, e.g. a learned vector per class label for a conditional GAN. The
    gradient adds dL/dy into the picked rows, summing over repeated indices (indexing's
    backward, a scatter-add), and is differentiable again.

    Args:
        indices: an integer NumPy or CuPy array (or a list of ints) of any shape; not a
            Tensor, since tinygan tensors hold floating-point numbers.
        weight: (num_embeddings, embedding_dim).

    Returns:
        (*indices.shape, embedding_dim).
    """
    if isinstance(indices, Tensor):
        raise TypeError(
            "embedding: indices must be an integer NumPy/CuPy array, not a Tensor (tinygan "
            "tensors hold floats); pass e.g. labels as np.int64"
        )
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got {weight.shape}")
    indices = array_module(indices).asarray(indices)  # checked where they are (see min_max)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {indices.dtype}")
    n = weight.shape[0]
    low, high = min_max(indices) if indices.size else (0, 0)
    if low < 0 or high >= n:
        raise IndexError(
            f"embedding: indices must be in 0..{n - 1} for {n} embeddings, got values from "
            f"{low} to {high}"
        )
    return getitem(weight, weight.xp.asarray(indices))


REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    """The elementwise ``loss`` averaged ("mean"), summed ("sum") or as it is ("none")."""
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_pair(name: str, x: Tensor, target: Tensor) -> None:
    """Losses compare a Tensor with a target Tensor of exactly the same shape."""
    if not isinstance(x, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name}: input and target must be Tensors (e.g. tg.ones_like(input))")
    if x.shape != target.shape:
        raise ValueError(
            f"{name}: input of shape {x.shape} and target of shape {target.shape} differ; "
            "give them the same shape (e.g. output.view(-1) for (N, 1) scores)"
        )


def mse_loss(x: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The squared error (x - target)^2, averaged over every element by default.

    L = mean (x - y)^2,   dL/dx = 2 (x - y) / n,   dL/dy = -2 (x - y) / n

    Args:
        x, target: tensors of the same shape (unlike PyTorch, which broadcasts different
            shapes with a warning, a mismatch is an error here).
        reduction: "mean", "sum" or "none" (the elementwise losses).
    """
    _check_pair("mse_loss", x, target)
    diff = x - target
    return _reduce(diff * diff, reduction, "mse_loss")


def binary_cross_entropy_with_logits(
    x: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Binary cross-entropy of targets y in [0, 1] under probabilities sigma(x), from logits.

        l = -y log sigma(x) - (1 - y) log(1 - sigma(x)) = y softplus(-x) + (1 - y) softplus(x)

    computed on the logits through softplus, so it is exact and finite for any x (no log of
    a sigmoid that rounded to 0). Gradient, from d softplus(u)/du = sigma(u):
    dl/dx = -y sigma(-x) + (1 - y) sigma(x) = sigma(x) - y, "prediction minus target".
    With y = 1 for real and 0 for fake samples, the mean is ``losses.gan_d_loss``'s terms.

    Args:
        x: logits, any shape.
        target: y of the same shape (usually 0 or 1).
        weight: a factor for each element's loss, broadcast against x, or None.
        reduction: "mean", "sum" or "none".
    """
    _check_pair("binary_cross_entropy_with_logits", x, target)
    loss = target * ops.softplus(-x) + (1.0 - target) * ops.softplus(x)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


from tinygan.fast import norm as fast_norm  # noqa: E402
