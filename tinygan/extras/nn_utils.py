"""``nn.utils``: spectral normalisation (Miyato et al., 2018), as ``torch.nn.utils`` has it.

Spectral normalisation divides a layer's weight by its largest singular value sigma, so the
layer is 1-Lipschitz as a linear map (``||W x|| <= ||x||``) and a discriminator built from
such layers and 1-Lipschitz activations cannot sharpen its verdict without bound: the
SN-GAN recipe, with the hinge loss (:func:`tinygan.losses.hinge_d_loss`).

sigma is estimated by power iteration, carried from one forward pass to the next. With the
weight seen as a matrix W (h, w) (a conv weight (out, in, kh, kw) as (out, in*kh*kw); a
transposed conv's (in, out, kh, kw) with its output axis first):

    v <- W^T u / ||W^T u||,    u <- W v / ||W v||          (n_power_iterations times)
    sigma = u^T W v,           W_SN = W / sigma

u and v are buffers (saved in the state dict, moved with the module); the iteration runs
in training mode only, one step per forward pass, so u converges to the top singular
vector as training goes on, while an evaluation pass is a pure function of the saved
state. The iteration is not differentiated (u and v are constants of the graph); sigma is,
through W, as in PyTorch, so the gradient sees W_SN's dependence on W.

The layer keeps PyTorch's names: the trained parameter is ``weight_orig``, the buffers
``weight_u`` (h,) and ``weight_v`` (w,), and ``weight`` is the normalised weight, computed
before each forward pass, so a state dict moves to and from
``torch.nn.utils.spectral_norm`` unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tinygan.backend import array_module, device_of, to_device
from tinygan.extras.ops import div
from tinygan.ops import matmul, reshape, transpose
from tinygan.tensor import Tensor

if TYPE_CHECKING:
    from tinygan.nn import Module


class SpectralNorm:
    """The hook :func:`spectral_norm` installs: sets ``module.<name>`` = W / sigma(W)."""

    def __init__(self, name: str, n_power_iterations: int, eps: float, dim: int) -> None:
        self.name, self.n_power_iterations, self.eps, self.dim = name, n_power_iterations, eps, dim

    def matrix(self, weight: Any) -> Any:
        """The weight (array or Tensor) as the matrix (h, w) whose top singular value is
        sigma: axis ``dim`` first, the others flattened.
        """
        order = (self.dim, *(a for a in range(weight.ndim) if a != self.dim))
        if isinstance(weight, Tensor):
            return reshape(transpose(weight, order), (weight.shape[self.dim], -1))
        return weight.transpose(order).reshape(weight.shape[self.dim], -1)

    def __call__(self, module: Module) -> None:
        self.normalize(module, power_iteration=module.training)

    def normalize(self, module: Module, power_iteration: bool) -> None:
        """Set ``module.<name>`` = W / u^T W v, after ``n_power_iterations`` steps of power
        iteration on u and v when ``power_iteration`` is on.
        """
        weight = getattr(module, self.name + "_orig")
        u, v = module._buffers[self.name + "_u"], module._buffers[self.name + "_v"]
        if power_iteration:
            w = self.matrix(weight.data)
            for _ in range(self.n_power_iterations):
                v = _normalized(w.T @ u, self.eps)
                u = _normalized(w @ v, self.eps)
            module._buffers[self.name + "_u"], module._buffers[self.name + "_v"] = u, v
        u_row, v_col = Tensor(u.reshape(1, -1)), Tensor(v.reshape(-1, 1))  # constants
        sigma = matmul(matmul(u_row, self.matrix(weight)), v_col).reshape(())
        object.__setattr__(module, self.name, div(weight, sigma))


def _normalized(x: Any, eps: float) -> Any:
    """x / max(||x||_2, eps), as torch.nn.functional.normalize (on the device: no sync)."""
    xp = array_module(x)
    return x / xp.maximum(xp.sqrt((x * x).sum()), eps)


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
    from tinygan.nn import ConvTranspose2d, Parameter

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
            _normalized(rng.standard_normal(n), hook.eps).astype(weight.dtype),
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
