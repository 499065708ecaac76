"""The layers the main demo does not use, with PyTorch's names: ``Sigmoid``, ``Upsample``,
``LayerNorm``, ``Embedding``, ``MaxPool2d``, ``Dropout``, ``MSELoss``, ``BCEWithLogitsLoss``.

Each is a thin :class:`tinygan.nn.Module` around a function of :mod:`tinygan.functional`;
they are part of the ``nn`` namespace (``nn.LayerNorm``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import functional as F
from tinygan import init
from tinygan.conv import IntPair, as_pair
from tinygan.extras.functional import REDUCTIONS
from tinygan.nn import Module, Parameter, _check_sizes, _empty
from tinygan.tensor import Tensor


class Sigmoid(Module):
    """y = 1 / (1 + e^-x). GAN losses take logits, so a discriminator rarely needs it."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Upsample(Module):
    """Nearest-neighbour upsampling of images (N, C, H, W), see ``F.interpolate``.

    ``Upsample(scale_factor=2)`` doubles H and W: every pixel becomes a 2x2 block of copies.
    Followed by a 3x3 convolution it is the upsampling step of a generator that avoids
    the checkerboard patterns transposed convolutions can draw (Odena et al., 2016).
    Give ``scale_factor`` or the output ``size``; only ``mode="nearest"`` and whole
    factors are implemented.
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        mode: str = "nearest",
    ) -> None:
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"Upsample: only mode='nearest' is implemented, got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor")
        self.size, self.scale_factor, self.mode = size, scale_factor, mode

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, self.size, self.scale_factor, self.mode)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` axes of each sample.

    See ``F.layer_norm``. Parameters weight = 1 and bias = 0, each of shape
    ``normalized_shape``, when ``elementwise_affine`` (``bias=False`` drops the bias), as in
    PyTorch. A WGAN-GP critic's normalisation: ``LayerNorm((C, H, W))`` after a
    convolution, where a DCGAN discriminator would have BatchNorm2d(C).
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        _check_sizes("LayerNorm", **{f"normalized_shape[{i}]": n for i, n in enumerate(shape)})
        self.normalized_shape = tuple(shape)
        self.eps = float(eps)
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        affine = self.weight is not None
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={affine}"


class Embedding(Module):
    """A table of ``num_embeddings`` learned vectors of size ``embedding_dim``.

    Called with an integer NumPy/CuPy array of indices (tinygan tensors hold floats), e.g.
    class labels of shape (N,), it returns their rows, (N, embedding_dim); see
    ``F.embedding``. weight (num_embeddings, embedding_dim) ~ N(0, 1), as in PyTorch.
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__()
        _check_sizes("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(_empty(num_embeddings, embedding_dim))
        init.normal_(self.weight, 0.0, 1.0, rng)

    def forward(self, indices: Any) -> Tensor:
        return F.embedding(indices, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class MaxPool2d(Module):
    """The maximum of each ``kernel_size`` window: (N, C, H, W) -> (N, C, OH, OW).

    ``stride`` defaults to the kernel size (windows side by side); see ``F.max_pool2d``.
    """

    def __init__(
        self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> None:
        super().__init__()
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride")
        self.padding = as_pair(padding, "padding")

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Dropout(Module):
    """Zero each element with probability p and scale the rest by 1/(1-p), in training mode.

    Masks are drawn from ``rng`` (a NumPy Generator; CuPy tensors use CuPy's generator).
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng() if rng is None else rng

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _check_reduction(loss: str, reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{loss}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


class MSELoss(Module):
    """``loss(input, target)``: the mean squared error, see ``F.mse_loss``."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(type(self).__name__, reduction)

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(x, target, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCEWithLogitsLoss(Module):
    """``loss(logits, target)``: binary cross-entropy on logits, see
    ``F.binary_cross_entropy_with_logits``.

    ``weight`` scales each element's loss; it is kept as a buffer, as in PyTorch, so it is
    in the state dict and moves with ``to(device)``.
    """

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(type(self).__name__, reduction)
        self.weight = None
        if weight is not None:
            self.register_buffer("weight", weight.data if isinstance(weight, Tensor) else weight)

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        weight = None if self.weight is None else Tensor(self.weight)
        return F.binary_cross_entropy_with_logits(x, target, weight, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
