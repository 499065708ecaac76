"""Finite-difference checks of first- and second-order gradients.

For a function f of tensors x_1..x_k with output y, pick a random vector v of y's shape and
look at the scalar s = <v, f(x)>. Its gradient, by reverse mode, is the vector-Jacobian
product v^T J for every input at once; by central differences each entry is

    ds/dx[i] ~ (s(x + eps e_i) - s(x - eps e_i)) / (2 eps),

which has error O(eps^2). One random v exercises every entry of the Jacobian, so
agreement everywhere is strong evidence that backward is right.

The second-order check applies the same test to the function
x -> <u, grad(<v, f(x)>, x, create_graph=True)>, so it checks the derivative of the
backward pass itself (what WGAN-GP's gradient penalty relies on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tinygan.autograd import enable_grad, grad, is_grad_enabled, no_grad
from tinygan.backend import to_numpy
from tinygan.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


def _checked_inputs(inputs: Sequence[Tensor] | Tensor) -> list[Tensor]:
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise ValueError(f"gradcheck: input {i} must be a Tensor with requires_grad=True")
        if t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} is {t.dtype}; finite differences need float64 "
                "(make it with tg.tensor(array, dtype='float64'))"
            )
    return inputs


def _scalar_probe(fn: Callable[..., Tensor], inputs: list[Tensor], seed: int) -> Callable:
    """s(x) = <v, fn(x)> for a fixed random v, so one gradient covers the whole Jacobian."""
    rng = np.random.default_rng(seed)
    weights: list[Tensor] = []

    def probe(*xs: Tensor) -> Tensor:
        out = fn(*xs)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
        if not weights:
            weights.append(Tensor(out.xp.asarray(rng.standard_normal(out.shape), dtype=out.dtype)))
        return (out * weights[0]).sum()

    return probe


def _analytic(scalar: Tensor, inputs: list[Tensor]) -> list[np.ndarray]:
    if not scalar.requires_grad:  # the output does not depend on the inputs at all
        return [np.zeros(t.shape) for t in inputs]
    grads = grad(scalar, inputs, allow_unused=True)
    return [np.zeros(t.shape) if g is None else to_numpy(g.data) for t, g in zip(inputs, grads)]


def _numeric(probe: Callable, inputs: list[Tensor], eps: float) -> list[np.ndarray]:
    out = []
    with no_grad():
        for t in inputs:
            # Index t.data itself: a flattened copy of a non-contiguous array is not t.
            est = np.zeros(t.shape)
            for i in np.ndindex(t.shape):
                original = float(t.data[i])
                t.data[i] = original + eps
                plus = float(probe(*inputs).data)
                t.data[i] = original - eps
                minus = float(probe(*inputs).data)
                t.data[i] = original
                est[i] = (plus - minus) / (2 * eps)
            out.append(est)
    return out


def _compare(analytic, numeric, atol: float, rtol: float, what: str) -> None:
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        excess = np.abs(a - n) - (atol + rtol * np.abs(n))
        if excess.size and excess.max() > 0:
            worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), a.shape))
            raise GradcheckError(
                f"{what} of input {k} disagrees with finite differences at index {worst}: "
                f"analytic {a[worst]:.8g}, numeric {n[worst]:.8g} "
                f"(|diff| {abs(a[worst] - n[worst]):.3g} > atol {atol} + rtol {rtol} * |numeric|)"
            )


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor] | Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check reverse-mode gradients of ``fn`` against central finite differences.

    Args:
        fn: maps the input tensors to one output tensor.
        inputs: float64 tensors with ``requires_grad=True`` (perturbed in place, restored).
        eps: finite-difference step.
        atol, rtol: an entry passes when |analytic - numeric| <= atol + rtol * |numeric|.
        seed: seeds the random output weighting v.

    Returns:
        True; raises :class:`GradcheckError` naming the worst entry otherwise.
    """
    inputs = _checked_inputs(inputs)
    probe = _scalar_probe(fn, inputs, seed)
    analytic = _analytic(probe(*inputs), inputs)
    _compare(analytic, _numeric(probe, inputs, eps), atol, rtol, "gradient")
    return True


def gradgradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor] | Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check second-order gradients: the gradient of ``fn``'s gradient, by finite differences.

    The function checked is x -> <u, d<v, fn(x)>/dx> for random v and u, whose analytic
    gradient needs ``backward`` with ``create_graph=True`` to be differentiable itself.
    """
    inputs = _checked_inputs(inputs)
    probe = _scalar_probe(fn, inputs, seed)
    rng = np.random.default_rng(seed + 1)
    directions = [rng.standard_normal(t.shape) for t in inputs]

    def first_derivative(*xs: Tensor) -> Tensor:
        with enable_grad():  # also inside the no_grad of the finite differences
            scalar = probe(*xs)
        if not scalar.requires_grad:
            return scalar * 0.0
        grads = grad(scalar, list(xs), create_graph=is_grad_enabled(), allow_unused=True)
        total = None
        for g, u in zip(grads, directions):
            if g is not None:
                term = (g * Tensor(g.xp.asarray(u, dtype=g.dtype))).sum()
                total = term if total is None else total + term
        return total if total is not None else scalar * 0.0

    analytic = _analytic(first_derivative(*inputs), inputs)
    numeric = _numeric(first_derivative, inputs, eps)
    _compare(analytic, numeric, atol, rtol, "second-order gradient")
    return True
