"""Optimizers: update sequences against the rules written out in NumPy, convergence on a
convex quadratic, exact resumption from a state dict, dtypes, and untouched gradients."""

import math

import numpy as np
import pytest

import tinygan as tg
from tinygan import optim

# A fixed quadratic bowl L(p) = 1/2 (p - t)^T A (p - t), A symmetric positive definite,
# minimum at t, gradient A (p - t).
_RNG = np.random.default_rng(0)
_M = _RNG.standard_normal((4, 4))
A = _M @ _M.T / 4 + 0.5 * np.eye(4)
TARGET = _RNG.standard_normal(4)
P0 = _RNG.standard_normal(4)


def _loss(p):
    d = p - tg.tensor(TARGET, dtype=p.dtype)
    return 0.5 * (d.reshape(1, 4) @ tg.tensor(A, dtype=p.dtype) @ d.reshape(4, 1)).sum()


def _grad(p):
    return A @ (p - TARGET)


def _run(opt, p, steps):
    for _ in range(steps):
        opt.zero_grad()
        _loss(p).backward()
        opt.step()


def test_sgd_momentum_matches_hand_computed_updates():
    lr, momentum, wd = 0.1, 0.9, 0.01
    p = tg.tensor(P0, requires_grad=True)
    opt = optim.SGD([p], lr=lr, momentum=momentum, weight_decay=wd)
    expected, buf = P0.copy(), None
    for _ in range(5):
        opt.zero_grad()
        _loss(p).backward()
        opt.step()
        g = _grad(expected) + wd * expected
        buf = g if buf is None else momentum * buf + g
        expected = expected - lr * buf
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_plain_sgd_is_gradient_descent():
    p = tg.tensor(P0, requires_grad=True)
    _run(optim.SGD([p], lr=0.05), p, 1)
    np.testing.assert_allclose(p.numpy(), P0 - 0.05 * _grad(P0), rtol=1e-12)


def test_adam_matches_hand_computed_updates():
    lr, (b1, b2), eps, wd = 0.05, (0.5, 0.9), 1e-8, 0.01
    p = tg.tensor(P0, requires_grad=True)
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    expected, m, v = P0.copy(), np.zeros(4), np.zeros(4)
    for t in range(1, 6):
        opt.zero_grad()
        _loss(p).backward()
        opt.step()
        g = _grad(expected) + wd * expected
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        expected = expected - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_adam_first_step_moves_each_entry_by_lr():
    # With bias correction, m_hat / sqrt(v_hat) = g / |g| at step 1: a step of exactly lr.
    p = tg.tensor(P0, requires_grad=True)
    _run(optim.Adam([p], lr=0.01), p, 1)
    np.testing.assert_allclose(np.abs(p.numpy() - P0), 0.01, rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: optim.Adam(ps, lr=0.05),
    ],
    ids=["sgd-momentum", "adam"],
)
def test_drives_a_convex_quadratic_to_its_minimum(make):
    p = tg.tensor(P0, requires_grad=True)
    _run(make([p]), p, 600)
    np.testing.assert_allclose(p.numpy(), TARGET, atol=1e-4)


def _two_params(dtype="float64"):
    rng = np.random.default_rng(1)
    return [tg.tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in (4, (2, 3))]


def _loss_two(params):
    a, b = params
    return (a * a * a).sum() + (b * b).sum() + (a[:2].reshape(2, 1) * b).sum()


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.1),
        lambda ps: optim.Adam(ps, lr=0.01, betas=(0.5, 0.99), weight_decay=0.1),
    ],
    ids=["sgd", "adam"],
)
def test_state_dict_round_trip_resumes_exactly(make):
    def train(opt, params, steps):
        for _ in range(steps):
            opt.zero_grad()
            _loss_two(params).backward()
            opt.step()

    params = _two_params()
    opt = make(params)
    train(opt, params, 3)
    saved_params = [p.numpy() for p in params]
    saved_state = opt.state_dict()
    train(opt, params, 4)  # the reference continuation (must not change saved_state)

    resumed = [tg.tensor(a, requires_grad=True) for a in saved_params]
    opt2 = make(resumed)
    opt2.lr = 123.0  # hyperparameters come back from the state dict too
    opt2.load_state_dict(saved_state)
    train(opt2, resumed, 4)
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize(
    "make",
    [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1), optim.Adam],
    ids=["sgd", "adam"],
)
def test_float32_stays_float32_and_gradients_are_not_modified(make):
    params = _two_params("float32")
    opt = make(params)
    for _ in range(2):
        opt.zero_grad()
        _loss_two(params).backward()
        grads = [p.grad.data for p in params]
        before = [g.copy() for g in grads]
        opt.step()
        for p, g, g0 in zip(params, grads, before):
            assert p.grad.data is g
            np.testing.assert_array_equal(g, g0)
            assert p.dtype == np.float32
    for key, value in opt.state_dict().items():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32, key


def test_parameters_without_gradient_are_skipped():
    a, b = _two_params()
    b0 = b.numpy()
    opt = optim.Adam([a, b], lr=0.1)
    (a * a).sum().backward()
    opt.step()
    np.testing.assert_array_equal(b.numpy(), b0)
    assert opt.state[1] == {} and opt.state[0]["step"] == 1


def test_zero_grad_clears_gradients():
    a, b = _two_params()
    opt = optim.SGD([a, b], lr=0.1)
    _loss_two([a, b]).backward()
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_load_state_dict_errors_name_the_key():
    a, b = _two_params()
    opt = optim.Adam([a, b])
    _loss_two([a, b]).backward()
    opt.step()
    state = opt.state_dict()
    bad_shape = dict(state, **{"state.1.exp_avg": np.zeros(5)})
    with pytest.raises(RuntimeError, match=r"'state.1.exp_avg'.*\(5,\).*\(2, 3\)"):
        optim.Adam([a, b]).load_state_dict(bad_shape)
    with pytest.raises(RuntimeError, match="unexpected key 'state.2.exp_avg'"):
        optim.Adam([a, b]).load_state_dict(dict(state, **{"state.2.exp_avg": np.zeros(4)}))
    with pytest.raises(RuntimeError, match="missing hyperparameters"):
        optim.Adam([a, b]).load_state_dict({k: v for k, v in state.items() if k != "lr"})
    with pytest.raises(RuntimeError, match="unexpected key"):
        optim.SGD([a, b], lr=0.1).load_state_dict(state)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="requires_grad"):
        optim.Adam([tg.tensor([1.0])])
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(_two_params(), betas=(0.9, 1.0))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
@pytest.mark.parametrize(
    "make, setting",
    [
        (lambda p, v: optim.Adam(p, lr=v), "lr"),
        (lambda p, v: optim.Adam(p, eps=v), "eps"),
        (lambda p, v: optim.Adam(p, weight_decay=v), "weight_decay"),
        (lambda p, v: optim.Adam(p, betas=(v, 0.999)), "betas"),
        (lambda p, v: optim.Adam(p, betas=(0.5, v)), "betas"),
        (lambda p, v: optim.SGD(p, lr=v), "lr"),
        (lambda p, v: optim.SGD(p, lr=0.1, momentum=v), "momentum"),
        (lambda p, v: optim.SGD(p, lr=0.1, weight_decay=v), "weight_decay"),
    ],
)
def test_a_nan_infinite_or_negative_hyperparameter_is_refused_by_name(make, setting, bad):
    """NaN fails every comparison, so a check written ``lr < 0`` would let it through and
    the first step would fill the weights with NaN; each setting is refused by name."""
    with pytest.raises(ValueError, match=setting):
        make(_two_params(), bad)
