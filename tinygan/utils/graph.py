"""See the graph: the Graphviz DOT source of the graph that made a tensor.

``to_dot`` follows the same links as the graph walk of :mod:`tinygan.autograd`: a tensor's
``_ctx`` is the op (a ``Function``) that made it, and the op's ``inputs`` are the tensors
it was computed from. It only writes text; render it with Graphviz
(``dot -Tsvg graph.dot -o graph.svg``) or paste it into any DOT viewer.

In the picture a tensor is a box, filled when it requires grad, with a double border
when it is a leaf (made by the user, no ``_ctx``); an op is an ellipse named after its
class, filled and marked "(fast path)" when its class comes from ``tinygan.fast``.
Edges run input tensor -> op -> output tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

from tinygan.tensor import Tensor

_TENSOR = 'shape=box, style="{style}", fillcolor="#cfe2f3"'
_OP = 'shape=ellipse, style="{style}", fillcolor="#f9cb9c"'


def to_dot(tensor: Tensor, names: Mapping[str, Tensor] | None = None) -> str:
    """The Graphviz DOT source of the graph that made ``tensor``.

    The walk is iterative (a chain of 10,000 ops is fine) and deterministic: tensors are
    numbered t0, t1, ... and ops op0, op1, ... in the order a depth-first walk from
    ``tensor`` meets them (first inputs first), so the same graph gives the same text.
    An op whose inputs a backward pass has freed (no ``retain_graph``) is marked so.

    Example:
        >>> x = tinygan.tensor([1.0, 2.0], requires_grad=True)
        >>> y = (x * x).sum()
        >>> print(to_dot(y, names={"x": x, "y": y}))  # digraph tinygan { ... Mul ... }

    Args:
        tensor: the tensor whose graph to draw (drawn alone when it has no ``_ctx``).
        names: labels for tensors, such as ``{"x": x, "w": w}``; a named tensor shows its
            name above its shape and dtype, the others their shape and dtype. Names of
            tensors outside the graph are ignored.

    Returns:
        The DOT text, ``digraph tinygan { ... }``, one node or edge per line.
    """
    named: dict[int, list[str]] = {}
    for name, t in (names or {}).items():
        named.setdefault(id(t), []).append(name)
    order: list[Tensor] = []  # pre-order; holding the tensors keeps their ids unique
    seen: set[int] = set()
    stack = [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        order.append(t)
        if t._ctx is not None:
            stack.extend(reversed(t._ctx.inputs or ()))
    ids = {id(t): f"t{i}" for i, t in enumerate(order)}

    lines = [
        "digraph tinygan {",
        "  graph [ranksep=0.25];",
        '  node [fontname="Helvetica", fontsize=10, height=0.3];',
    ]
    n_ops = 0
    for t in order:
        label = f"{t.shape} {t.dtype}" + ("" if t.device == "cpu" else f" {t.device}")
        if id(t) in named:
            label = ", ".join(named[id(t)]) + "\n" + label
        style = "filled" if t.requires_grad else "solid"
        leaf = ", peripheries=2" if t._ctx is None else ""
        lines.append(
            f"  {ids[id(t)]} [label={_quote(label)}, {_TENSOR.format(style=style)}{leaf}];"
        )
        fn = t._ctx
        if fn is None:
            continue
        op, n_ops = f"op{n_ops}", n_ops + 1
        label = type(fn).__name__
        fast = type(fn).__module__.startswith("tinygan.fast")
        label += " (fast path)" if fast else ""
        label += "\n(inputs freed by backward)" if fn.inputs is None else ""
        style = "filled" if fast else "solid"
        lines.append(f"  {op} [label={_quote(label)}, {_OP.format(style=style)}];")
        lines.append(f"  {op} -> {ids[id(t)]};")
        lines.extend(f"  {ids[id(i)]} -> {op};" for i in fn.inputs or ())
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A DOT string literal: backslashes and quotes escaped, newlines as centred breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
