"""A fast path of Adam: the same update, written into one reused scratch array.

:meth:`tinygan.optim.Adam.step` writes the update as its formula reads, which makes five
temporary arrays per parameter and step. Here every intermediate goes into one scratch
array (``out=``), a view of one flat buffer per dtype and device, sized for the largest
parameter and reused by every update, so an update allocates no memory. The operations
and their order are the formula's, so the result is the same to the last bit.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from tinygan.backend import array_module, device_of
from tinygan.optim import Adam

# Each optimizer's flat scratch buffers, (dtype, device) -> array; gone with the optimizer.
_buffers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def adam_step(opt: Adam) -> None:
    """:meth:`Adam.step` with every intermediate in one scratch array."""
    b1, b2 = opt.beta1, opt.beta2
    for p, g, state in opt._gradients():
        xp = array_module(g)
        if opt.weight_decay:
            g = g + opt.weight_decay * p.data  # a new array: .grad is left alone
        m, v, t = opt._moments(p, state)
        work = scratch(opt, g)
        m *= b1
        m += xp.multiply(g, 1.0 - b1, out=work)
        v *= b2
        work = xp.multiply(g, g, out=work)
        work *= 1.0 - b2
        v += work
        denom = xp.sqrt(v, out=work)
        denom /= math.sqrt(1.0 - b2**t)
        denom += opt.eps
        update = xp.divide(m, denom, out=work)
        update *= opt.lr / (1.0 - b1**t)
        p.data -= update


def scratch(opt: Adam, like: Any) -> Any:
    """An uninitialised array of ``like``'s shape, dtype and device, for intermediates.

    A view of one flat buffer per dtype and device, sized for the largest of ``opt``'s
    parameters and reused by every update. Its contents are undefined between calls.
    """
    buffers = _buffers.setdefault(opt, {})
    key = (like.dtype, device_of(like))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < like.size:
        size = max(p.size for p in opt.params if p.dtype == like.dtype)
        buffer = buffers[key] = array_module(like).empty(size, dtype=like.dtype)
    return buffer[: like.size].reshape(like.shape)
