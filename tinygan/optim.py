"""Optimizers: ``Adam``, ``from tinygan import optim`` (``optim.SGD``: tinygan/extras/sgd.py).

An optimizer holds a list of parameters and moves each one against its gradient:
``optimizer.minimize(loss)`` sets the gradients and steps (the update idiom of every loop
in tinygan); ``step()`` alone uses the ``.grad`` that ``loss.backward()`` left. The
update rules are PyTorch's, so hyperparameters carry over. Implementation rules, each for a reason:

* updates are written **in place** on ``param.data`` (layers keep the same Parameter
  objects, and no graph is recorded: these are raw array operations);
* the gradient arrays are never modified (``param.grad`` stays what backward produced);
* hyperparameters are Python floats, so a float32 parameter stays float32 (a NumPy
  float64 scalar would promote it);
* whole arrays at a time, in the gradient's array module (NumPy or CuPy): no loop over
  elements, and the same code runs on a GPU.

(Adam's fast path, :mod:`tinygan.fast.optim`, runs the same update over flat arrays that
hold every moment, without temporaries, to the last bit the same.)
``state_dict()`` and ``load_state_dict`` (for checkpoints and exact resumes) come from
:mod:`tinygan.extras.optim`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from tinygan import fast
from tinygan.autograd import grad
from tinygan.backend import array_module
from tinygan.extras.optim import OptimizerExtras
from tinygan.tensor import Tensor


class Optimizer(OptimizerExtras):
    """Base class: the parameter list, per-parameter ``state``, ``zero_grad``, state dicts.

    Subclasses name their hyperparameters in ``hyperparameters`` and their per-parameter
    state in ``state_names`` (arrays of the parameter's shape, except an integer "step"
    count), and implement ``step``.
    """

    hyperparameters: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} must be a Tensor with "
                    "requires_grad=True (pass model.parameters())"
                )
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``) before the next backward."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def minimize(self, loss: Tensor) -> None:
        """One update against ``loss``: every parameter's ``.grad`` = d loss / d parameter, then
        :meth:`step`.

        PyTorch's ``zero_grad(); loss.backward(); step()``, with one difference:
        ``tinygan.grad(loss, params)`` walks only the part of the graph that leads to *these*
        parameters. A GAN's generator loss runs through the discriminator, and ``backward()``
        would compute D's weight gradients too, only for the next D update to overwrite them.
        A parameter the loss does not depend on gets ``.grad = None`` and is not moved.
        """
        for p, g in zip(self.params, grad(loss, self.params, allow_unused=True)):
            p.grad = g
        self.step()

    def _gradients(self) -> Iterable[tuple[Tensor, Any, dict[str, Any]]]:
        """``(param, gradient array, state)`` for each parameter that has a gradient.

        The gradient array is row-major, like the parameter and its state (a copy when it is
        not: a weight's gradient from ``tinygan.grad`` can be the transpose of a matrix
        product), because an update that mixes memory orders reads one operand across rows.
        """
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                yield p, array_module(p.data).ascontiguousarray(p.grad.data), state


def _require_finite_non_negative(optimizer: str, **values: float) -> None:
    """Raise ValueError naming the first hyperparameter that is NaN, infinite or negative."""
    for name, value in values.items():
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{optimizer}: {name} must be a finite number >= 0, got {value}")


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction and L2 weight decay (PyTorch's rule).

    With g_t the gradient at step t (plus ``weight_decay * p`` when weight decay is on):

        m_t = beta1 m_{t-1} + (1 - beta1) g_t          (first moment, m_0 = 0)
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2        (second moment, v_0 = 0)
        p  <- p - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

    The two corrections undo the bias of m and v towards their zero start. Each parameter
    counts its own steps t (a parameter without a gradient is skipped and does not count).
    """

    hyperparameters = ("lr", "beta1", "beta2", "eps", "weight_decay")
    state_names = ("step", "exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params)
        beta1, beta2 = betas
        _require_finite_non_negative("Adam", lr=lr, eps=eps, weight_decay=weight_decay)
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        self.lr, self.eps, self.weight_decay = float(lr), float(eps), float(weight_decay)
        self.beta1, self.beta2 = float(beta1), float(beta2)

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        if fast.enabled():  # the same update without temporary arrays: tinygan/fast/optim.py
            return fast_optim.adam_step(self)
        b1, b2 = self.beta1, self.beta2
        for p, g, state in self._gradients():
            if self.weight_decay:
                g = g + self.weight_decay * p.data  # a new array: .grad is left alone
            m, v, t = self._moments(p, state)
            m *= b1
            m += (1.0 - b1) * g  # m_t = beta1 m_{t-1} + (1 - beta1) g_t
            v *= b2
            v += g * g * (1.0 - b2)  # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
            denom = array_module(v).sqrt(v) / math.sqrt(1.0 - b2**t) + self.eps
            p.data -= m / denom * (self.lr / (1.0 - b1**t))

    def _moments(self, p: Tensor, state: dict[str, Any]) -> tuple[Any, Any, int]:
        """Parameter ``p``'s moments m and v (zeros at its first step) and its new step t."""
        if not state:
            xp = array_module(p.data)
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] += 1
        return state["exp_avg"], state["exp_avg_sq"], state["step"]


# The fast path builds on the classes above, so it is imported once those exist.
# SGD with momentum, for the demos' --optimizer sgd, in the same namespace.
from tinygan.extras.sgd import SGD  # noqa: E402, F401
from tinygan.fast import optim as fast_optim  # noqa: E402
