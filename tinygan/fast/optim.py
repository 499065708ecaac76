"""A fast path of Adam: the same update as a few passes over flat buffers.

:meth:`tinygan.optim.Adam.step` writes the update as its formula reads: a Python loop over
the parameters, with five temporary arrays per parameter and step. Here the parameters
that take a step together (those with a gradient, grouped by dtype, device and step count
t, since t sets the bias corrections) keep their moments m and v as views of one flat
array each. Two passes per parameter read its gradient g (plus ``weight_decay * p``) into
two more flat arrays, (1 - beta1) g into a scratch buffer reused every step and g^2 into
the group's own; with c1 = lr / (1 - beta1^t) and c2 = sqrt(1 - beta2^t), the rest of the
update is a handful of whole-buffer passes::

    m <- beta1 m + [(1 - beta1) g]
    v <- beta2 v + [g^2] (1 - beta2)
    u <- c1 m / (sqrt(v) / c2 + eps)          (into the scratch buffer)

and one ``p.data -= u[slice of p]`` per parameter (parameters stay separate arrays). The
operations and their order are the formula's, elementwise, so the result is the same to
the last bit. The views are built on the first step and again whenever the state no longer
holds them (``load_state_dict``, a new parameter with a gradient, one without); the
moments' values are copied in, so ``state_dict()`` is what the lesson's update gives.
On DCGAN-28 (``benchmarks/adam_flat.py``) this saves a quarter of D's step and about
nothing of G's, whose time is the passes over one 627,200-weight layer.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from typing import Any

from tinygan.backend import array_module, device_of
from tinygan.optim import Adam
from tinygan.tensor import Tensor

# Each optimizer's flat scratch buffers, (dtype, device) -> array; gone with the optimizer.
_buffers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Each optimizer's flat moments and squared gradients, as a _Layout; gone with the optimizer.
_layouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def adam_step(opt: Adam) -> None:
    """:meth:`Adam.step` as whole-buffer passes over each group's flat m, v and g."""
    live = [
        (p, state, *opt._moments(p, state))  # (p, state, m, v, t), t counted
        for p, state in zip(opt.params, opt.state)
        if p.grad is not None
    ]
    layout = _layouts.get(opt)
    if layout is None or not layout.holds(live):
        layout = _layouts[opt] = _Layout(live)
    for group in layout.groups:
        group.update(opt)


class _Group:
    """Parameters of one dtype, device and step count t whose moments are views of flat
    arrays ``m`` and ``v``; ``g`` holds their squared gradients, parameter by parameter.
    """

    def __init__(self, members: Iterable[tuple[Tensor, dict[str, Any], Any, Any, int]]) -> None:
        members = list(members)
        xp = array_module(members[0][2])
        self.m = xp.concatenate([m.reshape(-1) for _, _, m, _, _ in members])  # values in
        self.v = xp.concatenate([v.reshape(-1) for _, _, _, v, _ in members])
        self.g = xp.empty_like(self.m)
        self.params, self.spans, self.states, self.grads = [], [], [], []
        start = 0
        for p, state, m, _, _ in members:
            span = slice(start, start + m.size)
            state["exp_avg"] = self.m[span].reshape(m.shape)
            state["exp_avg_sq"] = self.v[span].reshape(m.shape)
            self.params.append(p)
            self.spans.append(span)
            self.states.append(state)
            self.grads.append(self.g[span].reshape(m.shape))
            start = span.stop

    def update(self, opt: Adam) -> None:
        """One Adam step of every parameter in the group (their step counts already t)."""
        b1, b2, t = opt.beta1, opt.beta2, self.states[0]["step"]
        xp = array_module(self.g)
        work = scratch(opt, self.g)
        for p, g, span in zip(self.params, self.grads, self.spans):
            grad = p.grad.data  # read, never written
            if opt.weight_decay:  # g + weight_decay * p, in g's slice
                grad = xp.multiply(p.data, opt.weight_decay, out=g)
                grad += p.grad.data
            xp.multiply(grad, 1.0 - b1, out=work[span].reshape(p.shape))
            xp.multiply(grad, grad, out=g)
        self.m *= b1
        self.m += work  # m_t = beta1 m_{t-1} + (1 - beta1) g_t
        self.g *= 1.0 - b2
        self.v *= b2
        self.v += self.g  # v_t = beta2 v_{t-1} + g_t^2 (1 - beta2)
        denom = xp.sqrt(self.v, out=work)
        denom /= math.sqrt(1.0 - b2**t)
        denom += opt.eps
        update = xp.divide(self.m, denom, out=work)
        update *= opt.lr / (1.0 - b1**t)
        for p, span in zip(self.params, self.spans):
            p.data -= update[span].reshape(p.shape)


class _Layout:
    """An optimizer's groups, and which group's views each live parameter's state holds."""

    def __init__(self, live: list[tuple[Tensor, dict[str, Any], Any, Any, int]]) -> None:
        keys: dict[tuple[Any, str, int], int] = {}
        self.index = [
            keys.setdefault((m.dtype, device_of(m), t), len(keys)) for _, _, m, _, t in live
        ]
        self.groups = [
            _Group(entry for entry, k in zip(live, self.index) if k == group)
            for group in range(len(keys))
        ]
        self.views = [(state["exp_avg"], state["exp_avg_sq"]) for _, state, *_ in live]

    def holds(self, live: list[tuple[Tensor, dict[str, Any], Any, Any, int]]) -> bool:
        """Whether ``live`` is the parameters this layout was built for, in their order, each
        state still holding its views and each group's step counts still equal.
        """
        if len(live) != len(self.views):
            return False
        steps: dict[int, int] = {}
        for (_, _, m, v, t), (m_view, v_view), k in zip(live, self.views, self.index):
            if m is not m_view or v is not v_view or steps.setdefault(k, t) != t:
                return False
        return True


def scratch(opt: Adam, like: Any) -> Any:
    """An uninitialised array of ``like``'s shape, dtype and device, for intermediates.

    A view of one flat buffer per dtype and device, grown to the largest ``like`` asked
    for and reused by every update. Its contents are undefined between calls.
    """
    buffers = _buffers.setdefault(opt, {})
    key = (like.dtype, device_of(like))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < like.size:
        buffer = buffers[key] = array_module(like).empty(like.size, dtype=like.dtype)
    return buffer[: like.size].reshape(like.shape)
