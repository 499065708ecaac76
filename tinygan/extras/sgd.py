"""SGD with momentum and weight decay, PyTorch's rule; ``optim.SGD``.

The main demo trains with Adam (:mod:`tinygan.optim`); the shared loop's ``--optimizer
sgd`` uses this one.
"""

from __future__ import annotations

from collections.abc import Iterable

from tinygan.optim import Optimizer, _require_finite_non_negative
from tinygan.tensor import Tensor


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
        _require_finite_non_negative("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
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
            p.data -= self.lr * g
