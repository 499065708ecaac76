"""Every op is written the same way: the contract that makes gradients differentiable again.

A Function has ``forward`` on arrays (through ``self.xp``, so it runs on NumPy and CuPy),
``backward(self, grad_output)`` on Tensors, and a docstring that states its gradient.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import pytest

import tinygan.conv
import tinygan.extras.ops
import tinygan.fast.conv
import tinygan.fast.norm
import tinygan.fast.ops
import tinygan.fast.spectral_norm
import tinygan.fast.upsample_conv
import tinygan.functional
import tinygan.losses
import tinygan.losses_gan
import tinygan.losses_hinge
import tinygan.losses_semi_supervised
import tinygan.losses_wgan
import tinygan.ops
from tinygan.autograd import Function

MODULES = (
    tinygan.ops, tinygan.extras.ops, tinygan.conv, tinygan.functional, tinygan.losses,
    tinygan.losses_gan, tinygan.losses_wgan, tinygan.losses_hinge,
    tinygan.losses_semi_supervised,
)  # fmt: skip
FAST_MODULES = (
    tinygan.fast.ops, tinygan.fast.conv, tinygan.fast.norm, tinygan.fast.upsample_conv,
    tinygan.fast.spectral_norm,
)  # fmt: skip


def function_classes() -> list[type[Function]]:
    found, todo = [], list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(
        (c for c in found if c.__module__.startswith("tinygan.")), key=lambda c: c.__name__
    )


def test_the_library_has_its_ops() -> None:
    names = {c.__name__ for c in function_classes()}
    assert {"Add", "MatMul", "Im2col", "Col2im", "Standardize"} <= names
    assert len(names) >= 30


@pytest.mark.parametrize("cls", function_classes(), ids=lambda c: c.__name__)
def test_every_function_follows_the_op_contract(cls: type[Function]) -> None:
    modules = {m.__name__ for m in MODULES + FAST_MODULES}
    assert cls.__module__ in modules, "ops live in the op modules or the fast paths'"
    assert cls.forward is not Function.forward and cls.backward is not Function.backward
    assert list(inspect.signature(cls.backward).parameters) == ["self", "grad_output"]
    doc = inspect.getdoc(cls) or ""
    assert re.search(r"dL/d|gradient", doc), f"{cls.__name__}: no gradient in its docstring"
    forward = inspect.getsource(cls.forward)
    assert not re.search(r"\bnp\.", forward), f"{cls.__name__}.forward: use self.xp, not np"
    backward = ast.parse(textwrap.dedent(inspect.getsource(cls.backward)))
    op_calls = [  # Op(...)(x): a call of what a call of a capitalised name returned
        ast.unparse(node.func.func)
        for node in ast.walk(backward)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Call)
        and ast.unparse(node.func.func).split(".")[-1][:1].isupper()
    ]
    assert not op_calls, f"{cls.__name__}.backward: call lower-case functions, not {op_calls}"
    inputs = inspect.signature(cls.forward).parameters.values()
    several = len(inputs) > 2 or any(p.kind is p.VAR_POSITIONAL for p in inputs)
    if several:  # a gradient nobody asked for is not computed
        assert "needs_input_grad" in ast.unparse(backward), f"{cls.__name__}: multi-input op"
