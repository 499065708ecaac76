"""The fused Upsample(2) + 3x3 convolution (tinygan/fast/upsample_conv.py) against the plain
composition it replaces: ``conv2d(interpolate(x, scale_factor=2), w, b, 1, 1)``.

Forward, first order (the array path of plain training), the op-built backward a recorded
graph uses, second order by finite differences and through a WGAN-GP-style penalty; and
the dispatch: ``nn.Sequential`` (so ``models.upsample_generator``) takes the fused op for
exactly the pattern, and only while the fast paths are on.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F
from tinygan import models, nn
from tinygan.fast import upsample_conv as fast_upsample_conv


def reference(fn, *args, **kwargs):
    """``fn(*args)`` with the fast paths off: the lesson's compositions only."""
    with tg.use_fast_paths(False):
        return fn(*args, **kwargs)


def op_names(t: tg.Tensor) -> set[str]:
    """The Function class names of every op in the graph that made ``t``."""
    seen, stack, names = set(), [t], set()
    while stack:
        node = stack.pop()
        if id(node) in seen or node._ctx is None:
            continue
        seen.add(id(node))
        names.add(type(node._ctx).__name__)
        stack.extend(node._ctx.inputs)
    return names


def composition(x, w, b=None):
    return F.conv2d(F.interpolate(x, scale_factor=2), w, b, stride=1, padding=1)


def _leaves(dtype, seed, *shapes, device="cpu"):
    rng = np.random.default_rng(seed)
    return [
        tg.tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True, device=device)
        for s in shapes
    ]


CASES = [
    # x shape (N, C, H, W), O
    ((2, 3, 4, 4), 5),  # even sizes
    ((1, 2, 3, 5), 4),  # odd sizes, H != W
    ((2, 4, 1, 1), 3),  # a single pixel: every tap but the centre's falls on padding
    ((1, 1, 2, 7), 1),  # one channel in and out
]


@pytest.mark.parametrize(("x_shape", "o"), CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_fused_op_equals_the_composition(x_shape, o, dtype, bias, device) -> None:
    x, w, b = _leaves(dtype, 1, x_shape, (o, x_shape[1], 3, 3), (o,), device=device)
    inputs = [x, w, b] if bias else [x, w]
    y = fast_upsample_conv.upsample_conv2d(*inputs)
    assert type(y._ctx).__name__ == "UpsampleConv2d"
    ref = reference(composition, *inputs)
    assert "UpsampleConv2d" not in op_names(ref)
    assert y.shape == ref.shape == (x_shape[0], o, 2 * x_shape[2], 2 * x_shape[3])
    assert y.dtype == np.dtype(dtype) and y.device == x.device
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=tol, atol=tol)
    g = tg.tensor(np.random.default_rng(2).standard_normal(y.shape), dtype=dtype, device=device)
    arrays = tg.grad(y, inputs, grad_outputs=g, retain_graph=True)  # first order, on arrays
    built = tg.grad(y, inputs, grad_outputs=g, create_graph=True)  # the composition's ops
    slow = reference(lambda: tg.grad(ref, inputs, grad_outputs=g))
    for a, c, r, t in zip(arrays, built, slow, inputs):
        assert a.shape == c.shape == r.shape == t.shape
        assert a.dtype == c.dtype == np.dtype(dtype) and a.device == x.device
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(c.numpy(), r.numpy(), rtol=tol, atol=tol)


def test_the_phase_weights_and_their_adjoint() -> None:
    """The tap sums of the docstring's identity, and weight_from_phases as their adjoint:
    <phase_weights(w), P> = <w, weight_from_phases(P)> for every w and P."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 3, 3, 3))
    k = fast_upsample_conv.phase_weights(np, w).reshape(2, 2, 3, 2, 2, 2)  # (du, dv, c, a, b, o)
    w0, w1, w2 = w[:, :, 0], w[:, :, 1], w[:, :, 2]  # rows u of every (o, c), columns v
    rows = {(0, 0): w0, (0, 1): w1 + w2, (1, 0): w0 + w1, (1, 1): w2}  # (a, du) -> rows
    for (a, du), r in rows.items():
        cols = {(0, 0): r[..., 0], (0, 1): r[..., 1] + r[..., 2]}
        cols |= {(1, 0): r[..., 0] + r[..., 1], (1, 1): r[..., 2]}
        for (b, dv), expected in cols.items():  # expected: (o, c)
            np.testing.assert_allclose(k[du, dv, :, a, b, :], expected.T, rtol=1e-14)
    p = rng.standard_normal((12, 8))
    lhs = np.sum(fast_upsample_conv.phase_weights(np, w) * p)
    rhs = np.sum(w * fast_upsample_conv.weight_from_phases(np, p, 3, 2))
    assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_fused_op_second_order_by_finite_differences(bias) -> None:
    x, w, b = _leaves("float64", 4, (2, 2, 3, 2), (3, 2, 3, 3), (3,))
    inputs = [x, w, b] if bias else [x, w]
    assert tg.gradcheck(fast_upsample_conv.upsample_conv2d, inputs)
    assert tg.gradgradcheck(fast_upsample_conv.upsample_conv2d, inputs)
    # a nonlinearity after it, so the second derivative reaches every input
    assert tg.gradgradcheck(lambda *t: fast_upsample_conv.upsample_conv2d(*t) ** 2, inputs)


def _upsample_critic(x, w1, b1, w2, w3):
    """A critic that upsamples (as a critic rarely does) so its input gradient goes through
    the fused op's backward and the penalty through that backward's backward."""
    h = F.leaky_relu(fast_upsample_conv.upsample_conv2d(x, w1, b1), 0.2)
    h = F.leaky_relu(fast_upsample_conv.upsample_conv2d(h, w2), 0.2)
    return F.linear(h.reshape(x.shape[0], -1), w3)


def test_gradient_penalty_through_the_fused_op_equals_the_composition(device) -> None:
    """WGAN-GP's penalty differentiates the input gradient again: both orders through the
    fused op against the composition (with it off, the graph is the lesson's ops only)."""
    rng = np.random.default_rng(5)
    x = tg.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True, device=device)
    shapes = [(4, 2, 3, 3), (4,), (2, 4, 3, 3), (1, 2 * 12 * 12)]
    params = [
        tg.tensor(rng.standard_normal(s) * 0.5, requires_grad=True, device=device) for s in shapes
    ]

    def penalty_gradients():
        (gx,) = tg.grad(_upsample_critic(x, *params).sum(), [x], create_graph=True)
        penalty = (((gx * gx).sum(axis=(1, 2, 3)) - 1.0) ** 2).mean()
        return tg.grad(penalty, params, allow_unused=True)

    def reference_critic(x, w1, b1, w2, w3):
        h = F.leaky_relu(composition(x, w1, b1), 0.2)
        h = F.leaky_relu(composition(h, w2), 0.2)
        return F.linear(h.reshape(x.shape[0], -1), w3)

    def reference_gradients():
        (gx,) = tg.grad(reference_critic(x, *params).sum(), [x], create_graph=True)
        penalty = (((gx * gx).sum(axis=(1, 2, 3)) - 1.0) ** 2).mean()
        return tg.grad(penalty, params, allow_unused=True)

    fast_g, slow = penalty_gradients(), reference(reference_gradients)
    for a, r in zip(fast_g, slow):
        assert (a is None) == (r is None)  # the first bias: not in the input gradient
        if a is not None:
            np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(fast_g[0].numpy()).max() > 1e-3  # a second derivative, and non-zero


# ------------------------------------------------------------------------------ dispatch


def _sequential(upsample: nn.Module, conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), upsample, conv, nn.Tanh())


def _x(c=3, seed=6, dtype="float64"):
    return tg.tensor(np.random.default_rng(seed).standard_normal((2, c, 3, 4)), dtype=dtype)


@pytest.mark.parametrize("scale", [2, 2.0, (2, 2)])
def test_sequential_fuses_upsample_then_3x3_conv(scale) -> None:
    rng = np.random.default_rng(7)
    model = _sequential(nn.Upsample(scale_factor=scale), nn.Conv2d(3, 5, 3, padding=1, rng=rng))
    model.double()
    x = _x()
    x.requires_grad = True
    y = model(x)
    names = op_names(y)
    assert "UpsampleConv2d" in names and "Im2col" not in names
    ref = reference(model, x)
    assert "UpsampleConv2d" not in op_names(ref)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "layers",
    [
        lambda rng: (nn.Upsample(scale_factor=3), nn.Conv2d(3, 5, 3, padding=1, rng=rng)),
        lambda rng: (nn.Upsample(scale_factor=(2, 1)), nn.Conv2d(3, 5, 3, padding=1, rng=rng)),
        lambda rng: (nn.Upsample(size=(6, 8)), nn.Conv2d(3, 5, 3, padding=1, rng=rng)),
        lambda rng: (nn.Upsample(scale_factor=2), nn.Conv2d(3, 5, 3, padding=0, rng=rng)),
        lambda rng: (nn.Upsample(scale_factor=2), nn.Conv2d(3, 5, 3, 2, padding=1, rng=rng)),
        lambda rng: (nn.Upsample(scale_factor=2), nn.Conv2d(3, 5, 5, padding=1, rng=rng)),
        lambda rng: (nn.Upsample(scale_factor=2), nn.Conv2d(3, 5, (3, 1), padding=1, rng=rng)),
        lambda rng: (nn.Upsample(scale_factor=2), nn.ConvTranspose2d(3, 5, 3, padding=1, rng=rng)),
        lambda rng: (nn.Conv2d(3, 3, 3, padding=1, rng=rng), nn.Upsample(scale_factor=2)),
    ],
    ids=[
        "scale-3", "scale-2x1", "size", "padding-0", "stride-2", "kernel-5", "kernel-3x1",
        "transposed", "conv-first",
    ],
)  # fmt: skip
def test_sequential_fuses_only_the_exact_pattern(layers) -> None:
    model = _sequential(*layers(np.random.default_rng(8)))
    model.double()
    x = _x()
    x.requires_grad = True
    y = model(x)
    assert "UpsampleConv2d" not in op_names(y)
    np.testing.assert_allclose(y.numpy(), reference(model, x).numpy(), rtol=1e-12, atol=1e-12)


def test_sequential_does_not_fuse_a_layer_between_or_a_subclass() -> None:
    rng = np.random.default_rng(9)

    class MyConv(nn.Conv2d):
        pass

    for model in (
        nn.Sequential(nn.Upsample(scale_factor=2), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1)),
        nn.Sequential(nn.Upsample(scale_factor=2), MyConv(3, 4, 3, padding=1, rng=rng)),
    ):
        x = _x()
        x.requires_grad = True
        assert "UpsampleConv2d" not in op_names(model.double()(x))


def test_use_fast_paths_false_runs_the_composition() -> None:
    model = _sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 4, 3, padding=1))
    x = _x(dtype="float32")
    x.requires_grad = True
    with tg.use_fast_paths(False):
        names = op_names(model(x))
    assert "UpsampleConv2d" not in names and not any(n.startswith("StridedConv") for n in names)
    assert "Im2col" in names


def test_fused_sequential_keeps_float32_and_the_layers_errors() -> None:
    model = _sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 4, 3, padding=1))
    x = _x(dtype="float32")
    x.requires_grad = True
    y = model(x)
    assert y.dtype == np.float32 and "UpsampleConv2d" in op_names(y)
    (gx,) = tg.grad(y.sum(), [x])
    assert gx.dtype == np.float32
    with pytest.raises(ValueError, match="conv2d: input has 2 channels"):
        model(_x(c=2, dtype="float32"))  # the composition's own message, not the fused op's
    with pytest.raises(TypeError, match="dtype mismatch"):
        model(_x(dtype="float64"))  # a float32 model is never silently upcast


def test_fused_pair_runs_the_layers_hooks() -> None:
    """A spectral-normalised Conv2d's hook sets its weight before the fused op reads it."""
    rng = np.random.default_rng(10)
    conv = nn.utils.spectral_norm(nn.Conv2d(3, 4, 3, padding=1, rng=rng), rng=rng)
    model = nn.Sequential(nn.Upsample(scale_factor=2), conv).double()
    x = _x()
    x.requires_grad = True
    y = model(x)
    assert "UpsampleConv2d" in op_names(y)
    model.eval()  # the power iteration stands still, so both runs see the same weight
    y, ref = model(x), reference(model, x)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)


def test_upsample_generator_takes_the_fused_op_and_equals_the_composition(device) -> None:
    """models.upsample_generator, float64, training mode: every doubling fused, and its
    output and every parameter's gradient those of the composition."""
    G = models.upsample_generator(32, channels=3, z_dim=8, width=2, rng=np.random.default_rng(11))
    G.double().to(device)
    z = tg.tensor(np.random.default_rng(12).standard_normal((3, 8)), device=device)
    params = list(G.parameters())

    def run():
        y = G(z)
        return y, op_names(y), tg.grad((y * y).sum(), params)

    (y, names, grads), (ref, ref_names, ref_grads) = run(), reference(run)
    assert "UpsampleConv2d" in names and "UpsampleConv2d" not in ref_names
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-10, atol=1e-12)
    for a, r in zip(grads, ref_grads):
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-9, atol=1e-11)
    fused = [type(layer).__name__ for layer in fast_upsample_conv.fused(G)]
    upsamples = sum(isinstance(m, nn.Upsample) for m in G.modules())
    assert upsamples == 3 and fused.count("_FusedPair") == upsamples  # 4 -> 8 -> 16 -> 32 px
