"""A fast path of BatchNorm and LayerNorm: their standardisation as one fused op with a
closed-form backward.

:func:`tinygan.functional.standardize` composes xhat = (x - mu) / sqrt(var + eps) of about
ten ops, whose backward passes are as many again. :class:`Standardize` is one op: the
forward on arrays, and the backward by the well-known closed form when no graph is
recorded; with a graph recorded, the composition's formula rebuilt from x with ops.
BatchNorm takes the statistics over the batch (and the pixels) of each channel, LayerNorm
over the trailing axes of each sample: the same op, with other ``axes``.
"""

from __future__ import annotations

from typing import Any

from tinygan import ops
from tinygan.autograd import Function, is_grad_enabled
from tinygan.tensor import Tensor


def standardize(x: Tensor, axes: tuple[int, ...], eps: float) -> tuple[Tensor, Any, Any]:
    """:func:`tinygan.functional.standardize` as one fused op: xhat, and mu and var arrays."""
    mean, var = moments(x.data, axes)
    return Standardize(axes, eps, mean, var)(x), mean, var


def moments(x: Any, axes: tuple[int, ...]) -> tuple[Any, Any]:
    """The mean and the biased variance of array ``x`` over ``axes`` (kept as size-1 axes)."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    return mean, (centred * centred).mean(axis=axes, keepdims=True)


class Standardize(Function):
    """xhat = (x - mu) / sqrt(var + eps), mu and var over ``axes``: BatchNorm's batch axes
    (each channel by its batch statistics) or LayerNorm's trailing axes (each sample by its
    own).

    mu and var are the mean and (biased) variance over ``axes`` (N, or N, H, W, for
    BatchNorm; C, H, W for LayerNorm), m values each. With s = 1 / sqrt(var + eps) and
    g = dL/dxhat, the chain rule through mu and var gives the well-known

        dL/dx = s * (g - mean(g) - xhat * mean(g * xhat))        (means over ``axes``)

    Two backward paths compute it:

    * a graph is recorded (``create_graph=True``, WGAN-GP's penalty): the formula is
      rebuilt from the input x with tinygan ops, so its own derivative, through the
      statistics, is exact too. This is the reference.
    * no graph is recorded (plain training): the same formula on arrays, with s from the
      forward pass, in one temporary array. Exact (nobody differentiates it) and several
      times faster. The tests hold the two paths against each other.

    Args:
        axes: the axes the statistics run over.
        eps: added to the variance.
        mean, var: the statistics of the input, arrays with size-1 ``axes`` ((1, C, 1, 1)
            for BatchNorm2d, (N, 1, 1, 1) for LayerNorm((C, H, W))), from :func:`moments`.
    """

    def __init__(self, axes: tuple[int, ...], eps: float, mean: Any, var: Any) -> None:
        self.axes, self.eps = axes, eps
        self.mean, self.inv_std = mean, (var + eps) ** -0.5  # constants of the forward pass

    def forward(self, x):
        xhat = x - self.mean
        xhat *= self.inv_std
        return xhat

    def backward(self, grad_output):
        axes = self.axes
        if not is_grad_enabled():  # the first-order fast path, on arrays, one temporary
            g, xhat = grad_output.data, self.output.data
            g_mean = g.mean(axis=axes, keepdims=True)
            gx = g * xhat
            gx_mean = gx.mean(axis=axes, keepdims=True)
            gx = self.xp.multiply(xhat, gx_mean, out=gx)  # the buffer now builds dL/dx
            gx += g_mean
            gx = self.xp.subtract(g, gx, out=gx)
            gx *= self.inv_std
            return Tensor(gx)
        x = self.inputs[0]  # the reference: everything rebuilt from x, differentiable
        centred = x - ops.mean(x, axes, keepdims=True)
        inv_std = ops.pow(ops.mean(centred * centred, axes, keepdims=True) + self.eps, -0.5)
        xhat = centred * inv_std
        g_mean = ops.mean(grad_output, axes, keepdims=True)
        gx_mean = ops.mean(grad_output * xhat, axes, keepdims=True)
        return inv_std * (grad_output - g_mean - xhat * gx_mean)
