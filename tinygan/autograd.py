"""Reverse-mode automatic differentiation: ``Function``, the graph walk, ``grad``, ``no_grad``.

Every op is a :class:`Function`. Its ``forward`` computes on raw arrays; its ``backward``
receives the output gradient as a :class:`~tinygan.tensor.Tensor` and returns the input
gradients **built from tinygan ops**: for y = f(x) inside a scalar loss L, the
vector-Jacobian product dL/dx = J^T dL/dy (J = dy/dx), without ever forming J. That single
rule gives higher-order gradients:

* ``create_graph=False`` (plain training): backward runs with graph recording switched
  off, so the gradient ops cost exactly what NumPy costs;
* ``create_graph=True`` (WGAN-GP's penalty): backward records its own graph, and the
  gradient can be differentiated again.

The graph walk visits each tensor once, in reverse topological order (a tensor's gradient
is complete only when every op that consumed it has sent its share), and is iterative, so
a chain of 10,000 ops never meets Python's recursion limit. Each leaf owns the array in its
``.grad``: an op's backward may pass a gradient on unchanged (Add sends dL/dy to both
inputs), so a gradient that someone else can see is copied before it is stored.

Whether ops record the graph is a per-thread switch, on by default in every thread:
``with no_grad():`` turns it off for the block and ``with enable_grad():`` back on, each
restoring the previous state on exit (also on an exception). A data-loading or sampling
thread under ``no_grad`` therefore never stops the training thread from recording.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from contextlib import ContextDecorator
from types import ModuleType
from typing import Any

from tinygan.backend import array_module, device_of, is_view
from tinygan.extras.errors import ChangedInPlaceError
from tinygan.tensor import Tensor


class _ThreadGradMode(threading.local):
    """This thread's recording switch and the states that ``with`` blocks will restore."""

    def __init__(self) -> None:  # runs once in each thread that touches it
        self.enabled = True
        self.saved: list[bool] = []


_mode = _ThreadGradMode()


def is_grad_enabled() -> bool:
    """True when new ops in this thread record the graph (the default)."""
    return _mode.enabled


class _GradMode(ContextDecorator):
    """Sets this thread's recording switch for a ``with`` block, then restores it.

    The state to restore is pushed on a per-thread stack, not kept on the object, so one
    object can be entered again, nested, shared between threads, or used as a decorator.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        _mode.saved.append(_mode.enabled)
        _mode.enabled = self.enabled

    def __exit__(self, *exc_info: object) -> None:
        _mode.enabled = _mode.saved.pop()


def no_grad() -> _GradMode:
    """Ops inside the block record no graph (inference, optimizer steps); this thread only.

    Example:
        >>> with tinygan.no_grad():
        ...     samples = generator(z)
    """
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Record the graph again inside a ``no_grad`` block (this thread only)."""
    return _GradMode(True)


class Function:
    """One differentiable op: ``forward`` on arrays, ``backward`` on Tensors.

    Subclasses set their parameters (stride, axis, ...) in ``__init__`` and implement:

    * ``forward(*arrays) -> array``, using ``self.xp`` (numpy or cupy), never numpy directly;
    * ``backward(grad_output: Tensor) -> Tensor | tuple[Tensor | None, ...]``, one gradient
      per input, each with that input's shape. ``self.inputs`` holds the input Tensors,
      ``self.output`` the output Tensor, ``self.needs_input_grad[i]`` says whether input i
      wants a gradient (so an op can skip work nobody asked for; the graph walk sets it
      just before calling backward, from what this walk differentiates with respect to).

    The rule that keeps gradients differentiable: whenever backward is recorded
    (``create_graph=True``), it computes only from the input Tensors, the output Tensor
    (held weakly, so no reference cycle) and true constants such as a ReLU mask, never
    from an input-dependent raw array kept from ``forward``. The lesson's ops keep no such
    array at all; a fast path (:mod:`tinygan.fast`) may keep one, or compute on raw
    arrays, for the first-order path only (``is_grad_enabled()`` False in backward).

    Backward reads the inputs as they are *then*, so the walk first checks that neither they
    nor the output changed since forward (a Tensor counts the changes of its ``.data``): a
    step between a loss and its backward raises instead of giving a wrong gradient.
    """

    xp: ModuleType
    inputs: tuple[Tensor, ...] | None
    versions: tuple[int, ...]
    needs_input_grad: tuple[bool, ...]

    def __call__(self, *inputs: Tensor) -> Tensor:
        self.xp = _common_array_module(type(self).__name__, inputs)
        out_data = self.forward(*(t.data for t in inputs))
        requires_grad = _mode.enabled and any(t.requires_grad for t in inputs)
        out = Tensor(out_data, requires_grad=requires_grad)
        for t in inputs:
            if is_view(out_data, t.data):  # reshape, transpose: changes with its input
                out._changes = t._changes
        if requires_grad:
            self.inputs = inputs
            self.versions = tuple(t._changes[0] for t in (*inputs, out))  # see the graph walk
            self._output_ref = weakref.ref(out)
            out._ctx = self
        return out

    @property
    def output(self) -> Tensor:
        """The output Tensor (alive during backward: the graph walk holds it)."""
        out = self._output_ref()
        if out is None:
            raise RuntimeError(f"{type(self).__name__}: its output tensor no longer exists")
        return out

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad_output: Tensor) -> Tensor | tuple[Tensor | None, ...] | None:
        raise NotImplementedError


def _common_array_module(op: str, inputs: Sequence[Tensor]) -> ModuleType:
    """The array module shared by all inputs; a clear error for mixed devices or dtypes."""
    first = inputs[0].data
    for t in inputs[1:]:
        if type(t.data) is not type(first) or device_of(t.data) != device_of(first):
            raise RuntimeError(
                f"{op}: tensors are on different devices ({device_of(first)} and "
                f"{device_of(t.data)}); move them with .to(device) first"
            )
        if t.data.dtype != first.dtype:
            raise TypeError(
                f"{op}: dtype mismatch ({first.dtype} and {t.data.dtype}); cast one with "
                ".float() or .double() so a float32 model is never silently upcast"
            )
    return array_module(first)


# ----------------------------------------------------------------------------- graph walk


def _topological_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """Tensors that require grad, each placed before every tensor it was computed from.

    Iterative depth-first search with an explicit stack: a node is appended after all its
    inputs (post-order); reversing that list puts outputs first.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in roots if r.requires_grad]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None:
            if ctx.inputs is None:
                raise RuntimeError(
                    "trying to backward through a graph a second time, but its buffers were "
                    "freed by the first backward; pass retain_graph=True to the first call"
                )
            stack.extend((t, False) for t in ctx.inputs if t.requires_grad)
    order.reverse()
    return order


def _leads_to(order: list[Tensor], targets: set[int]) -> set[int]:
    """Ids of the tensors in ``order`` from which some target is reachable (targets too)."""
    reach = set(targets)
    for node in reversed(order):  # inputs before the tensors computed from them
        ctx = node._ctx
        if ctx is not None and any(id(t) in reach for t in ctx.inputs):
            reach.add(id(node))
    return reach


def _root_gradients(roots: Sequence[Tensor], grads: Sequence[Tensor | None]) -> list[Tensor]:
    out = []
    for root, g in zip(roots, grads):
        if g is None:
            if root.data.size != 1:
                raise RuntimeError(
                    f"backward of a non-scalar output of shape {root.shape} needs an explicit "
                    "gradient of the same shape (or call .sum() first)"
                )
            g = Tensor(root.xp.ones_like(root.data))
        elif not isinstance(g, Tensor):
            g = Tensor(root.xp.asarray(g, dtype=root.dtype))
        if g.shape != root.shape:
            raise ValueError(f"gradient shape {g.shape} does not match output shape {root.shape}")
        out.append(g)
    return out


def _run_backward(
    roots: Sequence[Tensor],
    root_grads: Sequence[Tensor],
    targets: Sequence[Tensor] | None,
    create_graph: bool,
    retain_graph: bool,
) -> dict[int, Tensor]:
    """Propagate gradients from ``roots`` to leaves (``targets=None``) or to ``targets``.

    With ``targets=None`` leaf gradients are accumulated into ``.grad``; otherwise the
    gradients of the targets are returned by id and ``.grad`` is left alone.
    """
    order = _topological_order(roots)
    target_ids = None if targets is None else {id(t) for t in targets}
    wanted = None if target_ids is None else _leads_to(order, target_ids)
    grads: dict[int, Tensor] = {}
    for root, g in zip(roots, root_grads):
        _accumulate(grads, root, g)
    visible = {id(g.data) for g in root_grads}  # the caller holds these arrays
    found: dict[int, Tensor] = {}
    with _GradMode(create_graph):
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if target_ids is not None and id(node) in target_ids:
                found[id(node)] = g
            ctx = node._ctx
            if ctx is None:
                if target_ids is None:
                    _store_leaf_grad(node, g, visible)
                continue
            needs = tuple(
                t.requires_grad and (wanted is None or id(t) in wanted) for t in ctx.inputs
            )
            if any(needs):
                for t, version in zip((*ctx.inputs, node), ctx.versions):
                    if t._changes[0] != version:  # changed in place since this op's forward
                        raise ChangedInPlaceError(ctx, t, version)
                ctx.needs_input_grad = needs
                input_grads = ctx.backward(g)
                if not isinstance(input_grads, tuple):
                    input_grads = (input_grads,)
                for t, gi, need in zip(ctx.inputs, input_grads, needs):
                    if need and gi is not None:
                        if gi.shape != t.shape:
                            raise RuntimeError(
                                f"{type(ctx).__name__}.backward returned a gradient of shape "
                                f"{gi.shape} for an input of shape {t.shape}"
                            )
                        _accumulate(grads, t, gi)
            if not retain_graph:
                ctx.inputs = None  # free the graph: the input tensors can now be collected
    return found


def _accumulate(grads: dict[int, Tensor], node: Tensor, g: Tensor) -> None:
    previous = grads.get(id(node))
    grads[id(node)] = g if previous is None else previous + g


def _store_leaf_grad(leaf: Tensor, g: Tensor, visible: set[int]) -> None:
    """Add ``g`` to ``leaf.grad`` so that the array stored there belongs to this leaf alone.

    A sum ``leaf.grad + g`` is a new array. A first gradient is stored as it is when it is
    an array that an op's backward has just made, and copied when someone else may hold it:
    a view (of another array, or a read-only broadcast), or an array in ``visible``, the ids
    of the caller's root gradients and of the arrays already stored in other leaves (Add's
    backward sends one tensor to both of its inputs). ``visible`` grows with each store.
    """
    if leaf.grad is not None:
        leaf.grad = leaf.grad + g
        return
    if g.data.base is not None or id(g.data) in visible:
        # g * 1.0 is the copy when g is part of a recorded graph: it stays differentiable.
        g = g * 1.0 if g.requires_grad else Tensor(g.data.copy())
    visible.add(id(g.data))
    leaf.grad = g


def backward(
    tensor: Tensor,
    gradient: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate d(tensor)/d(leaf) into every leaf's ``.grad`` (see ``Tensor.backward``)."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad (no input had requires_grad=True, "
            "or it was computed under no_grad)"
        )
    retain = create_graph if retain_graph is None else retain_graph
    (g,) = _root_gradients([tensor], [gradient])
    _run_backward([tensor], [g], None, create_graph, retain)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned, not stored in ``.grad``.

    ``sum_k <grad_outputs[k], d outputs[k] / d inputs[i]>`` for each input i. With
    ``create_graph=True`` the result is itself part of a graph and can be differentiated
    again; WGAN-GP's penalty reads
    ``(g,) = tinygan.grad(critic(x_hat).sum(), [x_hat], create_graph=True)``.

    Args:
        outputs: a tensor or sequence of tensors to differentiate.
        inputs: tensors (leaves or intermediate results) to differentiate with respect to.
        grad_outputs: one gradient per output, each of that output's shape, as a list or
            tuple (a single Tensor or array for a single output); None, or a None entry,
            stands for ones and is allowed for one-element outputs only.
        retain_graph: keep the graph for another backward (default: ``create_graph``).
        create_graph: record the gradient computation for higher-order derivatives.
        allow_unused: return None for an input the outputs do not depend on, instead of
            raising an error.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]  # one Tensor or array: the gradient of one output
    if len(grad_outputs) != len(outputs):
        raise ValueError(
            f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs; pass one "
            "gradient per output (None for a one-element output), or grad_outputs=None"
        )
    for i, out in enumerate(outputs):
        if not out.requires_grad:
            raise RuntimeError(
                f"grad: output {i} does not require grad, so nothing can be differentiated"
            )
    retain = create_graph if retain_graph is None else retain_graph
    root_grads = _root_gradients(outputs, grad_outputs)
    found = _run_backward(outputs, root_grads, inputs, create_graph, retain)
    result = tuple(found.get(id(t)) for t in inputs)
    for i, (t, g) in enumerate(zip(inputs, result)):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {t.shape}) is not part of the graph of the outputs"
                + ("" if t.requires_grad else ": it has requires_grad=False")
                + "; pass allow_unused=True to get None for it"
            )
    return result
