"""``nn.utils``: spectral normalisation (Miyato et al., 2018), as ``torch.nn.utils`` has it.

Spectral normalisation divides a layer's weight by its largest singular value sigma, so the
layer is 1-Lipschitz as a linear map and a discriminator built from such layers and
1-Lipschitz activations cannot sharpen its verdict without bound: the SN-GAN recipe, with
the hinge loss (:func:`tinygan.losses.hinge_d_loss`). The hook that computes W / sigma
before each forward pass, and the power iteration that estimates sigma, are
:class:`tinygan.nn.SpectralNorm` (the main demo's discriminator uses it); this module
installs it with PyTorch's names and checks: the trained parameter is ``weight_orig``, the
buffers ``weight_u`` (h,) and ``weight_v`` (w,), and ``weight`` is the normalised weight,
so a state dict moves to and from ``torch.nn.utils.spectral_norm`` unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinygan.backend import device_of, to_device
from tinygan.tensor import Tensor

if TYPE_CHECKING:
    from tinygan.nn import Module


def spectral_norm(
    module: Module,
    name: str = "weight",
    n_power_iterations: int = 1,
    eps: float = 1e-12,
    dim: int | None = None,
    rng: np.random.Generator | None = None,
) -> Module:
    """Apply spectral normalisation to ``module.<name>`` in place; returns ``module``.

    Args:
        module: a layer with a weight: Linear, Conv2d, ConvTranspose2d (or any module with
            a Parameter called ``name``).
        name: the parameter to normalise.
        n_power_iterations: power-iteration steps per training forward pass, >= 1 (or 0:
            keep u and v as they are).
        eps: keeps the normalisations finite when a vector is (near) zero.
        dim: the weight's output axis; None: 1 for ConvTranspose2d, 0 otherwise.
        rng: draws the starting u and v (a NumPy Generator; None: a fresh one). PyTorch
            draws them from its global generator.

    Example:
        >>> D = nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(1, 64, 4, 2, 1, rng=rng)), ...)
        >>> list(D[0].state_dict())
        ['bias', 'weight_orig', 'weight_u', 'weight_v']
    """
    from tinygan.nn import ConvTranspose2d, Parameter, SpectralNorm, normalized

    if any(
        isinstance(hook, SpectralNorm) and hook.name == name for hook in module._forward_pre_hooks
    ):
        raise RuntimeError(
            f"spectral_norm: {name!r} of {type(module).__name__} is already normalised"
        )
    weight = module._parameters.get(name)
    if not isinstance(weight, Parameter):
        raise ValueError(
            f"spectral_norm: {type(module).__name__} has no parameter {name!r} "
            f"(its parameters: {sorted(module._parameters)})"
        )
    if (
        isinstance(n_power_iterations, bool)
        or not isinstance(n_power_iterations, int)
        or n_power_iterations < 0
    ):
        raise ValueError(
            f"spectral_norm: n_power_iterations must be an integer >= 0, got {n_power_iterations!r}"
        )
    if not eps > 0.0:
        raise ValueError(f"spectral_norm: eps must be > 0, got {eps}")
    if dim is None:
        dim = 1 if isinstance(module, ConvTranspose2d) else 0
    hook = SpectralNorm(name, n_power_iterations, float(eps), dim)
    h, w = hook.matrix(weight.data).shape
    rng = np.random.default_rng() if rng is None else rng
    u, v = (
        to_device(
            normalized(rng.standard_normal(n), hook.eps).astype(weight.dtype),
            device_of(weight.data),
        )
        for n in (h, w)
    )
    del module._parameters[name]
    setattr(module, name + "_orig", weight)
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    module._forward_pre_hooks.append(hook)
    # Until the first forward pass module.<name> is weight_orig's own array, as in PyTorch,
    # so an initialisation applied after spectral_norm (init.normal_(m.weight)) reaches it.
    unnormalised = Tensor(weight.data)
    unnormalised._changes = weight._changes
    object.__setattr__(module, name, unnormalised)
    return module


def spectral_norm_layers(module: Module, rng: np.random.Generator) -> Module:
    """:func:`spectral_norm` on every Linear, Conv2d and ConvTranspose2d layer of ``module``,
    in the order of ``module.modules()``, the starting u and v of each drawn from ``rng``;
    returns ``module``.
    """
    from tinygan.nn import Conv2d, ConvTranspose2d, Linear

    for layer in module.modules():
        if isinstance(layer, (Linear, Conv2d, ConvTranspose2d)):
            spectral_norm(layer, rng=rng)
    return module
