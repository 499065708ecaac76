"""The same model in PyTorch, and back: ``to_torch`` and ``from_torch``.

tinygan is where a GAN is learned; when the data or the model outgrows one CPU, PyTorch
is where it scales (GPUs, DistributedDataParallel). The bridge carries a model, and the
optimizer state of a run, across, so nothing learned is lost::

    from tinygan.bridge import adam_to_torch, from_torch, to_torch

    twin = to_torch(G)                      # a torch.nn.Module made of PyTorch's own layers
    opt = adam_to_torch(opt_g, G, twin)     # torch.optim.Adam with opt_g's moments and steps
    ...                                     # train in PyTorch
    G2 = from_torch(twin)                   # a tinygan model again, with the new weights

**Layer by layer.** Each tinygan layer has a PyTorch counterpart with the same name, the
same settings and the same ``state_dict`` keys and layouts (tinygan chose PyTorch's), so
converting is a table lookup per layer and one copy of the state dict for the whole model.
A container is converted with its children under the same names, so every key, from
``0.weight`` to ``net.1.running_var``, is the same on both sides. The floating-point dtype
of every array is kept (float64 models stay float64), and so are each layer's training
mode and each parameter's ``requires_grad``. The converted model lives on the CPU; move it
with ``.to("cuda")``.

The layers: ``Linear``, ``Conv2d``, ``ConvTranspose2d``, ``BatchNorm1d``, ``BatchNorm2d``,
``LayerNorm``, ``Embedding``, ``Upsample``, ``MaxPool2d``, ``Dropout``, ``ReLU``,
``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``Flatten``, ``Unflatten``, ``Sequential``, and the
demos' own modules, which get PyTorch twins here: the conditional generator and the
projection discriminator of :mod:`tinygan.models`, the semi-supervised classifier and its
Gaussian noise layer of :mod:`tinygan.semi_supervised`. A layer under spectral
normalisation (``nn.utils.spectral_norm``) keeps it, as PyTorch's
``torch.nn.utils.spectral_norm`` with the same settings: ``weight_orig``, ``weight_u`` and
``weight_v`` mean the same on both sides (the same power iteration, in training mode only,
and W / u^T W v). Any other module is refused with an error that names it and where it
sits in the model; a PyTorch layer with a setting tinygan lacks (a dilated convolution,
``padding_idx``, a forward hook) is refused the same way, naming the setting. Randomness
does not cross: a Dropout or GaussianNoise layer draws from its own library's generator.

**Adam.** tinygan's :class:`~tinygan.optim.Adam` is PyTorch's ``torch.optim.Adam``
(``amsgrad=False``), term by term. With g_t the gradient (plus ``weight_decay * p``, L2
decay added to the gradient, not AdamW's decoupled decay) at a parameter's t-th step:

    m_t = beta1 m_{t-1} + (1 - beta1) g_t,      v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
    p  <- p - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

with eps added after the bias-corrected square root, in both. Both count the steps t per
parameter (a parameter without a gradient neither moves nor counts). So the state maps
one to one: tinygan's ``state.<i>.exp_avg``, ``exp_avg_sq`` and ``step`` of parameter i
are PyTorch's ``state[i]["exp_avg"]``, ``["exp_avg_sq"]`` and ``["step"]`` (a float
tensor in PyTorch), and the first PyTorch step after :func:`adam_to_torch` is the step
tinygan would have taken, up to rounding. Parameters are matched by their ``state_dict``
name, not by position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinygan import models, nn, semi_supervised
from tinygan.backend import to_numpy
from tinygan.optim import Adam

try:
    import torch
    from torch.nn.utils.spectral_norm import SpectralNorm as TorchSpectralNorm
except ImportError as err:  # torch is an optional extra: say how to get it
    raise ImportError(
        "tinygan.bridge needs PyTorch, an optional extra of tinygan: "
        'pip install -e ".[torch]" in a checkout of tinygan (or pip install torch)'
    ) from err

T = torch.nn


class NoCounterpartError(TypeError):
    """A module (or one of its settings) has no counterpart in the other library."""


# ------------------------------------------------------------------ PyTorch twins


class TorchConditionalGenerator(T.Module):
    """PyTorch twin of :class:`tinygan.models.ConditionalGenerator`: G(z, y) = net([z, embed(y)]).

    Args:
        embed: the label embedding, ``Embedding(num_classes, num_classes)``.
        net: DCGAN-28's generator on the (N, z_dim + num_classes) input.
    """

    def __init__(self, embed: T.Embedding, net: T.Module) -> None:
        super().__init__()
        self.embed, self.net = embed, net

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, z_dim) noise and (N,) integer labels -> (N, 1, 28, 28) images in [-1, 1]."""
        return self.net(torch.cat([z, self.embed(labels)], dim=1))


class TorchProjectionDiscriminator(T.Module):
    """PyTorch twin of :class:`tinygan.models.ProjectionDiscriminator`:
    D(x, y) = linear(phi(x)) + <embed(y), phi(x)>, phi = features.

    Args:
        features: DCGAN-28's discriminator up to its Flatten, phi(x) (N, 6272).
        linear: its last layer, ``Linear(6272, 1)``.
        embed: one learned vector per class, ``Embedding(num_classes, 6272)``.
    """

    def __init__(self, features: T.Module, linear: T.Linear, embed: T.Embedding) -> None:
        super().__init__()
        self.features, self.linear, self.embed = features, linear, embed

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) images and (N,) integer labels -> (N, 1) scores."""
        h = self.features(x)  # (N, 6272)
        projection = (self.embed(labels) * h).sum(dim=1, keepdim=True)  # (N, 1)
        return self.linear(h) + projection


class TorchClassifier(T.Module):
    """PyTorch twin of :class:`tinygan.semi_supervised.Classifier`: head(body(x)), and the
    features body(x) for feature matching.
    """

    def __init__(self, body: T.Module, head: T.Module) -> None:
        super().__init__()
        self.body, self.head = body, head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class TorchGaussianNoise(T.Module):
    """PyTorch twin of :class:`tinygan.semi_supervised.GaussianNoise`: y = x + std * n,
    n ~ N(0, I), in training mode (drawn from PyTorch's generator); y = x in eval mode.
    """

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0.0:
            return x
        return x + self.std * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"std={self.std}"


# ------------------------------------------------------------------ the tables of counterparts

Convert = Callable[[str], Any]  # converts the child of that name, keeping its path for errors


def _biased(m: Any) -> bool:
    return m.bias is not None


def _torch_conv(cls: type, m: Any, *output_padding: Any) -> T.Module:
    """PyTorch's Conv2d or ConvTranspose2d (with its output padding) with ``m``'s settings."""
    sizes = (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, *output_padding)
    return cls(*sizes, bias=_biased(m))


# tinygan layer -> the same PyTorch layer, from the tinygan layer and its converted children.
_TO_TORCH: dict[type, Callable[[Any, Convert], T.Module]] = {
    nn.Linear: lambda m, sub: T.Linear(m.in_features, m.out_features, _biased(m)),
    nn.Conv2d: lambda m, sub: _torch_conv(T.Conv2d, m),
    nn.ConvTranspose2d: lambda m, sub: _torch_conv(T.ConvTranspose2d, m, m.output_padding),
    nn.BatchNorm1d: lambda m, sub: T.BatchNorm1d(m.num_features, m.eps, m.momentum),
    nn.BatchNorm2d: lambda m, sub: T.BatchNorm2d(m.num_features, m.eps, m.momentum),
    nn.LayerNorm: lambda m, sub: T.LayerNorm(
        m.normalized_shape, m.eps, m.weight is not None, bias=_biased(m)
    ),
    nn.Embedding: lambda m, sub: T.Embedding(m.num_embeddings, m.embedding_dim),
    nn.Upsample: lambda m, sub: T.Upsample(m.size, m.scale_factor, m.mode),
    nn.MaxPool2d: lambda m, sub: T.MaxPool2d(m.kernel_size, m.stride, m.padding),
    nn.Dropout: lambda m, sub: T.Dropout(m.p),
    nn.ReLU: lambda m, sub: T.ReLU(),
    nn.LeakyReLU: lambda m, sub: T.LeakyReLU(m.negative_slope),
    nn.Tanh: lambda m, sub: T.Tanh(),
    nn.Sigmoid: lambda m, sub: T.Sigmoid(),
    nn.Flatten: lambda m, sub: T.Flatten(m.start_dim, m.end_dim),
    nn.Unflatten: lambda m, sub: T.Unflatten(m.dim, m.unflattened_size),
    nn.Sequential: lambda m, sub: T.Sequential(*(sub(str(i)) for i in range(len(m)))),
    models.ConditionalGenerator: lambda m, sub: TorchConditionalGenerator(sub("embed"), sub("net")),
    models.ProjectionDiscriminator: lambda m, sub: TorchProjectionDiscriminator(
        sub("features"), sub("linear"), sub("embed")
    ),
    semi_supervised.Classifier: lambda m, sub: TorchClassifier(sub("body"), sub("head")),
    semi_supervised.GaussianNoise: lambda m, sub: TorchGaussianNoise(m.std),
}


def _settings(path: str, m: T.Module, **supported: Any) -> None:
    """Refuse a PyTorch layer whose setting differs from the one value tinygan supports."""
    for name, value in supported.items():
        if getattr(m, name) != value:
            raise NoCounterpartError(
                f"from_torch: {type(m).__name__} at {_where(path)} has {name}="
                f"{getattr(m, name)!r}; tinygan's {type(m).__name__} supports only {value!r}"
            )


def _conv(m: T.Module, path: str) -> None:
    _settings(path, m, dilation=(1, 1), groups=1, padding_mode="zeros")
    if isinstance(m.padding, str):  # "same" / "valid"
        raise NoCounterpartError(
            f"from_torch: {type(m).__name__} at {_where(path)} has padding={m.padding!r}; "
            "tinygan takes the padding as numbers"
        )


def _batch_norm(cls: type, m: T.Module, path: str) -> nn.Module:
    _settings(path, m, affine=True, track_running_stats=True)
    if m.momentum is None:
        raise NoCounterpartError(
            f"from_torch: {type(m).__name__} at {_where(path)} has momentum=None (a "
            "cumulative average); tinygan's BatchNorm takes a number"
        )
    return cls(m.num_features, m.eps, m.momentum)


def _embedding(m: T.Embedding, path: str) -> nn.Embedding:
    _settings(path, m, padding_idx=None, max_norm=None, scale_grad_by_freq=False, sparse=False)
    return nn.Embedding(m.num_embeddings, m.embedding_dim)


def _upsample(m: T.Upsample, path: str) -> nn.Upsample:
    _settings(path, m, mode="nearest")
    return nn.Upsample(m.size, m.scale_factor)


def _max_pool(m: T.MaxPool2d, path: str) -> nn.MaxPool2d:
    _settings(path, m, dilation=1, ceil_mode=False, return_indices=False)
    return nn.MaxPool2d(m.kernel_size, m.stride, m.padding)


def _conv2d(m: T.Conv2d, path: str) -> nn.Conv2d:
    _conv(m, path)
    return nn.Conv2d(
        m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=_biased(m)
    )


def _conv_transpose2d(m: T.ConvTranspose2d, path: str) -> nn.ConvTranspose2d:
    _conv(m, path)
    return nn.ConvTranspose2d(
        m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.output_padding,
        bias=_biased(m),
    )  # fmt: skip


def _rebuilt(cls: type, **children: nn.Module) -> nn.Module:
    """A tinygan module of class ``cls`` made of ``children`` (its converted layers).

    The class's own ``__init__`` would draw fresh weights of default sizes; the layers come
    from the twin instead, so only the Module's registries are set up before they are added.
    """
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    for name, child in children.items():
        setattr(module, name, child)
    return module


# PyTorch layer -> the same tinygan layer (the layer's path is for error messages).
_FROM_TORCH: dict[type, Callable[[Any, Convert, str], nn.Module]] = {
    T.Linear: lambda m, sub, path: nn.Linear(m.in_features, m.out_features, _biased(m)),
    T.Conv2d: lambda m, sub, path: _conv2d(m, path),
    T.ConvTranspose2d: lambda m, sub, path: _conv_transpose2d(m, path),
    T.BatchNorm1d: lambda m, sub, path: _batch_norm(nn.BatchNorm1d, m, path),
    T.BatchNorm2d: lambda m, sub, path: _batch_norm(nn.BatchNorm2d, m, path),
    T.LayerNorm: lambda m, sub, path: nn.LayerNorm(
        m.normalized_shape, m.eps, m.elementwise_affine, bias=_biased(m)
    ),
    T.Embedding: lambda m, sub, path: _embedding(m, path),
    T.Upsample: lambda m, sub, path: _upsample(m, path),
    T.MaxPool2d: lambda m, sub, path: _max_pool(m, path),
    T.Dropout: lambda m, sub, path: nn.Dropout(m.p),
    T.ReLU: lambda m, sub, path: nn.ReLU(),
    T.LeakyReLU: lambda m, sub, path: nn.LeakyReLU(m.negative_slope),
    T.Tanh: lambda m, sub, path: nn.Tanh(),
    T.Sigmoid: lambda m, sub, path: nn.Sigmoid(),
    T.Flatten: lambda m, sub, path: nn.Flatten(m.start_dim, m.end_dim),
    T.Unflatten: lambda m, sub, path: nn.Unflatten(m.dim, m.unflattened_size),
    T.Sequential: lambda m, sub, path: nn.Sequential(*(sub(str(i)) for i in range(len(m)))),
    TorchConditionalGenerator: lambda m, sub, path: _rebuilt(
        models.ConditionalGenerator, embed=sub("embed"), net=sub("net")
    ),
    TorchProjectionDiscriminator: lambda m, sub, path: _rebuilt(
        models.ProjectionDiscriminator,
        features=sub("features"),
        linear=sub("linear"),
        embed=sub("embed"),
    ),
    TorchClassifier: lambda m, sub, path: _rebuilt(
        semi_supervised.Classifier, body=sub("body"), head=sub("head")
    ),
    TorchGaussianNoise: lambda m, sub, path: semi_supervised.GaussianNoise(m.std),
}


def _where(path: str) -> str:
    return f"{path!r}" if path else "the top of the model"


def _no_counterpart(direction: str, module: Any, path: str, table: dict) -> NoCounterpartError:
    cls = type(module)
    known = ", ".join(sorted({k.__name__ for k in table}))
    return NoCounterpartError(
        f"{direction}: {cls.__module__}.{cls.__qualname__} at {_where(path)} has no "
        f"counterpart; the bridge converts {known} (each by its exact class: a subclass may "
        "compute something else). Add a twin for it to tinygan/bridge.py, or convert its "
        "layers one by one"
    )


def _convert_tree(module: Any, path: str, table: dict, direction: str) -> Any:
    """The counterpart of ``module``: its row of ``table`` applied, children converted first."""
    build = table.get(type(module))
    if build is None:
        raise _no_counterpart(direction, module, path, table)

    def sub(name: str) -> Any:
        child_path = f"{path}.{name}" if path else name
        return _convert_tree(getattr(module, name), child_path, table, direction)

    if direction == "to_torch":
        converted = build(module, sub)
        for hook in _tinygan_hooks(module, path):
            torch.nn.utils.spectral_norm(
                converted, hook.name, hook.n_power_iterations, hook.eps, hook.dim
            )
        return converted
    converted = build(module, sub, path)
    for hook in _torch_hooks(module, path):
        nn.utils.spectral_norm(converted, hook.name, hook.n_power_iterations, hook.eps, hook.dim)
    if any(p.dtype == torch.float64 for p in module.parameters(recurse=False)):
        converted.double()  # tinygan's layers start in float32 (only leaves have parameters)
    return converted


def _tinygan_hooks(module: nn.Module, path: str) -> list[Any]:
    """The spectral normalisations of a tinygan layer (its only kind of forward hook)."""
    hooks = module._forward_pre_hooks
    for hook in hooks:
        if not isinstance(hook, nn.SpectralNorm) or hook.n_power_iterations < 1:
            raise NoCounterpartError(
                f"to_torch: {type(module).__name__} at {_where(path)} has a forward hook "
                f"{hook!r} that PyTorch's layers lack (spectral_norm with "
                "n_power_iterations >= 1 carries over)"
            )
    return hooks


def _torch_hooks(module: T.Module, path: str) -> list[Any]:
    """The spectral normalisations of a PyTorch layer; any other hook is refused, since it
    changes what the layer computes.
    """
    hooks = list(module._forward_pre_hooks.values())
    others = [h for h in hooks if not isinstance(h, TorchSpectralNorm)]
    if others or module._forward_hooks:
        raise NoCounterpartError(
            f"from_torch: {type(module).__name__} at {_where(path)} has forward hooks "
            f"{others + list(module._forward_hooks.values())}; of those, only "
            "torch.nn.utils.spectral_norm has a tinygan counterpart"
        )
    return hooks


# ------------------------------------------------------------------ models


def to_torch(module: nn.Module) -> torch.nn.Module:
    """The same model built from PyTorch's layers, with a copy of the weights and buffers.

    Outputs and gradients agree with tinygan's to rounding (in float64 we measured 4e-14),
    in training and in evaluation mode; each layer's mode and each parameter's
    ``requires_grad`` are kept. The model is on the CPU, in the dtype of its arrays.

    Raises:
        NoCounterpartError: a module has no PyTorch counterpart (the message names it and
            where it sits in the model).
    """
    twin = _convert_tree(module, "", _TO_TORCH, "to_torch")
    state = {k: torch.from_numpy(np.array(to_numpy(v))) for k, v in module.state_dict().items()}
    twin.load_state_dict(state, assign=True)  # the arrays' dtypes, not the layers' float32
    _copy_modes(dict(module.named_modules()), twin.named_modules())
    requires_grad = {name: p.requires_grad for name, p in module.named_parameters()}
    for name, p in twin.named_parameters():
        p.requires_grad_(requires_grad[name])
    return twin


def from_torch(module: torch.nn.Module) -> nn.Module:
    """The same model built from tinygan's layers, with a copy of the weights and buffers.

    The reverse of :func:`to_torch`, for the same layers; float32 and float64 arrays keep
    their dtype; the tinygan model is on the CPU (move it with ``.to("cuda")``).

    Raises:
        NoCounterpartError: a module, or a setting of one, has no tinygan counterpart.
        TypeError: an array is in a dtype tinygan does not hold (float16, bfloat16).
    """
    twin = _convert_tree(module, "", _FROM_TORCH, "from_torch")
    state = {key: _host(key, t) for key, t in module.state_dict().items()}
    twin.load_state_dict(state)
    _copy_modes(dict(module.named_modules()), twin.named_modules())
    requires_grad = {name: p.requires_grad for name, p in module.named_parameters()}
    for name, p in twin.named_parameters():
        p.requires_grad = requires_grad[name]
    return twin


def _host(key: str, tensor: torch.Tensor) -> np.ndarray:
    """A NumPy copy of a PyTorch tensor, in a dtype that tinygan holds."""
    if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"from_torch: {key!r} is {tensor.dtype}; tinygan holds float32 and float64 "
            "(convert the model first, e.g. model.float())"
        )
    return tensor.detach().cpu().numpy().copy()


def _copy_modes(source: dict[str, Any], target: Iterable[tuple[str, Any]]) -> None:
    """Each module of ``target`` in the training mode of the ``source`` module of its name."""
    for name, m in target:
        m.training = source[name].training


# ------------------------------------------------------------------ Adam


def adam_to_torch(optimizer: Adam, module: nn.Module, twin: torch.nn.Module) -> torch.optim.Adam:
    """``torch.optim.Adam`` over ``twin``'s parameters, continuing ``optimizer`` exactly.

    The hyperparameters, the moments m and v and each parameter's step count t are copied
    (see the module docstring for why the update rules are the same).

    Args:
        optimizer: tinygan's Adam over (some of) ``module``'s parameters.
        module: the tinygan model.
        twin: ``to_torch(module)``, or a model with the same parameter names.

    Raises:
        ValueError: a parameter of ``optimizer`` is not one of ``module``'s.
    """
    twin_params = dict(twin.named_parameters())
    names = _names(optimizer.params, module, "adam_to_torch", "the tinygan model")
    torch_adam = torch.optim.Adam(
        [twin_params[name] for name in names],
        lr=optimizer.lr,
        betas=(optimizer.beta1, optimizer.beta2),
        eps=optimizer.eps,
        weight_decay=optimizer.weight_decay,
    )
    state = torch_adam.state_dict()  # PyTorch's format: {"state": {i: ...}, "param_groups": ...}
    for i, entries in enumerate(optimizer.state):
        if entries:  # a parameter that never had a gradient has no state yet, in both
            state["state"][i] = {
                "step": torch.tensor(float(entries["step"])),
                "exp_avg": torch.from_numpy(np.array(to_numpy(entries["exp_avg"]))),
                "exp_avg_sq": torch.from_numpy(np.array(to_numpy(entries["exp_avg_sq"]))),
            }
    torch_adam.load_state_dict(state)  # moves the moments to each parameter's device and dtype
    return torch_adam


def adam_from_torch(optimizer: torch.optim.Adam, twin: torch.nn.Module, module: nn.Module) -> Adam:
    """tinygan's Adam over ``module``'s parameters, continuing ``optimizer`` exactly.

    The reverse of :func:`adam_to_torch`. To write the state into an existing tinygan
    optimizer: ``opt.load_state_dict(adam_from_torch(torch_opt, twin, model).state_dict())``.

    Args:
        optimizer: ``torch.optim.Adam`` with one parameter group, over ``twin``'s parameters.
        twin: the PyTorch model.
        module: the tinygan model with the same parameter names, e.g. ``from_torch(twin)``.

    Raises:
        NoCounterpartError: the optimizer uses a setting tinygan's Adam lacks (amsgrad,
            maximize, decoupled weight decay, several parameter groups).
        ValueError: a parameter of ``optimizer`` is not one of ``twin``'s.
    """
    if len(optimizer.param_groups) != 1:
        raise NoCounterpartError(
            f"adam_from_torch: the optimizer has {len(optimizer.param_groups)} parameter "
            "groups; tinygan's Adam has one (make one tinygan optimizer per group)"
        )
    group = optimizer.param_groups[0]
    for name in ("amsgrad", "maximize", "decoupled_weight_decay"):
        if group.get(name, False):
            raise NoCounterpartError(f"adam_from_torch: {name}=True has no tinygan counterpart")
    names = _names(group["params"], twin, "adam_from_torch", "the PyTorch model")
    params = dict(module.named_parameters())
    ours = Adam(
        [params[name] for name in names],
        lr=float(group["lr"]),
        betas=(float(group["betas"][0]), float(group["betas"][1])),
        eps=float(group["eps"]),
        weight_decay=float(group["weight_decay"]),
    )
    state = ours.state_dict()  # the hyperparameters; the moments follow
    for i, p in enumerate(group["params"]):
        entries = optimizer.state.get(p)
        if entries:
            state[f"state.{i}.step"] = round(float(entries["step"]))
            state[f"state.{i}.exp_avg"] = _host(names[i], entries["exp_avg"])
            state[f"state.{i}.exp_avg_sq"] = _host(names[i], entries["exp_avg_sq"])
    ours.load_state_dict(state)
    return ours


def _names(params: Iterable[Any], model: Any, function: str, what: str) -> list[str]:
    """The ``state_dict`` name in ``model`` of each parameter of ``params`` (by identity)."""
    names = {id(p): name for name, p in model.named_parameters()}
    found = []
    for i, p in enumerate(params):
        if id(p) not in names:
            raise ValueError(
                f"{function}: parameter {i} of the optimizer (shape {tuple(p.shape)}) is not a "
                f"parameter of {what}"
            )
        found.append(names[id(p)])
    return found
