"""Layers: ``Module``, ``Parameter`` and the layers GANs are built from.

``from tinygan import nn``. A :class:`Module` holds three kinds of state, each in its own
dictionary, filled **by attribute assignment** in ``__init__``:

* ``Parameter`` values (trainable tensors) go to ``_parameters``;
* ``Module`` values (sub-layers) go to ``_modules``;
* buffers, registered with :meth:`Module.register_buffer`, go to ``_buffers``: raw arrays
  that are state but not trained, such as BatchNorm's running statistics.

Everything else (``self.training``, sizes, strides) is a plain attribute. State dicts
(PyTorch's keys and layouts), ``repr``, ``apply`` and ``to(device)`` come from
:mod:`tinygan.extras.module`.

Layers initialise their weights on the CPU from an explicit ``rng`` (a NumPy ``Generator``)
as PyTorch does by default, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; see :mod:`tinygan.init`.
Move a model with ``model.to("cuda")`` *after* building it, so a seed gives the same weights
on every device.

Example:
    >>> rng = np.random.default_rng(0)
    >>> mlp = nn.Sequential(nn.Linear(2, 16, rng=rng), nn.ReLU(), nn.Linear(16, 1, rng=rng))
    >>> list(mlp.state_dict())
    ['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygan import fast, init, ops
from tinygan import functional as F
from tinygan.backend import array_module, is_cupy_array
from tinygan.conv import IntPair, as_pair
from tinygan.extras.module import ModuleExtras
from tinygan.tensor import Tensor


class Parameter(Tensor):
    """A trainable tensor: ``requires_grad=True``, and registered by the Module it is set on.

    ``Parameter(array)`` wraps the array without copying it (float32 unless it is float64).
    Optimizers update ``param.data`` in place, so the object a layer holds never changes.
    """

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module(ModuleExtras):
    """Base class of every layer and model.

    Subclass it, call ``super().__init__()``, assign layers and parameters in ``__init__``,
    and write ``forward``; calling the module calls ``forward``.

    Example:
        >>> class Critic(nn.Module):
        ...     def __init__(self, rng):
        ...         super().__init__()
        ...         self.hidden = nn.Linear(2, 64, rng=rng)   # registered as "hidden"
        ...         self.out = nn.Linear(64, 1, rng=rng)
        ...     def forward(self, x):
        ...         return self.out(F.leaky_relu(self.hidden(x), 0.2))
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", [])  # e.g. nn.utils.spectral_norm

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before setting attributes"
            )
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            self._buffers[name] = value  # e.g. `self.num_batches_tracked += 1`
            return
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self.__dict__.pop(name, None)
        if isinstance(value, (Parameter, Module)):
            value._owner = (weakref.ref(self), name)  # names it in errors: "net.0.weight"
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: parameters, buffers and sub-modules live here.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def register_buffer(self, name: str, array: Any) -> None:
        """Register ``array`` (NumPy or CuPy) as state that is saved and moved, not trained."""
        if not (isinstance(array, np.ndarray) or is_cupy_array(array)):
            raise TypeError(f"register_buffer: {name!r} must be an array, got {type(array)}")
        for registry in (self._parameters, self._modules, self.__dict__):
            registry.pop(name, None)  # drop any other attribute of that name
        self._buffers[name] = array

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """``(dotted name, module)`` for this module and every descendant, parents first.

        This module is named ``prefix``; a module reachable twice is listed once.
        """
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, parents first."""
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        """The direct sub-modules, in the order they were assigned, each once."""
        seen: set[int] = set()
        for module in self._modules.values():
            if id(module) not in seen:
                seen.add(id(module))
                yield module

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``(state_dict key, parameter)`` for every parameter, each once."""
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter, each once (pass them to an optimizer)."""
        for _, p in self.named_parameters():
            yield p

    # ------------------------------------------------------------------ modes and devices
    def train(self, mode: bool = True) -> Module:
        """Training mode (BatchNorm uses batch statistics, Dropout drops) for every layer."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode (BatchNorm uses running statistics, Dropout is the identity)."""
        return self.train(False)

    # ------------------------------------------------------------------ calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in self._forward_pre_hooks:  # each sees the module before forward runs
            hook(self)
        return self.forward(*args, **kwargs)


def _check_sizes(layer: str, **sizes: int) -> None:
    for name, size in sizes.items():
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{layer}: {name} must be a positive int, got {size!r}")


def _default_init(
    weight: Parameter, bias: Parameter | None, rng: np.random.Generator | None
) -> None:
    """PyTorch's default: W ~ kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), b likewise."""
    rng = np.random.default_rng() if rng is None else rng
    init.kaiming_uniform_(weight, a=math.sqrt(5.0), rng=rng)
    if bias is not None:
        bound = 1.0 / math.sqrt(init.fan_in(weight))
        init.uniform_(bias, -bound, bound, rng)


def _empty(*shape: int) -> np.ndarray:
    return np.empty(shape, dtype=np.float32)


# ---------------------------------------------------------------------------- layers


class Linear(Module):
    """y = x W^T + b.

    Shapes: x (..., in_features) -> y (..., out_features); weight (out_features, in_features),
    bias (out_features,). Initialised as PyTorch: W, b ~ U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_sizes("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(_empty(out_features, in_features))
        self.bias = Parameter(_empty(out_features)) if bias else None
        _default_init(self.weight, self.bias, rng)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


def _init_conv(
    layer: Module,
    in_channels: int,
    out_channels: int,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    bias: bool,
    rng: np.random.Generator | None,
    transposed: bool = False,
) -> None:
    """The set-up Conv2d and ConvTranspose2d share; only the weight layout differs.

    The weight is (out, in, kh, kw) for a convolution, (in, out, kh, kw) for a transposed
    one (``transposed=True``), as in PyTorch.
    """
    _check_sizes(type(layer).__name__, in_channels=in_channels, out_channels=out_channels)
    layer.in_channels, layer.out_channels = in_channels, out_channels
    layer.kernel_size = as_pair(kernel_size, "kernel_size")
    layer.stride = as_pair(stride, "stride")
    layer.padding = as_pair(padding, "padding")
    channels = (in_channels, out_channels) if transposed else (out_channels, in_channels)
    layer.weight = Parameter(_empty(*channels, *layer.kernel_size))
    layer.bias = Parameter(_empty(out_channels)) if bias else None
    _default_init(layer.weight, layer.bias, rng)


class Conv2d(Module):
    """2-D convolution (cross-correlation), see :func:`tinygan.functional.conv2d`.

    Shapes: x (N, in, H, W) -> y (N, out, OH, OW), OH = (H + 2*padding - kh) // stride + 1;
    weight (out, in, kh, kw), bias (out,). Initialised as PyTorch:
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in*kh*kw.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        _init_conv(self, in_channels, out_channels, kernel_size, stride, padding, bias, rng)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class ConvTranspose2d(Module):
    """2-D transposed convolution, the adjoint of Conv2d (an upsampling layer in generators).

    Shapes: x (N, in, H, W) -> y (N, out, OH, OW),
    OH = (H - 1) * stride - 2*padding + kh + output_padding; weight (in, out, kh, kw) as in
    PyTorch, bias (out,). Initialised as PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) where
    PyTorch's fan_in is computed from the weight's second axis, ``out*kh*kw``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        output_padding: IntPair = 0,
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.output_padding = as_pair(output_padding, "output_padding")
        _init_conv(self, in_channels, out_channels, kernel_size, stride, padding, bias, rng, True)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding
        )


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d; see :func:`tinygan.functional.batch_norm`.

    Parameters weight (C,) = 1 and bias (C,) = 0; buffers running_mean (C,) = 0,
    running_var (C,) = 1 and num_batches_tracked () = 0 (int64), as in PyTorch. In training
    mode the batch statistics normalise and the running ones move towards them by
    ``momentum``; in evaluation mode the running statistics normalise.
    """

    expected_input = ""  # set by subclasses, for error messages

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, num_features=num_features)
        self.num_features, self.eps, self.momentum = num_features, float(eps), float(momentum)
        self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    def _check_input(self, x: Tensor, ndim: int) -> None:
        if x.ndim != ndim or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects input "
                f"{self.expected_input} with C = {self.num_features}, got shape {x.shape}"
            )

    def _normalize(self, x: Tensor) -> Tensor:
        if self.training:
            self.num_batches_tracked += 1
        return F.batch_norm(  # updates the running statistics, this layer's buffers, in place
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features, per feature over the batch."""

    expected_input = "(N, C)"

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, 2)
        return self._normalize(x)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel over N, H and W."""

    expected_input = "(N, C, H, W)"

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, 4)
        return self._normalize(x)


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    """y = x for x > 0, ``negative_slope * x`` otherwise (GAN discriminators use 0.2)."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)


class Tanh(Module):
    """y = tanh(x), the usual last layer of an image generator (outputs in [-1, 1])."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Flatten(Module):
    """Merge axes ``start_dim`` to ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        if start > end:
            raise ValueError(
                f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} "
                f"for an input of shape {x.shape}"
            )
        merged = math.prod(x.shape[start : end + 1])
        return x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1 :])


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size``: (N, 6272) -> (N, 128, 7, 7)."""

    def __init__(self, dim: int, unflattened_size: tuple[int, ...]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim % x.ndim
        if math.prod(self.unflattened_size) != x.shape[dim]:
            raise ValueError(
                f"Unflatten: axis {self.dim} of an input of shape {x.shape} has {x.shape[dim]} "
                f"elements, which cannot be split into {self.unflattened_size}"
            )
        return x.reshape(x.shape[:dim] + self.unflattened_size + x.shape[dim + 1 :])


class SpectralNorm:
    """Spectral normalisation (Miyato et al., 2018) as a forward pre-hook: before each forward
    pass, ``module.weight`` = W / sigma(W), so the layer is 1-Lipschitz (``||W x|| <= ||x||``).

    sigma is the largest singular value of W as a matrix (h, w): axis ``dim`` first, the
    others flattened (a conv weight (out, in*kh*kw)). Power iteration estimates it, one step
    per training forward pass, carried in the buffers u (h,) and v (w,):

        v <- W^T u / ||W^T u||,    u <- W v / ||W v||,    sigma = u^T W v

    u and v are constants of the graph; sigma is differentiated, through W, as in PyTorch.
    ``nn.utils.spectral_norm`` installs it, with PyTorch's names: the trained parameter is
    ``weight_orig``, the buffers ``weight_u`` and ``weight_v``.
    """

    def __init__(self, name: str, n_power_iterations: int, eps: float, dim: int) -> None:
        self.name, self.n_power_iterations, self.eps, self.dim = name, n_power_iterations, eps, dim

    def matrix(self, weight: Any) -> Any:
        """The weight (an array or a Tensor) as the matrix (h, w)."""
        order = (self.dim, *(a for a in range(weight.ndim) if a != self.dim))
        if isinstance(weight, Tensor):
            return F.reshape(F.transpose(weight, order), (weight.shape[self.dim], -1))
        return weight.transpose(order).reshape(weight.shape[self.dim], -1)

    def __call__(self, module: Module) -> None:
        self.normalize(module, power_iteration=module.training)

    def normalize(self, module: Module, power_iteration: bool) -> None:
        """Set ``module.<name>`` = W / u^T W v, after ``n_power_iterations`` steps on u, v."""
        weight = getattr(module, self.name + "_orig")
        u, v = module._buffers[self.name + "_u"], module._buffers[self.name + "_v"]
        if power_iteration:
            w = self.matrix(weight.data)
            for _ in range(self.n_power_iterations):
                v = normalized(w.T @ u, self.eps)
                u = normalized(w @ v, self.eps)
            module._buffers[self.name + "_u"], module._buffers[self.name + "_v"] = u, v
        if fast.enabled():  # the same W / sigma as one op: tinygan/fast/spectral_norm.py
            weight_sn = fast_spectral_norm.SpectralNormalize(self, u, v)(weight)
        else:
            u_row, v_col = Tensor(u.reshape(1, -1)), Tensor(v.reshape(-1, 1))  # constants
            sigma = F.reshape(F.matmul(F.matmul(u_row, self.matrix(weight)), v_col), ())
            weight_sn = ops.mul(weight, ops.pow(sigma, -1.0))
        object.__setattr__(module, self.name, weight_sn)


def normalized(x: Any, eps: float) -> Any:
    """x / max(||x||_2, eps), as torch.nn.functional.normalize (on the device: no sync)."""
    xp = array_module(x)
    return x / xp.maximum(xp.sqrt((x * x).sum()), eps)


class Sequential(Module):
    """Layers applied in order; they are registered as "0", "1", ... (PyTorch's keys)."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, not Module")
            setattr(self, str(i), layer)

    def forward(self, x: Tensor) -> Tensor:
        layers = fast_upsample_conv.fused(self) if fast.enabled() else self._modules.values()
        for layer in layers:
            x = layer(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        """One layer, or a new Sequential of a slice of the layers (renumbered from 0)."""
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


# ---------------------------------------------------------------------------- losses

# Off the loop's path: nn.utils (which installs SpectralNorm when D is built), evaluating,
# more layers; Sequential's fused Upsample+Conv2d.
from tinygan.extras import nn_utils as utils  # noqa: E402, F401
from tinygan.extras.layers import (  # noqa: E402, F401
    BCEWithLogitsLoss,
    Dropout,
    Embedding,
    LayerNorm,
    MaxPool2d,
    MSELoss,
    Sigmoid,
    Upsample,
)
from tinygan.extras.module import evaluating  # noqa: E402, F401
from tinygan.fast import spectral_norm as fast_spectral_norm  # noqa: E402
from tinygan.fast import upsample_conv as fast_upsample_conv  # noqa: E402
