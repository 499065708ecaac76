"""dtypes and input checks: float32 stays float32, mixing is an error, shapes are named.

The end-to-end test runs a small DCGAN-like generator and discriminator in float32 and
records the dtype of every op's output (forward and backward) by wrapping
``Function.__call__``: a single accidental float64 upcast anywhere fails it.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F
from tinygan.autograd import Function

# ------------------------------------------------------------------------------ factories


def test_tensor_default_is_float32() -> None:
    assert tg.tensor([1.0, 2.0]).dtype == np.float32
    assert tg.tensor(3.0).dtype == np.float32
    assert tg.tensor(np.arange(3)).dtype == np.float32  # integers become float32
    assert tg.tensor(np.ones(2, dtype=np.float16)).dtype == np.float32
    assert tg.Tensor([1, 2]).dtype == np.float32


def test_tensor_keeps_float64_and_honours_dtype() -> None:
    assert tg.tensor(np.ones(2)).dtype == np.float64
    assert tg.tensor(np.ones(2), dtype=np.float32).dtype == np.float32
    assert tg.tensor([1.0], dtype="float64").dtype == np.float64
    assert tg.tensor(tg.tensor(np.ones(2))).dtype == np.float64
    with pytest.raises(TypeError, match="int64"):
        tg.tensor([1, 2], dtype=np.int64)


def test_cast_and_its_gradient() -> None:
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32 and y.requires_grad
    assert F.cast(x, np.float64) is x  # no-op cast
    (y * y).sum().backward()
    assert x.grad.dtype == np.float64  # the gradient comes back in the input's dtype
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    assert y.double().dtype == np.float64
    with pytest.raises(TypeError, match="float16"):
        F.cast(x, np.float16)


# ------------------------------------------------------------------------------ scalars


SCALARS = [2.0, 3, np.float64(2.0), np.float32(2.0), np.int64(2), np.array(2.0)]
OPERATORS = [
    lambda t, s: t + s,
    lambda t, s: s + t,
    lambda t, s: t - s,
    lambda t, s: s - t,
    lambda t, s: t * s,
    lambda t, s: s * t,
    lambda t, s: t / s,
    lambda t, s: s / t,
    lambda t, s: t**s,
    lambda t, s: s**t,
    lambda t, s: F.clip(t, -s, s),
    lambda t, s: F.leaky_relu(t, s / 10),
]


@pytest.mark.parametrize("scalar", SCALARS, ids=lambda s: f"{type(s).__name__}")
@pytest.mark.parametrize("op", range(len(OPERATORS)))
def test_scalars_keep_float32(scalar, op: int) -> None:
    t = tg.tensor([0.5, 1.5], requires_grad=True)
    out = OPERATORS[op](t, scalar)
    assert out.dtype == np.float32
    out.sum().backward()
    assert t.grad.dtype == np.float32


@pytest.mark.parametrize(
    "fn",
    [
        lambda t, s: F.clip(t, min=-s),
        lambda t, s: F.leaky_relu(t, s),
        lambda t, s: F.dropout(t, s, generator=np.random.default_rng(0)),
        lambda t, s: F.pad2d(t.reshape(1, 1, 2, 3), (1, 1), value=s),
        lambda t, s: F.batch_norm(t, None, None, training=True, eps=s, momentum=s),
        lambda t, s: F.batch_norm(
            t,
            tg.tensor(np.zeros(3), dtype=np.float32),
            tg.tensor(np.ones(3), dtype=np.float32),
            training=False,
            eps=s,
        ),
    ],
    ids=["clip", "leaky_relu", "dropout", "pad2d", "batch_norm_train", "batch_norm_eval"],
)
def test_numpy_float64_parameters_keep_float32(fn) -> None:
    t = tg.tensor(np.random.default_rng(0).standard_normal((2, 3)), dtype=np.float32)
    t.requires_grad = True
    out = fn(t, np.float64(0.25))
    assert out.dtype == np.float32
    out.sum().backward()
    assert t.grad.dtype == np.float32


def test_numpy_array_operand_keeps_float32() -> None:
    t = tg.tensor([[0.5, 1.5]])
    assert (t * np.ones((2, 1))).dtype == np.float32
    assert (np.ones((2, 1)) * t).dtype == np.float32  # numpy defers to Tensor.__rmul__
    assert (t @ np.ones((2, 3))).dtype == np.float32


# ------------------------------------------------------------------------------ errors


def test_mixing_float32_and_float64_names_both_dtypes() -> None:
    a32 = tg.tensor(np.ones((2, 2), dtype=np.float32))
    a64 = tg.tensor(np.ones((2, 2)))
    for fn in (
        lambda: a32 + a64,
        lambda: a64 * a32,
        lambda: a32 @ a64,
        lambda: F.linear(a32, a64),
        lambda: F.concat([a32, a64]),
        lambda: F.conv2d(
            tg.tensor(np.ones((1, 1, 3, 3), dtype=np.float32)), tg.tensor(np.ones((1, 1, 2, 2)))
        ),
    ):
        with pytest.raises(TypeError, match=r"float32.*float64|float64.*float32"):
            fn()


def test_shape_mismatches_name_both_shapes() -> None:
    a, b = tg.tensor(np.ones((2, 3))), tg.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a * b
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(5, 4, 2\)"):
        tg.tensor(np.ones((2, 3, 4))) @ tg.tensor(np.ones((5, 4, 2)))
    with pytest.raises(ValueError, match=r"\(3,\).*\(3, 2\)"):
        tg.tensor(np.ones(3)) @ tg.tensor(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        F.linear(a, b)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        F.linear(a, tg.tensor(np.ones((4, 3))), tg.tensor(np.ones(5)))
    with pytest.raises(ValueError, match=r"\(1, 2, 5, 5\).*\(3, 4, 3, 3\)"):
        F.conv2d(tg.tensor(np.ones((1, 2, 5, 5))), tg.tensor(np.ones((3, 4, 3, 3))))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        F.concat([a, tg.tensor(np.ones((2, 4)))], axis=0)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        F.stack([a, tg.tensor(np.ones((3, 2)))])


# ------------------------------------------------------------------------------ float32 end to end


def _param(rng: np.random.Generator, *shape: int, scale: float = 0.2) -> tg.Tensor:
    return tg.tensor(rng.standard_normal(shape) * scale, dtype=np.float32, requires_grad=True)


def _gen_and_disc(rng: np.random.Generator, device: str = "cpu"):
    """A small DCGAN: G maps z (N, 8) to (N, 1, 12, 12) images, D maps those to (N, 1)."""
    g = {
        "fc.w": _param(rng, 72, 8),
        "fc.b": _param(rng, 72),
        "bn1.w": _param(rng, 72, scale=1.0),
        "bn1.b": _param(rng, 72),
        "up1.w": _param(rng, 8, 4, 4, 4),
        "up1.b": _param(rng, 4),
        "bn2.w": _param(rng, 4, scale=1.0),
        "bn2.b": _param(rng, 4),
        "up2.w": _param(rng, 4, 1, 4, 4),
        "up2.b": _param(rng, 1),
    }
    d = {
        "c1.w": _param(rng, 4, 1, 4, 4),
        "c1.b": _param(rng, 4),
        "c2.w": _param(rng, 8, 4, 4, 4),
        "c2.b": _param(rng, 8),
        "bn.w": _param(rng, 8, scale=1.0),
        "bn.b": _param(rng, 8),
        "fc.w": _param(rng, 1, 72),
        "fc.b": _param(rng, 1),
    }
    stats = {
        name: tg.tensor(np.zeros(c) if "mean" in name else np.ones(c), dtype=np.float32)
        for name, c in [
            ("g1.mean", 72),
            ("g1.var", 72),
            ("g2.mean", 4),
            ("g2.var", 4),
            ("d.mean", 8),
            ("d.var", 8),
        ]
    }

    def on_device(tensors: dict) -> dict:
        return {
            k: tg.tensor(t, requires_grad=t.requires_grad, device=device)
            for k, t in tensors.items()
        }

    return on_device(g), on_device(d), on_device(stats)


def _generator(z, g, stats):
    h = F.linear(z, g["fc.w"], g["fc.b"])  # (N, 72)
    h = F.batch_norm(h, stats["g1.mean"], stats["g1.var"], g["bn1.w"], g["bn1.b"], training=True)
    h = F.relu(h).reshape(-1, 8, 3, 3)
    h = F.conv_transpose2d(h, g["up1.w"], g["up1.b"], stride=2, padding=1)  # (N, 4, 6, 6)
    h = F.batch_norm(h, stats["g2.mean"], stats["g2.var"], g["bn2.w"], g["bn2.b"], training=True)
    h = F.relu(h)
    h = F.conv_transpose2d(h, g["up2.w"], g["up2.b"], stride=2, padding=1)  # (N, 1, 12, 12)
    return F.tanh(h)


def _discriminator(x, d, stats):
    h = F.leaky_relu(F.conv2d(x, d["c1.w"], d["c1.b"], stride=2, padding=1), 0.2)  # (N,4,6,6)
    h = F.conv2d(h, d["c2.w"], d["c2.b"], stride=2, padding=1)  # (N, 8, 3, 3)
    h = F.batch_norm(h, stats["d.mean"], stats["d.var"], d["bn.w"], d["bn.b"], training=True)
    h = F.leaky_relu(h, 0.2)
    return F.linear(h.reshape(h.shape[0], -1), d["fc.w"], d["fc.b"])  # (N, 1)


@pytest.fixture
def op_dtypes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, np.dtype]]:
    """Every Function call's (op name, output dtype), forward and backward alike."""
    seen: list[tuple[str, np.dtype]] = []
    original = Function.__call__

    def recording_call(self, *inputs):
        out = original(self, *inputs)
        seen.append((type(self).__name__, out.dtype))
        return out

    monkeypatch.setattr(Function, "__call__", recording_call)
    return seen


def _assert_all_float32(seen: list[tuple[str, np.dtype]], must_include: set[str]) -> None:
    upcast = sorted({name for name, dtype in seen if dtype != np.float32})
    assert not upcast, f"ops that produced a non-float32 output: {upcast}"
    assert must_include <= {name for name, _ in seen}


def test_dcgan_forward_and_backward_stay_float32(op_dtypes, device) -> None:
    rng = np.random.default_rng(0)
    g, d, stats = _gen_and_disc(rng, device)
    z = tg.tensor(rng.standard_normal((4, 8)), dtype=np.float32, device=device)
    real = tg.tensor(rng.uniform(-1, 1, (4, 1, 12, 12)), dtype=np.float32, device=device)

    fake = _generator(z, g, stats)
    assert fake.shape == (4, 1, 12, 12)
    # LSGAN: D pushes real to 1 and fake to 0; G pushes fake to 1. Python floats throughout.
    d_loss = (
        0.5 * ((_discriminator(real, d, stats) - 1.0) ** 2).mean()
        + 0.5 * (_discriminator(fake.detach(), d, stats) ** 2).mean()
    )
    d_loss.backward()
    g_loss = 0.5 * ((_discriminator(fake, d, stats) - 1.0) ** 2).mean()
    g_loss.backward()

    assert d_loss.dtype == g_loss.dtype == np.float32
    for name, p in {**g, **d}.items():
        assert p.grad is not None, name
        assert p.grad.dtype == np.float32, name
        assert p.dtype == np.float32, name
    for name, s in stats.items():
        assert s.dtype == np.float32, name
    _assert_all_float32(
        op_dtypes,
        {
            "MatMul",
            "Im2col",
            "Col2im",
            "ReLU",
            "LeakyReLU",
            "Tanh",
            "PowScalar",
            "Sum",
            "StridedConv2d",
            "SubPixelConvTranspose2d",
        },  # DCGAN's layers take the fused ops
    )


def test_gradient_penalty_stays_float32(op_dtypes, device) -> None:
    rng = np.random.default_rng(1)
    _, d, stats = _gen_and_disc(rng, device)
    values = rng.uniform(-1, 1, (3, 1, 12, 12))
    x = tg.tensor(values, dtype=np.float32, requires_grad=True, device=device)

    def critic(t):  # the WGAN-GP critic has no batch_norm
        h = F.leaky_relu(F.conv2d(t, d["c1.w"], d["c1.b"], stride=2, padding=1), 0.2)
        h = F.leaky_relu(F.conv2d(h, d["c2.w"], d["c2.b"], stride=2, padding=1), 0.2)
        return F.linear(h.reshape(h.shape[0], -1), d["fc.w"], d["fc.b"])

    (gx,) = tg.grad(critic(x).sum(), [x], create_graph=True)
    penalty = 10.0 * (((gx * gx).sum(axis=(1, 2, 3)) + 1e-12).sqrt() - 1.0) ** 2
    penalty.mean().backward()
    assert gx.dtype == np.float32
    for name in ("c1.w", "c2.w", "fc.w"):
        assert d[name].grad.dtype == np.float32, name
    _assert_all_float32(op_dtypes, {"Im2col", "Col2im", "Sqrt", "LeakyReLU", "StridedConv2d"})
