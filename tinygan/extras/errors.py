"""The error a backward pass raises when a tensor it needs was changed in place.

Every :class:`~tinygan.tensor.Tensor` counts the changes of its ``.data`` in ``_version``
(an assignment such as an optimizer's ``p.data -= lr * g``, or a library write into the
array, which bumps the count itself). Each recorded op notes the versions of its inputs at
forward; the graph walk compares them before calling the op's backward. The classic loop
that trips it computes G's loss through D, steps D, and only then calls ``backward`` on
G's loss: the gradient would be computed with D's new weights in place of the ones the loss
was computed with (PyTorch raises on the same loop).
"""

from __future__ import annotations

from typing import Any


class ChangedInPlaceError(RuntimeError):
    """A tensor that a recorded op needs for its backward changed after the op's forward."""

    def __init__(self, op: Any, tensor: Any, recorded_version: int) -> None:
        super().__init__(
            f"{type(op).__name__}.backward: {describe(tensor)} was changed in place after "
            f"this op used it (its version is {tensor._version}, the graph recorded "
            f"{recorded_version}), for example by an optimizer step between the forward pass "
            "and backward; the gradient would be that of values that are gone. Compute the "
            "loss after the update (or detach the tensor where it should not be "
            "differentiated)"
        )


def describe(tensor: Any) -> str:
    """``parameter net.0.weight of DCGANDiscriminator (shape (64, 1, 4, 4))`` for a tensor
    registered in a module (its ``_owner`` chain) or a recorded view of one (a weight's
    transpose), ``a tensor of shape (2, 3)`` otherwise.
    """
    while getattr(tensor, "_owner", None) is None and tensor._ctx is not None:
        inputs = tensor._ctx.inputs or ()
        viewed = [t for t in inputs if t._changes is tensor._changes]
        if not viewed:
            break
        tensor = viewed[0]
    names = []
    holder = tensor
    while getattr(holder, "_owner", None) is not None:
        parent, name = holder._owner[0](), holder._owner[1]
        if parent is None:  # the module holding it is gone: the path stops here
            break
        names.append(name)
        holder = parent
    if not names:
        return f"a tensor of shape {tensor.shape}"
    path = ".".join(reversed(names))
    return f"parameter {path} of {type(holder).__name__} (shape {tensor.shape})"
