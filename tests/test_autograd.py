"""The graph walk's behaviour: accumulation, freeing, retain_graph, grad(), no_grad, errors,
and the small Tensor conveniences (item, numpy, detach, repr, comparisons)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F


def leaf(values, **kwargs) -> tg.Tensor:
    return tg.tensor(np.asarray(values, dtype=np.float64), requires_grad=True, **kwargs)


# ------------------------------------------------------------------------------ backward


def test_gradient_of_a_shared_input_sums_its_paths() -> None:
    x = leaf([1.0, 2.0, 3.0])
    y = x * x + x.exp() - x  # x used four times
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + np.exp(x.numpy()) - 1)


def test_gradients_accumulate_across_backward_calls() -> None:
    x = leaf([1.0, -2.0])
    (x * x).sum().backward()
    first = x.grad.numpy()
    np.testing.assert_allclose(first, [2.0, -4.0])
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, -1.0])
    np.testing.assert_allclose(first, [2.0, -4.0])  # the earlier gradient was not mutated
    x.zero_grad()
    assert x.grad is None


def test_gradient_of_a_broadcast_sum_is_writable_and_owned() -> None:
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    x.sum().backward()
    x.grad.data += 1.0  # optimizers update in place: must not hit a read-only view
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 2.0))


def test_leaf_gradients_share_memory_with_nothing_else() -> None:
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    g = np.array([0.5, -0.5])
    (a + b).backward(g)  # Add sends the caller's g, unchanged, to both leaves
    assert a.grad is not b.grad
    for x in (a, b):
        assert not np.shares_memory(x.grad.data, g)
    assert not np.shares_memory(a.grad.data, b.grad.data)
    np.clip(a.grad.data, 0.0, None, out=a.grad.data)  # an in-place clip of one gradient
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 0.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, -0.5])
    np.testing.assert_array_equal(g, [0.5, -0.5])


def test_leaf_gradient_is_not_a_view_of_the_callers_gradient() -> None:
    a = leaf([[1.0, 2.0], [3.0, 4.0]])
    g = tg.tensor(np.array([1.0, 2.0, 3.0, 4.0]))
    a.reshape(4).backward(g)  # Reshape's backward returns a (contiguous) view of g
    assert not np.shares_memory(a.grad.data, g.data)
    a.grad.data *= 0.0
    np.testing.assert_array_equal(g.numpy(), [1.0, 2.0, 3.0, 4.0])


def test_one_gradient_array_reaching_two_leaves_is_stored_twice() -> None:
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    ((a + b) * 2.0).sum().backward()  # Mul makes a fresh array; Add sends it to a and b
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data += 1.0
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 2.0])


def test_create_graph_leaf_gradients_are_distinct_and_differentiable() -> None:
    a, b = leaf([1.0, 2.0]), leaf([3.0, -1.0])
    ((a + b) ** 2).sum().backward(create_graph=True)  # both get the tensor 2 (a + b)
    assert a.grad is not b.grad and a.grad.requires_grad and b.grad.requires_grad
    assert not np.shares_memory(a.grad.data, b.grad.data)
    np.testing.assert_allclose(a.grad.numpy(), [8.0, 2.0])
    ga, gb = tg.grad((a.grad * b.grad).sum(), [a, b])  # sum of 4 (a + b)^2
    np.testing.assert_allclose(ga.numpy(), [32.0, 8.0])
    np.testing.assert_allclose(gb.numpy(), [32.0, 8.0])


def test_long_chain_does_not_hit_the_recursion_limit() -> None:
    n = 10_000
    assert sys.getrecursionlimit() < n
    x = leaf([0.5])
    y = x
    for _ in range(n):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**n], rtol=1e-10)
    del y  # dropping a 10,000-deep graph must not recurse either


def test_long_chain_with_retained_graph_is_collected_without_recursion() -> None:
    x = leaf([0.5])
    y = x
    for _ in range(10_000):
        y = y + 1.0
    y.backward(retain_graph=True)
    assert x.grad.item() == 1.0
    del y


def test_graph_is_freed_after_backward() -> None:
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward() -> None:
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_of_a_non_scalar_needs_a_gradient() -> None:
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"non-scalar.*\(3,\).*explicit gradient"):
        y.backward()
    y.backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 0.0, -2.0])


def test_backward_gradient_of_the_wrong_shape_is_refused() -> None:
    y = leaf([1.0, 2.0, 3.0]) * 2.0
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        y.backward(np.ones(2))


def test_backward_without_requires_grad_is_refused() -> None:
    y = tg.tensor(np.ones(3)).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_one_element_tensor_backward_needs_no_gradient() -> None:
    x = leaf([[3.0]])
    (x * x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [[6.0]])


# ------------------------------------------------------------------------------ grad()


def test_grad_returns_gradients_without_touching_dot_grad() -> None:
    x, w = leaf([1.0, 2.0]), leaf([3.0, -1.0])
    loss = (x * w).sum()
    gx, gw = tg.grad(loss, [x, w])
    np.testing.assert_allclose(gx.numpy(), [3.0, -1.0])
    np.testing.assert_allclose(gw.numpy(), [1.0, 2.0])
    assert x.grad is None and w.grad is None


def test_grad_with_respect_to_an_intermediate_tensor() -> None:
    x = leaf([1.0, 2.0])
    h = x * 3.0
    y = (h * h).sum()
    (gh,) = tg.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())


def test_grad_for_an_input_outside_the_graph() -> None:
    x, unused = leaf([1.0, 2.0]), leaf([5.0])
    with pytest.raises(RuntimeError, match=r"input 1.*not part of the graph.*allow_unused"):
        tg.grad((x * x).sum(), [x, unused])
    gx, g_unused = tg.grad((x * x).sum(), [x, unused], allow_unused=True)
    np.testing.assert_allclose(gx.numpy(), [2.0, 4.0])
    assert g_unused is None
    constant = tg.tensor(np.ones(2))
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        tg.grad((x * constant).sum(), [constant])


def test_grad_of_several_outputs_with_grad_outputs() -> None:
    x = leaf([1.0, 2.0])
    a, b = x * 2.0, x * x
    (gx,) = tg.grad([a, b], [x], grad_outputs=[tg.tensor(np.array([1.0, 1.0])), np.ones(2)])
    np.testing.assert_allclose(gx.numpy(), 2.0 + 2 * x.numpy())


def test_grad_outputs_must_match_the_outputs_in_number() -> None:
    x = leaf([1.0, 2.0])
    a, b = (x * 2.0).sum(), (x * x).sum()
    for grad_outputs, given in [([None], 1), ([None] * 3, 3), (tg.tensor(1.0), 1)]:
        with pytest.raises(ValueError, match=rf"{given} grad_outputs for 2 outputs"):
            tg.grad([a, b], [x], grad_outputs=grad_outputs, retain_graph=True)
    (gx,) = tg.grad([a, b], [x], grad_outputs=[None, None])
    np.testing.assert_allclose(gx.numpy(), 2.0 + 2 * x.numpy())
    (gx,) = tg.grad(x * 2.0, [x], grad_outputs=np.ones(2))  # one output: an array, not a list
    np.testing.assert_allclose(gx.numpy(), [2.0, 2.0])


def test_create_graph_false_gives_constant_gradients() -> None:
    x = leaf([1.0, 2.0])
    (g,) = tg.grad((x**3).sum(), [x])
    assert not g.requires_grad and g.is_leaf
    y = (x**3).sum()
    y.backward()
    assert not x.grad.requires_grad


def test_create_graph_true_gives_differentiable_gradients() -> None:
    x = leaf([1.0, 2.0])
    (g,) = tg.grad((x**3).sum(), [x], create_graph=True)  # 3 x^2
    assert g.requires_grad
    (gg,) = tg.grad(g.sum(), [x], create_graph=True)  # 6 x
    (ggg,) = tg.grad(gg.sum(), [x])  # 6
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    np.testing.assert_allclose(gg.numpy(), 6 * x.numpy())
    np.testing.assert_allclose(ggg.numpy(), [6.0, 6.0])


def test_backward_with_create_graph_then_differentiate_dot_grad() -> None:
    x = leaf([0.5, -1.5])
    F.tanh(x).sum().backward(create_graph=True)
    first = x.grad
    assert first.requires_grad
    (second,) = tg.grad(first.sum(), [x])
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(second.numpy(), -2 * t * (1 - t**2))


# ------------------------------------------------------------------------------ no_grad


def test_no_grad_records_no_graph() -> None:
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = x * 2.0 + 1.0
        with tg.enable_grad():
            z = x * 2.0
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf


def test_no_grad_is_restored_after_an_exception() -> None:
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            raise ZeroDivisionError
    assert tg.is_grad_enabled()
    with tg.no_grad():
        with pytest.raises(KeyError):
            with tg.enable_grad():
                raise KeyError
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_a_no_grad_object_can_be_entered_again_and_nested() -> None:
    off, on = tg.no_grad(), tg.enable_grad()
    with off:
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    with off:
        with off:
            with on:
                assert tg.is_grad_enabled()
            assert not tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_no_grad_as_a_decorator() -> None:
    @tg.no_grad()
    def sample(x: tg.Tensor) -> tg.Tensor:
        return x * 2.0

    x = leaf([1.0])
    assert not sample(x).requires_grad
    assert not sample(x).requires_grad  # the decorator works on every call
    assert (x * 2.0).requires_grad


def test_no_grad_in_one_thread_leaves_other_threads_recording() -> None:
    x = leaf([1.0, 2.0])
    inside, done = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def sampler() -> None:
        with tg.no_grad():
            inside.set()
            done.wait(timeout=30)
            seen["sampler"] = tg.is_grad_enabled() or (x * 2.0).requires_grad

    thread = threading.Thread(target=sampler)
    thread.start()
    try:
        assert inside.wait(timeout=30)
        seen["main"] = tg.is_grad_enabled() and (x * 2.0).requires_grad
    finally:
        done.set()
        thread.join()
    assert seen == {"main": True, "sampler": False}


def test_a_new_thread_starts_with_grad_enabled() -> None:
    seen = []
    with tg.no_grad():
        thread = threading.Thread(target=lambda: seen.append(tg.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


# ------------------------------------------------------------------------------ Tensor


def test_comparisons_return_plain_boolean_arrays() -> None:
    x = leaf([1.0, 2.0, 3.0])
    other = tg.tensor(np.array([3.0, 2.0, 1.0]))
    for result, expected in [
        (x < 2.0, [True, False, False]),
        (x <= 2.0, [True, True, False]),
        (x > other, [False, False, True]),
        (x >= other, [False, True, True]),
        (x == other, [False, True, False]),
        (x != 2.0, [True, False, True]),
    ]:
        assert type(result) is np.ndarray and result.dtype == bool
        np.testing.assert_array_equal(result, expected)


def test_item_numpy_detach() -> None:
    x = leaf([[2.5]])
    assert x.item() == 2.5 and type(x.item()) is float
    with pytest.raises(ValueError, match=r"\(2,\)"):
        leaf([1.0, 2.0]).item()

    y = x * 2.0
    copy = y.numpy()
    assert type(copy) is np.ndarray
    copy[0, 0] = 100.0  # a copy: the tensor is unchanged
    assert y.item() == 5.0

    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.data, y.data)
    assert (d * 3.0).requires_grad is False


def test_repr() -> None:
    assert repr(tg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(leaf([1.5])) == "tensor([1.5], dtype=float64, requires_grad=True)"
    assert "dtype" not in repr(tg.tensor([[0.0]], requires_grad=True))


def test_tensor_factory_copies_and_tensor_class_wraps() -> None:
    array = np.array([1.0, 2.0], dtype=np.float32)
    t = tg.tensor(array)
    array[0] = 9.0
    assert t.numpy()[0] == 1.0
    assert tg.Tensor(array).data is array  # the class keeps a float array as it is


def test_shape_properties_and_methods() -> None:
    x = leaf(np.arange(6.0).reshape(2, 3))
    assert (x.shape, x.ndim, x.size, len(x), x.device) == ((2, 3), 2, 6, 2, "cpu")
    assert x.reshape(3, 2).shape == x.reshape((3, 2)).shape == (3, 2)
    assert x.T.shape == x.transpose().shape == (3, 2)
    np.testing.assert_array_equal(x.max(axis=1).numpy(), [2.0, 5.0])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="out of range"):
        x.sum(axis=2)


def test_to_device_names_and_errors(device: str) -> None:
    x = leaf([1.0, 2.0])
    y = x.to(device)
    assert y.device.split(":")[0] == device
    (y * y).sum().backward()  # the gradient comes back across the move
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    with pytest.raises(ValueError, match="tpu"):
        x.to("tpu")


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    if tg.cuda_available():
        pytest.skip("a CUDA GPU is available here")
    with pytest.raises(RuntimeError, match="cuda"):
        leaf([1.0]).to("cuda")
