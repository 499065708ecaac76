"""Adam's fast path over flat buffers (tinygan/fast/optim.py) against the lesson's update.

Each test runs the same steps with the fast paths on and off (``Adam.step`` as its formula
reads) and holds the two to the last bit: parameters, their version counts and the
optimizer's ``state_dict()``.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygan as tg
from tinygan import nn, optim
from tinygan.backend import to_device, to_numpy
from tinygan.fast import optim as fast_optim


def _model(dtype: str, device: str) -> nn.Module:
    """A small MLP, the same weights for every call."""
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(4, 8, rng=rng), nn.Tanh(), nn.Linear(8, 3, rng=rng))
    return (model.double() if dtype == "float64" else model).to(device)


def _set_grads(params, rng: np.random.Generator, device: str, skip: int | None = None) -> None:
    """Random gradients (parameter ``skip`` gets none); the first weight's is a transposed
    view, as ``tinygan.grad`` can give."""
    for i, p in enumerate(params):
        g = rng.standard_normal(p.shape).astype(p.dtype)
        if i == 0:
            g = to_device(np.ascontiguousarray(g.T), device).T
        p.grad = None if i == skip else tg.Tensor(to_device(g, device))


def _run(enabled: bool, dtype: str, device: str, weight_decay: float = 0.0, skip_at=None):
    """Five Adam steps; ``skip_at`` = (step, parameter) whose gradient is None then."""
    params = list(_model(dtype, device).parameters())
    opt = optim.Adam(params, lr=0.01, betas=(0.5, 0.9), weight_decay=weight_decay)
    rng = np.random.default_rng(1)
    with tg.use_fast_paths(enabled):
        for step in range(5):
            skip = skip_at[1] if skip_at and skip_at[0] == step else None
            _set_grads(params, rng, device, skip)
            opt.step()
    return params, opt


def _assert_same(fast_run, plain_run) -> None:
    """Identical parameters, version counts and state dicts (keys, dtypes, bytes)."""
    (fast_params, fast_opt), (plain_params, plain_opt) = fast_run, plain_run
    for p, q in zip(fast_params, plain_params):
        assert p.dtype == q.dtype and p._version == q._version
        assert np.array_equal(p.numpy(), q.numpy())
    fast_state, plain_state = fast_opt.state_dict(), plain_opt.state_dict()
    assert list(fast_state) == list(plain_state)
    for key, value in fast_state.items():
        if isinstance(value, int | float):
            assert type(value) is type(plain_state[key]) and value == plain_state[key], key
        else:
            a, b = to_numpy(value), to_numpy(plain_state[key])
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), key


def _flat_groups(opt: optim.Adam) -> list:
    """The fast path's groups, once it is checked that each parameter's moments are views of
    its group's flat arrays (a write into the flat array shows in every one)."""
    groups = fast_optim._layouts[opt].groups
    for group in groups:
        for flat, name in ((group.m, "exp_avg"), (group.v, "exp_avg_sq")):
            kept = flat.copy()
            flat[...] = 7.0
            assert all((to_numpy(state[name]) == 7.0).all() for state in group.states)
            flat[...] = kept
    return groups


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flat_adam_is_the_formula_bit_for_bit(dtype, weight_decay, device):
    fast_run = _run(True, dtype, device, weight_decay)
    _assert_same(fast_run, _run(False, dtype, device, weight_decay))
    (group,) = _flat_groups(fast_run[1])  # one flat buffer for the whole model
    assert group.m.size == sum(p.size for p in fast_run[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flat_adam_skips_a_parameter_without_gradient(dtype, device):
    """A parameter whose .grad is None for one step is not moved, its moments and step count
    stay; afterwards it counts one step fewer, so it updates in a group of its own."""
    fast_run = _run(True, dtype, device, 0.01, skip_at=(2, 1))
    _assert_same(fast_run, _run(False, dtype, device, 0.01, skip_at=(2, 1)))
    params, opt = fast_run
    assert [s["step"] for s in opt.state] == [5, 4, 5, 5]
    assert [len(group.params) for group in _flat_groups(opt)] == [3, 1]


def test_flat_adam_leaves_a_parameter_without_gradient_alone(device):
    """Not moved, no change counted, the same moments and step count, for two steps."""
    params = list(_model("float32", device).parameters())
    opt = optim.Adam(params, lr=0.01)
    rng = np.random.default_rng(3)
    _set_grads(params, rng, device)
    opt.step()
    p, state = params[2], opt.state[2]
    for _ in range(2):
        kept = [p.numpy().copy(), *(to_numpy(state[k]).copy() for k in ("exp_avg", "exp_avg_sq"))]
        version = p._version
        _set_grads(params, rng, device, skip=2)
        opt.step()
        assert np.array_equal(p.numpy(), kept[0]) and p._version == version
        assert np.array_equal(to_numpy(state["exp_avg"]), kept[1])
        assert np.array_equal(to_numpy(state["exp_avg_sq"]), kept[2])
        assert state["step"] == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flat_adam_resumes_from_a_state_dict_mid_run(dtype, device):
    """Two steps, a state dict and the parameters saved, a step that is then undone by loading
    them back, three more steps: the same as five plain steps. The loaded arrays replace the
    flat views, which the next step must notice (stepping the old views would differ)."""
    params = list(_model(dtype, device).parameters())
    opt = optim.Adam(params, lr=0.01, betas=(0.5, 0.9), weight_decay=0.01)
    rng = np.random.default_rng(1)
    with tg.use_fast_paths(True):
        for _ in range(2):
            _set_grads(params, rng, device)
            opt.step()
        saved, weights = opt.state_dict(), [p.data.copy() for p in params]
        _set_grads(params, np.random.default_rng(7), device)
        opt.step()  # a step off the path, undone below
        for p, w in zip(params, weights):
            p.data[...] = w
            p._mark_changed()
        opt.load_state_dict(saved)
        for _ in range(3):
            _set_grads(params, rng, device)
            opt.step()
    _flat_groups(opt)
    plain_params, plain_opt = _run(False, dtype, device, 0.01)
    for p, q in zip(params, plain_params):
        assert np.array_equal(p.numpy(), q.numpy())
    plain_state = plain_opt.state_dict()
    for key, value in opt.state_dict().items():
        assert np.array_equal(to_numpy(value), to_numpy(plain_state[key])), key
        assert to_numpy(value).dtype == to_numpy(plain_state[key]).dtype, key


def test_flat_adam_keeps_dtypes_apart():
    """float32 and float64 parameters of one optimizer: a flat group each."""
    a = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = tg.tensor(np.arange(4.0), requires_grad=True, dtype="float32")
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = tg.tensor(np.ones((2, 3))), tg.tensor(np.ones(4), dtype="float32")
    opt.step()
    groups = _flat_groups(opt)
    assert [(g.m.dtype, len(g.params)) for g in groups] == [
        (np.dtype("float64"), 1),
        (np.dtype("float32"), 1),
    ]
    assert a.dtype == np.float64 and b.dtype == np.float32
