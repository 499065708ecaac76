"""The functional API, ``from tinygan import functional as F``: ``linear`` and ``batch_norm``.

The two layer-level functions the main demo's networks use, composed of ops (so their
gradients, of any order, come from the ops they are made of). The ``F`` namespace also
holds every op of :mod:`tinygan.ops` and :mod:`tinygan.conv` and the layer-level functions
and losses with PyTorch's names (``dropout``, ``layer_norm``, ``interpolate``,
``embedding``, ``mse_loss``, ``binary_cross_entropy_with_logits``), listed in
:mod:`tinygan.extras.functional`.
"""

from __future__ import annotations

from typing import Any

from tinygan import fast, ops
from tinygan.ops import matmul, reshape, transpose
from tinygan.tensor import Tensor, array_of


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


def standardize(x: Tensor, axes: tuple[int, ...], eps: float) -> tuple[Tensor, Any, Any]:
    """xhat = (x - mu) / sqrt(var + eps), with mu and the biased var over ``axes``, composed
    of ops (so its gradient through mu and var, of any order, is exact).

    Returns:
        xhat, and mu and var as arrays of size-1 axes (for the running statistics).
    """
    mean = ops.mean(x, axes, keepdims=True)
    centred = x - mean
    var = ops.mean(centred * centred, axes, keepdims=True)
    return centred * ops.pow(var + eps, -0.5), mean.data, var.data


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
    and the running statistics move towards the batch's, in place, as in PyTorch:
               running_mean <- (1 - momentum) running_mean + momentum mu
               running_var  <- (1 - momentum) running_var  + momentum var * m / (m - 1)
    (the unbiased variance, m values per channel). The standardisation is composed of ops
    (:func:`standardize`), so its gradient through the batch statistics (and that
    gradient's gradient) is exact. The running statistics are not part of the graph.
    Evaluation: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.

    Args:
        x: (N, C) or (N, C, H, W).
        running_mean, running_var: (C,) running statistics, updated in place when training
            (None: not tracked); arrays (a layer's buffers) or Tensors (whose data is used).
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
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},), got {t.shape}")
    if training:
        count = x.size // channels
        if count < 2:
            raise ValueError(
                f"batch_norm: training needs more than one value per channel, got input {x.shape}"
            )
        # One fused op with a closed-form first-order backward may take over: fast/norm.py
        standardize_batch = fast_norm.standardize if fast.enabled() else standardize
        y, mean, var = standardize_batch(x, axes, eps)
        if running_mean is not None:
            _move_towards(running_mean, mean.reshape(channels), momentum)
        if running_var is not None:
            _move_towards(running_var, var.reshape(channels) * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        mean, var = array_of(running_mean), array_of(running_var)  # constants here
        inv_std = (var + eps) ** -0.5
        y = (x - Tensor(mean.reshape(shape))) * Tensor(inv_std.reshape(shape))
    if weight is not None:
        y = y * reshape(weight, shape)
    if bias is not None:
        y = y + reshape(bias, shape)
    return y


def _move_towards(running: Any, batch_value: Any, momentum: float) -> None:
    """running <- (1 - momentum) running + momentum batch_value, in place."""
    running = array_of(running)
    running *= 1.0 - momentum
    running += momentum * batch_value


# The fast paths build on the functions above, so they are imported once those exist.
# The rest of the F namespace (every op, and the layer-level functions and losses the main
# demo does not use) is listed in tinygan/extras/functional.py.
from tinygan.extras.functional import *  # noqa: E402, F403
from tinygan.extras.functional import __all__ as _the_rest  # noqa: E402

__all__ = ["batch_norm", "linear", "standardize", *_the_rest]
from tinygan.fast import norm as fast_norm  # noqa: E402
