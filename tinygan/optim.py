"""Optimizers: ``SGD`` (with momentum) and ``Adam``, ``from tinygan import optim``.

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
  elements, and the same code runs on a GPU;
* every intermediate goes into one scratch array (``out=``), which the optimizer keeps and
  reuses for all parameters and steps, so an update allocates no memory.

``state_dict()`` returns a flat ``{name: number or array}`` dictionary (the format a
checkpoint's ``.npz`` can hold without pickle); ``load_state_dict`` restores it so that
training resumes exactly where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygan.autograd import grad
from tinygan.backend import array_module, device_of, is_cupy_array, to_device
from tinygan.tensor import Tensor


class Optimizer:
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
        self._buffers: dict[tuple[Any, str], Any] = {}  # (dtype, device) -> flat scratch

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

    def _scratch(self, like: Any) -> Any:
        """An uninitialised array of ``like``'s shape, dtype and device, for intermediates.

        A view of one flat buffer per dtype and device, sized for the largest parameter and
        reused by every update, so updates allocate nothing. Its contents are undefined
        between calls.
        """
        key = (like.dtype, device_of(like))
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < like.size:
            size = max(p.size for p in self.params if p.dtype == like.dtype)
            buffer = self._buffers[key] = array_module(like).empty(size, dtype=like.dtype)
        return buffer[: like.size].reshape(like.shape)

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters as Python numbers, and per-parameter state as array copies.

        Keys: the hyperparameter names (``"lr"``, ...) and ``"state.<i>.<name>"`` for
        parameter i (in the order the parameters were given).
        """
        out: dict[str, Any] = {name: getattr(self, name) for name in self.hyperparameters}
        for i, state in enumerate(self.state):
            for name, value in state.items():
                out[f"state.{i}.{name}"] = value if isinstance(value, int) else value.copy()
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state from :meth:`state_dict` (or a checkpoint).

        Arrays are copied to each parameter's device and dtype. Nothing changes unless every
        key is known and every array has its parameter's shape.

        Raises:
            RuntimeError: naming the offending key (and both shapes for a size mismatch).
        """
        name = type(self).__name__
        hyper: dict[str, float] = {}
        state: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in state_dict.items():
            if key in self.hyperparameters:
                hyper[key] = float(value)
                continue
            parts = key.split(".")
            if (
                len(parts) != 3
                or parts[0] != "state"
                or not parts[1].isdigit()
                or int(parts[1]) >= len(self.params)
                or parts[2] not in self.state_names
            ):
                raise RuntimeError(
                    f"{name}.load_state_dict: unexpected key {key!r} (this optimizer has "
                    f"{len(self.params)} parameters and state {self.state_names})"
                )
            i, entry = int(parts[1]), parts[2]
            if entry == "step":
                state[i][entry] = int(value)
                continue
            p = self.params[i]
            if np.shape(value) != p.shape:
                raise RuntimeError(
                    f"{name}.load_state_dict: size mismatch for {key!r}: the state dict has "
                    f"shape {np.shape(value)}, parameter {i} has shape {p.shape}"
                )
            state[i][entry] = _array_like(value, p.data)
        for i, entries in enumerate(state):
            if entries and set(entries) != set(self.state_names):
                raise RuntimeError(
                    f"{name}.load_state_dict: parameter {i} has state {sorted(entries)}, "
                    f"expected all of {self.state_names}"
                )
        missing = [h for h in self.hyperparameters if h not in hyper]
        if missing:
            raise RuntimeError(f"{name}.load_state_dict: missing hyperparameters {missing}")
        for key, value in hyper.items():
            setattr(self, key, value)
        self.state = state


def _array_like(value: Any, like: Any) -> Any:
    """A fresh copy of ``value`` with ``like``'s dtype, on ``like``'s device."""
    raw = value.data if isinstance(value, Tensor) else value
    if not (isinstance(raw, np.ndarray) or is_cupy_array(raw)):
        raw = np.asarray(raw)
    moved = to_device(raw, device_of(like))
    return array_module(like).array(moved, dtype=like.dtype, copy=True)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and weight decay (PyTorch's rule).

    With g_t the gradient at step t (plus ``weight_decay * p`` when weight decay is on):

        b_1 = g_1,   b_t = momentum * b_{t-1} + g_t      (momentum > 0)
        p  <- p - lr * b_t                               (p - lr * g_t without momentum)
    """

    hyperparameters = ("lr", "momentum", "weight_decay")
    state_names = ("momentum_buffer",)

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params)
        if lr < 0.0 or momentum < 0.0 or weight_decay < 0.0:
            raise ValueError(
                f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, "
                f"{weight_decay}"
            )
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        for p, g, state in self._gradients():
            if self.weight_decay:
                g = g + self.weight_decay * p.data  # a new array: .grad is left alone
            if self.momentum:
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = state["momentum_buffer"] = g.copy()
                else:
                    buffer *= self.momentum
                    buffer += g
                g = buffer
            update = array_module(g).multiply(g, self.lr, out=self._scratch(g))
            p.data -= update


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
        if lr < 0.0 or eps < 0.0 or weight_decay < 0.0:
            raise ValueError(f"Adam: lr, eps and weight_decay must be >= 0, got {lr}, {eps}")
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        self.lr, self.eps, self.weight_decay = float(lr), float(eps), float(weight_decay)
        self.beta1, self.beta2 = float(beta1), float(beta2)

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        b1, b2 = self.beta1, self.beta2
        for p, g, state in self._gradients():
            xp = array_module(g)
            if self.weight_decay:
                g = g + self.weight_decay * p.data  # a new array: .grad is left alone
            if not state:
                state.update(
                    step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data)
                )
            state["step"] += 1
            t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
            work = self._scratch(g)
            m *= b1
            m += xp.multiply(g, 1.0 - b1, out=work)
            v *= b2
            work = xp.multiply(g, g, out=work)
            work *= 1.0 - b2
            v += work
            denom = xp.sqrt(v, out=work)
            denom /= math.sqrt(1.0 - b2**t)
            denom += self.eps
            update = xp.divide(m, denom, out=work)
            update *= self.lr / (1.0 - b1**t)
            p.data -= update
