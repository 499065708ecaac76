"""Parameter initialisers, ``from tinygan import init``.

Every initialiser fills a tensor **in place** and returns it. Random values are always
drawn on the CPU from a NumPy ``Generator`` and then copied to the tensor's device, so one
seed gives the same weights on the CPU and on a GPU::

    rng = np.random.default_rng(0)
    layer = nn.Linear(100, 256, rng=rng)        # PyTorch's default scheme, from rng
    init.dcgan_init_(generator, rng)            # or the DCGAN paper's N(0, 0.02)

Passing the generator explicitly (rather than seeding a global one) keeps every random
draw visible in the code; ``rng=None`` means a fresh, unseeded ``np.random.default_rng()``.

PyTorch's default for ``Linear`` and ``Conv2d`` is ``kaiming_uniform_(w, a=sqrt(5))``, which
works out to ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; biases use the same bound.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tinygan.backend import device_of, to_device
from tinygan.tensor import Tensor

if TYPE_CHECKING:
    from tinygan.nn import Module


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    """Copy CPU ``values`` into ``tensor.data`` in place, keeping its dtype and device."""
    tensor.data[...] = to_device(values.astype(tensor.dtype), device_of(tensor.data))
    tensor._mark_changed()  # written into: graphs recorded before refuse to backward
    return tensor


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return np.random.default_rng() if rng is None else rng


def fan_in(tensor: Tensor) -> int:
    """The number of inputs feeding one output unit, by PyTorch's convention.

    ``shape[1] * prod(shape[2:])``: ``in`` for a Linear weight (out, in), ``in*kh*kw`` for a
    Conv2d weight (out, in, kh, kw). For a ConvTranspose2d weight (in, out, kh, kw) this is
    ``out*kh*kw``, which is what PyTorch computes too (so its initialisation matches).
    """
    if tensor.ndim < 2:
        raise ValueError(f"fan_in: needs a weight with at least 2 dimensions, got {tensor.shape}")
    return int(np.prod(tensor.shape[1:]))


def uniform_(
    tensor: Tensor, a: float = 0.0, b: float = 1.0, rng: np.random.Generator | None = None
) -> Tensor:
    """Fill ``tensor`` with draws from U(a, b)."""
    return _fill(tensor, _rng(rng).uniform(a, b, size=tensor.shape))


def normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, rng: np.random.Generator | None = None
) -> Tensor:
    """Fill ``tensor`` with draws from N(mean, std^2)."""
    return _fill(tensor, _rng(rng).normal(mean, std, size=tensor.shape))


def constant_(tensor: Tensor, value: float) -> Tensor:
    """Fill ``tensor`` with ``value``."""
    return _fill(tensor, np.full(tensor.shape, value))


def zeros_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with zeros."""
    return constant_(tensor, 0.0)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, rng: np.random.Generator | None = None
) -> Tensor:
    """He initialisation for a (leaky) ReLU of negative slope ``a``: U(-bound, bound).

    gain = sqrt(2 / (1 + a^2)),  std = gain / sqrt(fan_in),  bound = sqrt(3) * std
    (a uniform on [-bound, bound] has standard deviation bound / sqrt(3)).

    PyTorch's layers use ``a = sqrt(5)``: gain = sqrt(1/3), so bound = 1 / sqrt(fan_in).
    """
    gain = math.sqrt(2.0 / (1.0 + a * a))
    bound = math.sqrt(3.0) * gain / math.sqrt(fan_in(tensor))
    return uniform_(tensor, -bound, bound, rng)


def dcgan_init_(module: Module, rng: np.random.Generator | None = None) -> Module:
    """The DCGAN paper's initialisation (Radford et al., 2016), in place on every sub-module.

    * Conv2d, ConvTranspose2d and Linear weights ~ N(0, 0.02^2) (the paper initialises "all
      weights" so; PyTorch's DCGAN tutorial lists only the convolutions because its models
      have no Linear layer);
    * BatchNorm weights ~ N(1, 0.02^2);
    * every bias = 0.

    Modules are visited in ``module.modules()`` order, so a seeded ``rng`` gives the same
    weights every time. Returns ``module``.
    """
    from tinygan import nn  # nn imports this module for its default initialisation

    rng = _rng(rng)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            normal_(m.weight, 0.0, 0.02, rng)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            normal_(m.weight, 1.0, 0.02, rng)
        else:
            continue
        if m.bias is not None:
            zeros_(m.bias)
    return module
