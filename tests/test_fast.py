"""Every fast path (tinygan.fast) against the plain composition it replaces.

``tinygan.use_fast_paths(False)`` runs the lesson's compositions only; each test below
computes the same thing both ways and holds the fast path to the composition: forward,
first order (the array shortcuts of plain training) and second order (the op-built
backward a recorded graph uses). The op table (test_ops.py) and the convolution tests
(test_conv.py) run with the fast paths both on and off as well.
"""

from __future__ import annotations

import platform
import sys
import threading

import numpy as np
import pytest

import tinygan as tg
from tinygan import fast, models, optim
from tinygan import functional as F
from tinygan.backend import to_device, to_numpy
from tinygan.fast import optim as fast_optim
from tinygan.fast.memory import keep_freed_memory


def reference(fn, *args, **kwargs):
    """``fn(*args)`` with the fast paths off: the lesson's compositions only."""
    with tg.use_fast_paths(False):
        return fn(*args, **kwargs)


def op_classes(t: tg.Tensor) -> set[type]:
    """The Function classes of every op in the graph that made ``t``."""
    seen, stack, classes = set(), [t], set()
    while stack:
        node = stack.pop()
        if id(node) in seen or node._ctx is None:
            continue
        seen.add(id(node))
        classes.add(type(node._ctx))
        stack.extend(node._ctx.inputs)
    return classes


def fast_ops_in(t: tg.Tensor) -> set[str]:
    return {c.__name__ for c in op_classes(t) if c.__module__.startswith("tinygan.fast")}


def _leaves(dtype, seed, *shapes, device="cpu"):
    rng = np.random.default_rng(seed)
    return [
        tg.tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True, device=device)
        for s in shapes
    ]


# ------------------------------------------------------------------------------ the switch


def test_use_fast_paths_is_a_call_and_a_with_block():
    assert fast.enabled()
    with tg.use_fast_paths(False):
        assert not fast.enabled()
        with tg.use_fast_paths(True):
            assert fast.enabled()
        assert not fast.enabled()
    assert fast.enabled()
    try:
        tg.use_fast_paths(False)  # a plain call switches at once, until switched back
        assert not fast.enabled()
    finally:
        tg.use_fast_paths(True)
    assert fast.enabled()


def test_the_switch_belongs_to_one_thread():
    seen = []
    with tg.use_fast_paths(False):
        worker = threading.Thread(target=lambda: seen.append(fast.enabled()))
        worker.start()
        worker.join()
        assert not fast.enabled()
    assert seen == [True]  # a new thread starts with the fast paths on


def test_reference_mode_records_only_the_lessons_ops():
    """A DCGAN-28 forward and backward, with the penalty's double backward, under
    ``use_fast_paths(False)`` meets no op of tinygan.fast; with them on, every one."""
    G, D = models.mnist_models("dcgan", z_dim=8, seed=0)
    z = tg.tensor(np.random.default_rng(0).standard_normal((4, 8)), dtype="float32")

    def graph():
        fake = G(z)
        (gx,) = tg.grad(D(fake).sum(), [fake], create_graph=True)
        return (gx * gx).sum() + D(fake).sum()

    assert fast_ops_in(reference(graph)) == set()
    assert fast_ops_in(graph()) == {
        "MatMul", "LeakyReLU", "Standardize", "StridedConv2d", "SubPixelConvTranspose2d"
    }  # fmt: skip


# ------------------------------------------------------------------------------ MatMul


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_layouts_give_the_plain_products(dtype) -> None:
    """The outer-product forward and the transposed-view weight gradient of MatMul equal
    the composition's products bit for bit, and a Linear layer's weight gradient is
    row-major."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((7, 1)).astype(dtype), rng.standard_normal((1, 9)).astype(dtype)
    np.testing.assert_array_equal(F.matmul(tg.tensor(a), tg.tensor(b)).data, np.matmul(a, b))
    x = tg.tensor(rng.standard_normal((6, 5)).astype(dtype), requires_grad=True)
    w = tg.tensor(rng.standard_normal((4, 5)).astype(dtype), requires_grad=True)
    g = rng.standard_normal((6, 4)).astype(dtype)
    gx, gw = tg.grad(F.linear(x, w), [x, w], grad_outputs=g)
    ref_gx, ref_gw = reference(lambda: tg.grad(F.linear(x, w), [x, w], grad_outputs=g))
    np.testing.assert_array_equal(gw.data, ref_gw.data)
    np.testing.assert_array_equal(gx.data, ref_gx.data)
    assert gw.data.flags.c_contiguous and not ref_gw.data.flags.c_contiguous


def test_matmul_layouts_second_order():
    x, w = _leaves("float64", 6, (3, 4), (2, 4))
    assert tg.gradgradcheck(lambda x, w: F.linear(x, w), [x, w])
    u, v = _leaves("float64", 7, (5, 1), (1, 3))  # the outer product
    assert tg.gradgradcheck(F.matmul, [u, v])


# ------------------------------------------------------------------------------ LeakyReLU


@pytest.mark.parametrize("slope", [0.2, 0.01, 0.0, 1.0, -1.5])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_leaky_relu_equals_the_composition(slope: float, dtype: str, device: str) -> None:
    """Forward (max(x, a x)) and the array backward against the lesson op, bit for bit, on
    a channels-last view (the layout convolutions hand it) holding exact zeros."""
    rng = np.random.default_rng(4)
    values = rng.standard_normal((2, 4, 3, 5)).astype(dtype)
    values[0, 1] = 0.0  # the kink: both paths use the slope a there
    x = tg.tensor(values, requires_grad=True, device=device).permute(0, 3, 1, 2).detach()
    x.requires_grad = True
    g = tg.tensor(rng.standard_normal(x.shape), dtype=dtype, requires_grad=True, device=device)
    y, ref = F.leaky_relu(x, slope), reference(F.leaky_relu, x, slope)
    np.testing.assert_array_equal(y.numpy(), ref.numpy())
    (fast_g,) = tg.grad(y, [x], grad_outputs=g, retain_graph=True)  # arrays
    (built,) = tg.grad(y, [x], grad_outputs=g, create_graph=True)  # tinygan ops
    (ref_g,) = reference(lambda: tg.grad(ref, [x], grad_outputs=g))
    assert built.requires_grad and not fast_g.requires_grad  # built is linear in g
    assert fast_g.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(fast_g.numpy(), ref_g.numpy())
    np.testing.assert_array_equal(built.numpy(), ref_g.numpy())


# ------------------------------------------------------------------------------ BatchNorm


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 5)])
def test_standardize_equals_the_composition(shape: tuple[int, ...], device: str) -> None:
    """The fused op's forward, array backward (no graph recorded) and op-built backward
    against :func:`functional.standardize`, and the same running statistics."""
    rng = np.random.default_rng(3)
    x = tg.tensor(rng.standard_normal(shape) * 3 + 1, requires_grad=True, device=device)
    g = rng.standard_normal(shape)
    channels = shape[1]
    stats = [to_device(np.zeros(channels), device), to_device(np.ones(channels), device)]
    ref_stats = [to_device(np.zeros(channels), device), to_device(np.ones(channels), device)]
    y = F.batch_norm(x, *stats, training=True)
    ref = reference(F.batch_norm, x, *ref_stats, training=True)
    assert "Standardize" in fast_ops_in(y) and not fast_ops_in(ref)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    for a, r in zip(stats, ref_stats):
        np.testing.assert_allclose(to_numpy(a), to_numpy(r), rtol=1e-12, atol=1e-12)
    (fast_g,) = tg.grad(y, [x], grad_outputs=g, retain_graph=True)  # the array formula
    (built,) = tg.grad(y, [x], grad_outputs=g, create_graph=True)  # the tinygan ops
    (ref_g,) = reference(lambda: tg.grad(ref, [x], grad_outputs=g))
    assert built.requires_grad and not fast_g.requires_grad
    np.testing.assert_allclose(fast_g.numpy(), ref_g.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(built.numpy(), ref_g.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalized_shape", [(5,), (3, 5, 5)])
def test_layer_norm_takes_the_fused_standardisation_and_equals_the_composition(
    normalized_shape, device
) -> None:
    """LayerNorm's statistics run over each sample's trailing axes: the same fused op as
    BatchNorm's, held to layer_norm's composition (forward, array backward, op-built)."""
    shape = (4, *normalized_shape)
    rng = np.random.default_rng(5)
    x = tg.tensor(rng.standard_normal(shape) * 2 - 1, requires_grad=True, device=device)
    weight, bias = (tg.tensor(rng.standard_normal(normalized_shape), requires_grad=True,
                              device=device) for _ in range(2))  # fmt: skip
    g = to_device(rng.standard_normal(shape), device)
    y = F.layer_norm(x, normalized_shape, weight, bias)
    ref = reference(F.layer_norm, x, normalized_shape, weight, bias)
    assert "Standardize" in fast_ops_in(y) and not fast_ops_in(ref)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    inputs = [x, weight, bias]
    fast_g = tg.grad(y, inputs, grad_outputs=g, retain_graph=True)  # the array formula
    built = tg.grad(y, inputs, grad_outputs=g, create_graph=True)  # the tinygan ops
    ref_g = reference(lambda: tg.grad(ref, inputs, grad_outputs=g))
    for a, b, r in zip(fast_g, built, ref_g):
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.numpy(), r.numpy(), rtol=1e-10, atol=1e-12)


def test_standardize_second_order():
    (x,) = _leaves("float64", 11, (5, 2, 2, 3))
    assert tg.gradgradcheck(lambda x: F.batch_norm(x, None, None, training=True) ** 3, [x])


# ------------------------------------------------------------------------------ spectral norm

SN_LAYERS = {
    "linear": lambda rng: tg.nn.Linear(7, 4, rng=rng),
    "conv": lambda rng: tg.nn.Conv2d(3, 5, 4, 2, 1, rng=rng),
    "transposed": lambda rng: tg.nn.ConvTranspose2d(3, 5, 4, 2, 1, rng=rng),  # dim 1
}


def _normalised_weight(kind: str, dtype: str, device: str):
    """A spectrally normalised layer of ``kind``; its hook run once (one power step)."""
    rng = np.random.default_rng(7)
    layer = SN_LAYERS[kind](rng)
    tg.nn.utils.spectral_norm(layer, rng=rng)
    layer = (layer.double() if dtype == "float64" else layer.float()).to(device)
    layer._forward_pre_hooks[0](layer)
    return layer


@pytest.mark.parametrize("kind", list(SN_LAYERS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_spectral_normalize_equals_the_composition(kind, dtype, device) -> None:
    """W / sigma as one op against nn.SpectralNorm's seven: the weight and its gradient by
    the array path bit for bit (one forward pass: with several, the sums of their
    contributions to dL/dW associate differently), the op-built backward and the gradient
    of that gradient to rounding."""
    results = []
    for fast_paths in (True, False):
        with tg.use_fast_paths(fast_paths):
            layer = _normalised_weight(kind, dtype, device)
            weight, w = layer.weight, layer.weight_orig
            assert ("SpectralNormalize" in fast_ops_in(weight)) == fast_paths
            r = tg.tensor(np.random.default_rng(8).standard_normal(w.shape), dtype=dtype,
                          device=device)  # fmt: skip
            (plain,) = tg.grad((weight * weight * r).sum(), [w], retain_graph=True)
            (built,) = tg.grad((weight * weight * r).sum(), [w], create_graph=True)
            (second,) = tg.grad((built * built).sum(), [w])
            results.append([t.numpy() for t in (weight, plain, built, second)])
    (fast_w, fast_plain, *_), (ref_w, ref_plain, *_) = results
    np.testing.assert_array_equal(fast_w, ref_w)  # the composition's products, in its order
    np.testing.assert_array_equal(fast_plain, ref_plain)  # its chain rule, in its order
    tol = {"float64": 1e-12, "float32": 1e-5}[dtype]
    for name, fast_value, ref_value in zip(("dW built", "d2W"), *(r[2:] for r in results)):
        scale = np.abs(ref_value).max()
        np.testing.assert_allclose(fast_value, ref_value, rtol=tol, atol=tol * scale, err_msg=name)


@pytest.mark.parametrize("kind", list(SN_LAYERS))
def test_spectral_normalize_first_and_second_order_by_finite_differences(kind) -> None:
    layer = _normalised_weight(kind, "float64", "cpu")
    hook = layer._forward_pre_hooks[0]
    u, v = layer.weight_u, layer.weight_v

    def normalised(w):
        return tg.fast.spectral_norm.SpectralNormalize(hook, u, v)(w) ** 2

    assert tg.gradcheck(normalised, [layer.weight_orig])
    assert tg.gradgradcheck(normalised, [layer.weight_orig])


# ------------------------------------------------------------------------------ convolution
# DCGAN's shape (kernel 4, stride 2, padding 1) runs as two fused ops: SubPixelConvTranspose2d
# (forward by the sub-pixel identity) and StridedConv2d (whose input gradient is that
# transposed convolution). The lesson's im2col/col2im compositions are their reference:
# forward, first order and second order.

FAST_CASES = [
    # x shape (N, C_in, H, W), C_out: every case takes the fast path
    ((2, 3, 3, 3), 2),
    ((1, 4, 2, 5), 3),  # H != W
    ((3, 8, 4, 4), 4),  # C_in < 4 C_out by one channel's worth
    ((2, 1, 1, 1), 1),  # a single pixel
]


@pytest.mark.parametrize(("x_shape", "c_out"), FAST_CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sub_pixel_conv_transpose2d_equals_the_composition(x_shape, c_out, dtype, device):
    x, w, b = _leaves(dtype, 8, x_shape, (x_shape[1], c_out, 4, 4), (c_out,), device=device)
    y = F.conv_transpose2d(x, w, b, stride=2, padding=1)
    assert type(y._ctx).__name__ == "SubPixelConvTranspose2d"
    ref = reference(F.conv_transpose2d, x, w, b, stride=2, padding=1)
    assert not fast_ops_in(ref)
    assert y.shape == ref.shape and y.dtype == np.dtype(dtype)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=tol, atol=tol)
    g = np.random.default_rng(9).standard_normal(y.shape).astype(dtype)
    fast_g = tg.grad(y, [x, w, b], grad_outputs=g)
    slow = reference(lambda: tg.grad(ref, [x, w, b], grad_outputs=g))
    for a, r in zip(fast_g, slow):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=tol, atol=tol)


STRIDED_CASES = [
    # x shape (N, C, H, W), O: a convolution of DCGAN's layer, kernel 4, stride 2, padding 1
    ((2, 2, 6, 6), 3),  # its input gradient by the sub-pixel identity (3 < 4 * 2)
    ((1, 3, 4, 10), 5),  # the same, H != W
    ((2, 1, 6, 6), 4),  # its input gradient by col2im (4 >= 4 * 1)
    ((2, 2, 5, 7), 3),  # odd sizes: the input gradient needs output_padding, so col2im
]


@pytest.mark.parametrize(("x_shape", "o"), STRIDED_CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_strided_conv2d_equals_the_composition(x_shape, o, dtype, device) -> None:
    x, w, b = _leaves(dtype, 10, x_shape, (o, x_shape[1], 4, 4), (o,), device=device)
    y = F.conv2d(x, w, b, stride=2, padding=1)
    assert type(y._ctx).__name__ == "StridedConv2d"
    ref = reference(F.conv2d, x, w, b, stride=2, padding=1)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=tol, atol=tol)
    g = np.random.default_rng(12).standard_normal(y.shape).astype(dtype)
    fast_g = tg.grad(y, [x, w, b], grad_outputs=g, retain_graph=True)  # arrays for dL/dw
    built = tg.grad(y, [x, w, b], grad_outputs=g, create_graph=True)  # tinygan ops
    slow = reference(lambda: tg.grad(ref, [x, w, b], grad_outputs=g))
    for a, c, r in zip(fast_g, built, slow):
        assert a.shape == r.shape and a.dtype == c.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(c.numpy(), r.numpy(), rtol=tol, atol=tol)


def test_other_shapes_take_the_general_path() -> None:
    """Transposed convolutions where the sub-pixel identity does not hold or would move more
    memory (DCGAN's last layer, 64 -> 1 channels), and convolutions of any other shape than
    DCGAN's layer, keep the im2col/col2im composition."""
    rng = np.random.default_rng(13)
    x = tg.tensor(rng.standard_normal((1, 8, 3, 3)), requires_grad=True)
    for w_shape, stride, padding, output_padding in [
        ((8, 1, 4, 4), 2, 1, 0),
        ((8, 2, 4, 4), 2, 1, 0),  # C_in = 4 C_out
        ((8, 9, 4, 4), 2, 1, 1),  # output padding
        ((8, 9, 4, 4), 2, 0, 0),
        ((8, 9, 3, 3), 2, 1, 0),
        ((8, 9, 4, 4), 1, 1, 0),
    ]:
        w = tg.tensor(rng.standard_normal(w_shape))
        y = F.conv_transpose2d(x, w, None, stride, padding, output_padding)
        assert type(y._ctx).__name__ == "Col2im", (w_shape, stride, padding, output_padding)
        y = F.conv2d(y, w, None, stride, padding)  # (8, C_out, KH, KW) as (O, C, KH, KW)
        dcgan = (w_shape[2], stride, padding) == (4, 2, 1)
        assert type(y._ctx).__name__ == ("StridedConv2d" if dcgan else "Transpose")


def _dcgan_critic(x, w1, b1, w2, b2, w3):
    """DCGAN's critic in miniature: two strided convolutions, the second one's input
    gradient by the sub-pixel identity."""
    h = F.leaky_relu(F.conv2d(x, w1, b1, stride=2, padding=1), 0.2)
    h = F.leaky_relu(F.conv2d(h, w2, b2, stride=2, padding=1), 0.2)
    return F.linear(h.reshape(x.shape[0], -1), w3)


def test_gradient_penalty_through_the_fast_paths_equals_the_composition(device) -> None:
    """WGAN-GP differentiates the critic's input gradient again: through StridedConv2d's
    backward and SubPixelConvTranspose2d's. Both orders against the composition."""
    rng = np.random.default_rng(14)
    x = tg.tensor(rng.standard_normal((3, 1, 8, 8)), requires_grad=True, device=device)
    shapes = [(4, 1, 4, 4), (4,), (6, 4, 4, 4), (6,), (1, 24)]
    params = [
        tg.tensor(rng.standard_normal(s) * 0.5, requires_grad=True, device=device) for s in shapes
    ]

    def penalty_gradients():
        (gx,) = tg.grad(_dcgan_critic(x, *params).sum(), [x], create_graph=True)
        penalty = (((gx * gx).sum(axis=(1, 2, 3)) - 1.0) ** 2).mean()
        return tg.grad(penalty, params, allow_unused=True)

    fast_g, slow = penalty_gradients(), reference(penalty_gradients)
    for a, r in zip(fast_g, slow):
        assert (a is None) == (r is None)
        if a is not None:
            np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(fast_g[2].numpy()).max() > 1e-3  # a second derivative, and non-zero


def test_fused_convolutions_second_order_by_finite_differences() -> None:
    """gradgradcheck of both fused ops with all their inputs (the op table checks the
    DCGAN rows too; these add batch > 1 and H != W)."""
    rng = np.random.default_rng(15)
    x = tg.tensor(rng.standard_normal((2, 3, 2, 3)), requires_grad=True)
    w = tg.tensor(rng.standard_normal((3, 2, 4, 4)), requires_grad=True)
    b = tg.tensor(rng.standard_normal(2), requires_grad=True)
    assert tg.gradgradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1), [x, w, b])
    y = tg.tensor(rng.standard_normal((2, 2, 4, 6)), requires_grad=True)
    b3 = tg.tensor(rng.standard_normal(3), requires_grad=True)
    assert tg.gradgradcheck(lambda y, w, b: F.conv2d(y, w, b, 2, 1), [y, w, b3])


# ------------------------------------------------------------------------------ Adam


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_with_scratch_is_the_formula_bit_for_bit(weight_decay, dtype, device):
    """Five steps of the fast Adam and of the lesson's formula, on parameters of several
    shapes (one without a gradient at some steps): identical parameters and moments."""
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (5,), (2, 2, 3)]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    runs = []
    for enabled in (True, False):
        params = [tg.tensor(a, requires_grad=True, device=device) for a in start]
        opt = optim.Adam(params, lr=0.01, betas=(0.5, 0.9), weight_decay=weight_decay)
        grads = np.random.default_rng(2)
        with tg.use_fast_paths(enabled):
            for step in range(5):
                for i, p in enumerate(params):
                    g = grads.standard_normal(p.shape).astype(dtype)
                    p.grad = None if (i == 1 and step == 2) else tg.tensor(g, device=device)
                opt.step()
        runs.append((params, opt.state_dict()))
    (fast_params, fast_state), (ref_params, ref_state) = runs
    for p, q in zip(fast_params, ref_params):
        assert p.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert fast_state.keys() == ref_state.keys()
    for key, value in fast_state.items():
        np.testing.assert_array_equal(to_numpy(value), to_numpy(ref_state[key]), err_msg=key)


def test_adam_scratch_leaves_parameters_independent():
    """One optimizer over parameters of several shapes and dtypes (its intermediates share
    one scratch array per dtype) moves each exactly as an optimizer of its own would."""
    rng = np.random.default_rng(2)
    shapes = [((3, 4), "float32"), (5, "float64"), ((2, 2), "float32"), (7, "float32")]
    arrays = [rng.standard_normal(s).astype(d) for s, d in shapes]
    together = [tg.tensor(a, requires_grad=True) for a in arrays]
    alone = [tg.tensor(a, requires_grad=True) for a in arrays]
    make = lambda ps: optim.Adam(ps, lr=0.01, betas=(0.5, 0.99))  # noqa: E731
    opt, opts = make(together), [make([p]) for p in alone]
    for _ in range(3):
        grads = [rng.standard_normal(a.shape).astype(a.dtype) for a in arrays]
        for p, q, g in zip(together, alone, grads):
            p.grad, q.grad = tg.tensor(g), tg.tensor(g)
        opt.step()
        for o in opts:
            o.step()
        for p, q in zip(together, alone):
            assert p.dtype == q.dtype
            np.testing.assert_array_equal(p.numpy(), q.numpy())
    live = [p.data for p in together] + [
        v for state in opt.state for v in state.values() if isinstance(v, np.ndarray)
    ]
    buffers = fast_optim._buffers[opt].values()
    assert len(buffers) == 2  # float32 and float64
    for array in live:  # parameters and the flat moments never share the scratch
        for buffer in buffers:
            assert not np.shares_memory(array, buffer)


# ------------------------------------------------------------------------------ memory


def test_keep_freed_memory_takes_effect_on_glibc_only():
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc


# ------------------------------------------------------------------------------ the main demo


def _main_demo_models(dtype: str):
    """G and D as demos/mnist_lsgan.py builds them: D spectrally normalised, no BatchNorm."""
    from tinygan.utils.streams import RandomStreams

    G, D = models.mnist_models("dcgan", 100, d_batchnorm=False, seed=0)
    tg.nn.utils.spectral_norm_layers(D, RandomStreams(0).spectral_norm())
    return (G.double(), D.double()) if dtype == "float64" else (G, D)


def _main_demo_run(fast_paths: bool, dtype: str, steps: int, n: int = 16, device: str = "cpu"):
    """The main demo's loop (DCGAN-28, LSGAN, Adam with its recipe, the EMA of G) for
    ``steps`` steps in ``dtype`` on ``device``: the losses of every step, and the images G
    and its EMA draw afterwards from fixed noise (in eval mode, as the grids are drawn)."""
    from tinygan import data, losses
    from tinygan.ema import EMA
    from tinygan.gan import generate
    from tinygan.utils.streams import RandomStreams

    images = data.load_training_images("mnist", None, download=False)
    with tg.use_fast_paths(fast_paths):
        G, D = _main_demo_models(dtype)
        G, D = G.to(device), D.to(device)
        opt_g = optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.9))
        opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.9))
        ema, streams = EMA(G, 0.995), RandomStreams(0)
        loader = data.BatchLoader(images, n, seed=0)
        history = []
        for step in range(1, steps + 1):
            real = tg.Tensor(loader.batch(step).astype(dtype)).to(device)
            z = tg.Tensor(streams.noise(step, n, 100).astype(dtype)).to(device)
            fake = G(z)
            real_scores, fake_scores = D(real), D(fake.detach())
            d_loss = losses.lsgan_d_loss(real_scores, fake_scores)
            opt_d.minimize(d_loss)
            g_loss = losses.lsgan_g_loss(D(fake))
            opt_g.minimize(g_loss)
            ema.update()
            history.append((d_loss.item(), g_loss.item()))
        z = tg.Tensor(streams.grid_noise(16, 100).astype(dtype)).to(device)
        noise = streams.batchnorm_noise(100)
        ema.recompute_batchnorm([tg.Tensor(b.astype(dtype)).to(device) for b in noise])
        return np.array(history), generate(G, z), generate(ema.model, z)


def test_thirty_steps_of_the_main_demo_agree_with_and_without_fast_paths():
    """30 steps of the main demo's loop, fast paths on and off, in float64: every step's
    losses agree to 1e-10 (relative), and the images G and its EMA draw from fixed noise
    (pixels in [-1, 1], eval mode) to 1e-9.

    Why float64 and that tolerance: the two runs sum in different orders (sub-pixel phases
    against col2im's scatter-adds, a closed-form BatchNorm backward against the composed
    one), so they differ by rounding, ~1e-16 per op in float64; measured, the losses stay
    within 2e-13 of each other over the 30 steps. In float32 (the next test) the same
    rounding, ~6e-8, is amplified by the training itself: the biases right before a
    BatchNorm have a gradient that is exactly 0 in exact arithmetic, so rounding alone
    sets its sign, and Adam, which divides by the gradient's own size, turns it into a step
    of up to lr. Those biases do not change what the networks compute in training mode,
    but after a few steps the two float32 runs follow different (equally good)
    trajectories (measured: losses 1e-6 apart for two steps, 14% apart at step 30). In
    float64 Adam's eps (1e-8) keeps those rounding-sized gradients' steps at ~1e-11; they
    reach the eval-mode outputs through the running means, which follow those biases with
    a lag: measured, the images differ by at most 1.4e-10. D (spectrally normalised, as in
    the demo) is held by the losses, its output at every step.
    """
    fast_run = _main_demo_run(True, "float64", steps=30)
    reference_run = _main_demo_run(False, "float64", steps=30)
    np.testing.assert_allclose(fast_run[0], reference_run[0], rtol=1e-10, atol=0)  # losses
    for fast_value, reference_value in zip(fast_run[1:], reference_run[1:]):
        np.testing.assert_allclose(fast_value, reference_value, rtol=0, atol=1e-9)


def test_a_few_steps_of_the_main_demo_agree_on_every_device(device):
    """Three float64 steps of the main demo's loop, fast paths on, on ``device`` and with
    NumPy: the same losses and images to float64 rounding (the same sums, perhaps in
    another order)."""
    on_device = _main_demo_run(True, "float64", steps=3, n=8, device=device)
    on_numpy = _main_demo_run(True, "float64", steps=3, n=8)
    np.testing.assert_allclose(on_device[0], on_numpy[0], rtol=1e-10, atol=0)  # losses
    for device_value, numpy_value in zip(on_device[1:], on_numpy[1:]):
        np.testing.assert_allclose(device_value, numpy_value, rtol=0, atol=1e-9)


def _one_step_gradients(fast_paths: bool, dtype: str):
    """The losses and every parameter's gradient (D's from L_D, G's from L_G) of the main
    demo's first step, batch 64, as float64 arrays."""
    from tinygan import data, losses
    from tinygan.utils.streams import RandomStreams

    images = data.load_training_images("mnist", None, download=False)
    with tg.use_fast_paths(fast_paths):
        G, D = _main_demo_models(dtype)
        real = tg.Tensor(data.BatchLoader(images, 64, seed=0).batch(1).astype(dtype))
        fake = G(tg.Tensor(RandomStreams(0).noise(1, 64, 100).astype(dtype)))
        d_loss = losses.lsgan_d_loss(D(real), D(fake.detach()))
        g_loss = losses.lsgan_g_loss(D(fake))
        grads = tg.grad(d_loss, list(D.parameters())) + tg.grad(g_loss, list(G.parameters()))
    return [d_loss.item(), g_loss.item()], [g.numpy().astype(np.float64) for g in grads]


def test_in_float32_both_paths_are_as_accurate_as_float32_allows():
    """One float32 step of the main demo, fast paths on and off, against the same step in
    float64: the losses within 1e-5, every gradient within 1e-3 of its largest entry (plus
    1e-4 of the largest gradient of all).

    Why against float64 and not fast against plain: float32 rounding depends on the order
    of every sum, which the fast paths and each CPU's BLAS kernels choose differently, and
    after a step Adam turns rounding into steps of size lr, so two float32 runs part within
    a few steps. Held to the float64 truth each is as good as float32 allows: a float32
    matrix product that sums K = 12,544 terms (D's first weight gradient: 64 images x 196
    positions) may be off by K * 6e-8 = 7.5e-4 of its terms' size, and measured on an AMD
    EPYC one path or the other (depending on the kernel OpenBLAS picks) reaches 2e-4 there
    while the rest stay near 1e-6. The 1e-4 is for the biases right before a BatchNorm,
    whose exact gradient is 0: both compute rounding noise there, measured at 2e-5 of the
    largest gradient. A wrong gradient is off by its own size.
    """
    truth_losses, truth = _one_step_gradients(False, "float64")
    scale = max(np.abs(g).max() for g in truth)
    for fast_paths in (True, False):
        losses_32, grads_32 = _one_step_gradients(fast_paths, "float32")
        np.testing.assert_allclose(losses_32, truth_losses, rtol=1e-5)
        for i, (g, t) in enumerate(zip(grads_32, truth)):
            error = np.abs(g - t).max()
            assert error <= 1e-3 * np.abs(t).max() + 1e-4 * scale, (fast_paths, i, error)
