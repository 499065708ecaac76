"""gradcheck and gradgradcheck must catch wrong gradients and say where they are wrong.

Each wrong Function below is wrong at one known element only, so the error message must
name exactly that element.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import tinygan as tg
from tinygan.autograd import Function
from tinygan.gradcheck import GradcheckError

SHAPE = (3, 4)
BAD = (1, 2)  # the element where the wrong gradients are wrong


def one_hot(like: tg.Tensor) -> tg.Tensor:
    m = np.zeros(like.shape)
    m[BAD] = 1.0
    return tg.Tensor(like.xp.asarray(m, dtype=like.dtype))


class Square(Function):
    """y = x^2, dL/dx = dL/dy * 2x (correct, differentiable again)."""

    def forward(self, x):
        return x * x

    def backward(self, grad):
        return grad * (self.inputs[0] * 2.0)


class SquareWrongAtOneElement(Function):
    """y = x^2 with a gradient that is off by dL/dy at element BAD."""

    def forward(self, x):
        return x * x

    def backward(self, grad):
        return grad * (self.inputs[0] * 2.0 + one_hot(grad))


class ScaledProductWrongForB(Function):
    """y = a * b, with b's gradient scaled by 1.5: the error is in input 1 only."""

    def forward(self, a, b):
        return a * b

    def backward(self, grad):
        a, b = self.inputs
        return grad * b, grad * a * 1.5


class SquareAtOneElementRawBackward(Function):
    """y = x + m x^2 (m one-hot at BAD), dL/dx = dL/dy (1 + 2 m x).

    The backward wraps the input-dependent factor (1 + 2 m x) as a raw-array constant, so
    the first derivative is right but the graph of the gradient forgets that it depends on
    x: the second derivative (2 m, non-zero only at BAD) comes out as 0.
    """

    def forward(self, x):
        m = self.xp.zeros(x.shape, dtype=x.dtype)
        m[BAD] = 1.0
        return x + m * x * x

    def backward(self, grad):
        x = self.inputs[0]
        factor = 1.0 + 2.0 * one_hot(x).data * x.data  # raw array: the mistake
        return grad * tg.Tensor(factor)


def random_leaf(seed: int = 0, shape=SHAPE, device: str = "cpu") -> tg.Tensor:
    values = np.random.default_rng(seed).standard_normal(shape)
    return tg.tensor(values, requires_grad=True, device=device)


def test_correct_function_passes_both_checks(device: str) -> None:
    x = random_leaf(device=device)
    assert tg.gradcheck(lambda t: Square()(t), [x])
    assert tg.gradgradcheck(lambda t: Square()(t), [x])


def test_wrong_backward_is_caught_at_the_worst_element(device: str) -> None:
    x = random_leaf(device=device)
    with pytest.raises(GradcheckError) as info:
        tg.gradcheck(lambda t: SquareWrongAtOneElement()(t), [x])
    message = str(info.value)
    assert "gradient of input 0" in message
    assert f"at index {BAD}:" in message
    assert "analytic" in message and "numeric" in message
    assert isinstance(info.value, AssertionError)  # pytest reports it as a failed check


def test_wrong_backward_names_the_input() -> None:
    a, b = random_leaf(1), random_leaf(2)
    with pytest.raises(GradcheckError, match="gradient of input 1"):
        tg.gradcheck(lambda p, q: ScaledProductWrongForB()(p, q), [a, b])


def test_raw_array_in_backward_passes_first_order_but_fails_second_order(device: str) -> None:
    x = random_leaf(3, device=device)
    fn = lambda t: SquareAtOneElementRawBackward()(t)  # noqa: E731
    assert tg.gradcheck(fn, [x])
    with pytest.raises(GradcheckError) as info:
        tg.gradgradcheck(fn, [x])
    message = str(info.value)
    assert "second-order gradient of input 0" in message
    assert f"at index {BAD}:" in message


def test_gradcheck_leaves_inputs_unchanged(device: str) -> None:
    x = random_leaf(4, device=device)
    before = x.numpy()
    tg.gradcheck(lambda t: (t * t).sum(axis=0), [x])
    tg.gradgradcheck(lambda t: (t * t).sum(axis=0), [x])
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None  # the checks use grad(), never .grad


def test_gradcheck_of_a_non_contiguous_input() -> None:
    # Transposed views: reshape(-1) of such an array is a copy, so the check must perturb
    # the input's own elements, not those of a flattened copy.
    x = tg.Tensor(random_leaf(7, SHAPE[::-1]).data.T, requires_grad=True)
    y = tg.Tensor(random_leaf(8, SHAPE[::-1]).data.T, requires_grad=True)
    assert x.shape == SHAPE and not x.data.flags.c_contiguous
    before = x.numpy()
    assert tg.gradcheck(lambda p, q: p * q * p, [x, y])
    assert tg.gradgradcheck(lambda t: Square()(t), [x])
    np.testing.assert_array_equal(x.numpy(), before)
    at_bad = re.escape(f"at index {BAD}:")
    with pytest.raises(GradcheckError, match=rf"^gradient of input 0 .* {at_bad}"):
        tg.gradcheck(lambda t: SquareWrongAtOneElement()(t), [x])
    with pytest.raises(GradcheckError, match=rf"^second-order gradient of input 0 .* {at_bad}"):
        tg.gradgradcheck(lambda t: SquareAtOneElementRawBackward()(t), [x])


def test_gradcheck_of_a_function_that_ignores_an_input() -> None:
    a, b = random_leaf(5), random_leaf(6)
    assert tg.gradcheck(lambda p, q: p * 2.0, [a, b])
    assert tg.gradgradcheck(lambda p, q: p * 2.0, [a, b])


def test_gradcheck_refuses_float32_and_constant_inputs() -> None:
    with pytest.raises(TypeError, match="float64"):
        tg.gradcheck(lambda t: t * t, [tg.tensor(np.ones(2, dtype=np.float32), requires_grad=True)])
    with pytest.raises(ValueError, match="requires_grad"):
        tg.gradcheck(lambda t: t * t, [tg.tensor(np.ones(2))])
