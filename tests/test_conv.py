"""Convolution, transposed convolution, im2col/col2im and pooling against slow references.

The references below are nested loops that follow the definitions one multiply-add at a
time: slow, but obviously right. The fast im2col implementations must agree with them, and
the adjoint identities

    <conv2d(x, w), y> = <x, conv_transpose2d(y, w)>      <im2col(x), c> = <x, col2im(c)>

must hold for every shape, stride and padding (that is what makes each the other's
backward). Gradients of all of these are checked in test_ops.py's table.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F

# Every test here runs twice: with the fast paths (tinygan.fast) and without them.
pytestmark = pytest.mark.usefixtures("fast_paths")

# ------------------------------------------------------------------------------ references


def conv2d_loops(x, w, b=None, stride=(1, 1), padding=(0, 0)):
    """y[n, o, i, j] = b[o] + sum_{c,u,v} w[o, c, u, v] * x[n, c, i*sh + u - ph, j*sw + v - pw]."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, oh, ow))
    for ni, oi, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        total = 0.0 if b is None else b[oi]
        for ci, u, v in itertools.product(range(c), range(kh), range(kw)):
            r, s = i * sh + u - ph, j * sw + v - pw
            if 0 <= r < h and 0 <= s < wd:  # outside: zero padding
                total += w[oi, ci, u, v] * x[ni, ci, r, s]
        y[ni, oi, i, j] = total
    return y


def conv_transpose2d_loops(x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0)):
    """Every input pixel scatters w[c_in, :, :, :] * x[n, c_in, i, j] onto the output at
    (i*sh + u - ph, j*sw + v - pw); what falls outside the output is dropped."""
    n, c_in, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    (sh, sw), (ph, pw), (oph, opw) = stride, padding, output_padding
    out_h, out_w = (h - 1) * sh - 2 * ph + kh + oph, (wd - 1) * sw - 2 * pw + kw + opw
    y = np.zeros((n, c_out, out_h, out_w))
    for ni, ci, i, j in itertools.product(range(n), range(c_in), range(h), range(wd)):
        for co, u, v in itertools.product(range(c_out), range(kh), range(kw)):
            r, s = i * sh + u - ph, j * sw + v - pw
            if 0 <= r < out_h and 0 <= s < out_w:
                y[ni, co, r, s] += x[ni, ci, i, j] * w[ci, co, u, v]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def im2col_loops(x, kernel, stride, padding):
    """cols[(n, i, j), (u, v, c)] = x_pad[n, c, i*sh + u, j*sw + v].

    Rows are windows; columns run channels-last, as conv.py documents (a row then reads C
    neighbouring floats at a time)."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    cols = np.zeros((n * oh * ow, c * kh * kw))
    for ni, i, j, ci, u, v in itertools.product(
        range(n), range(oh), range(ow), range(c), range(kh), range(kw)
    ):
        r, s = i * sh + u - ph, j * sw + v - pw
        if 0 <= r < h and 0 <= s < wd:
            cols[(ni * oh + i) * ow + j, (u * kw + v) * c + ci] = x[ni, ci, r, s]
    return cols


def pool_loops(x, kernel, stride, padding, reduce):
    """reduce() over each window of each channel; padding is -inf for max, 0 for mean."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    fill = -np.inf if reduce is np.max else 0.0
    padded = np.full((n, c, h + 2 * ph, wd + 2 * pw), fill)
    padded[:, :, ph : ph + h, pw : pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n, c, oh, ow))
    for ni, ci, i, j in itertools.product(range(n), range(c), range(oh), range(ow)):
        y[ni, ci, i, j] = reduce(padded[ni, ci, i * sh : i * sh + kh, j * sw : j * sw + kw])
    return y


def test_reference_conv_transpose_is_the_adjoint_of_reference_conv() -> None:
    """The two loop references agree with each other, so neither is wrong in a way the
    other repeats."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 3, 2))
    y = conv2d_loops(x, w, stride=(2, 1), padding=(1, 0))
    g = rng.standard_normal(y.shape)
    # output_padding (0, 0) gives back (5, 6): (3-1)*2 - 2 + 3 = 5, (5-1)*1 + 2 = 6
    back = conv_transpose2d_loops(g, w, stride=(2, 1), padding=(1, 0))
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, back), rtol=1e-12)


# ------------------------------------------------------------------------------ forward

CONV2D_CASES = [
    # x shape, w shape, stride, padding, bias
    ((2, 3, 5, 5), (4, 3, 3, 3), (1, 1), (0, 0), True),
    ((1, 2, 6, 6), (3, 2, 3, 3), (2, 2), (1, 1), False),
    ((2, 1, 7, 5), (2, 1, 2, 3), (2, 1), (1, 0), True),  # non-square kernel, mixed stride
    ((1, 2, 5, 8), (2, 2, 3, 1), (1, 3), (0, 2), True),
    ((2, 1, 6, 6), (3, 1, 4, 4), (2, 2), (1, 1), True),  # DCGAN's k4 s2 p1
    ((1, 2, 7, 7), (1, 2, 2, 2), (3, 3), (0, 0), False),  # stride leaves a remainder
    ((1, 3, 4, 4), (2, 3, 1, 1), (1, 1), (0, 0), True),  # 1x1 kernel
]


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "bias"), CONV2D_CASES)
def test_conv2d_matches_loops(x_shape, w_shape, stride, padding, bias, device) -> None:
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if bias else None
    x_, w_, b_ = (None if a is None else tg.tensor(a, device=device) for a in (x, w, b))
    y = F.conv2d(x_, w_, b_, stride, padding)
    np.testing.assert_allclose(
        y.numpy(), conv2d_loops(x, w, b, stride, padding), rtol=1e-12, atol=1e-12
    )


CONV_TRANSPOSE2D_CASES = [
    # x shape, w shape (C_in, C_out, KH, KW), stride, padding, output_padding, bias
    ((2, 3, 3, 3), (3, 2, 3, 3), (1, 1), (0, 0), (0, 0), True),
    ((1, 2, 3, 3), (2, 3, 4, 4), (2, 2), (1, 1), (0, 0), True),  # DCGAN's k4 s2 p1
    ((2, 2, 3, 4), (2, 2, 3, 3), (2, 2), (1, 1), (1, 1), False),
    ((1, 2, 3, 4), (2, 3, 2, 3), (2, 1), (0, 1), (1, 0), True),  # non-square kernel
    ((1, 1, 3, 2), (1, 2, 3, 2), (3, 2), (1, 0), (2, 1), True),
    ((2, 2, 2, 3), (2, 1, 1, 2), (1, 2), (0, 0), (0, 1), False),
    ((1, 2, 4, 4), (2, 2, 5, 3), (1, 1), (2, 1), (0, 0), True),
]


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding", "output_padding", "bias"), CONV_TRANSPOSE2D_CASES
)
def test_conv_transpose2d_matches_loops(
    x_shape, w_shape, stride, padding, output_padding, bias, device
) -> None:
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1]) if bias else None
    x_, w_, b_ = (None if a is None else tg.tensor(a, device=device) for a in (x, w, b))
    y = F.conv_transpose2d(x_, w_, b_, stride, padding, output_padding)
    expected = conv_transpose2d_loops(x, w, b, stride, padding, output_padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_conv2d_of_non_contiguous_input(device) -> None:
    """im2col reads windows through strides: views (transposed, broadcast) must work."""
    rng = np.random.default_rng(3)
    base, w = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((3, 2, 3, 2))
    x = tg.tensor(base, device=device).transpose(0, 1, 3, 2)  # a transposed view (2, 2, 5, 6)
    expected = conv2d_loops(base.transpose(0, 1, 3, 2), w, stride=(2, 1))
    y = F.conv2d(x, tg.tensor(w, device=device), stride=(2, 1))
    np.testing.assert_allclose(y.numpy(), expected)
    row = tg.tensor(rng.standard_normal((1, 1, 1, 6)), device=device)
    wide = F.broadcast_to(row, (2, 1, 4, 6))  # stride 0 along N and H
    expected = conv2d_loops(np.broadcast_to(row.numpy(), (2, 1, 4, 6)), w[:, :1])
    y = F.conv2d(wide, tg.tensor(w[:, :1], device=device))
    np.testing.assert_allclose(y.numpy(), expected)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"),
    [((2, 3), (1, 2), (1, 0)), ((3, 3), (2, 2), (1, 1)), ((1, 1), (1, 1), (0, 0))],
)
def test_im2col_matches_loops(kernel, stride, padding) -> None:
    x = np.random.default_rng(4).standard_normal((2, 2, 5, 4))
    cols = F.im2col(tg.tensor(x), kernel, stride, padding)
    np.testing.assert_array_equal(cols.numpy(), im2col_loops(x, kernel, stride, padding))


POOL_CASES = [
    # kernel, stride, padding
    ((2, 2), (2, 2), (0, 0)),
    ((3, 3), (2, 2), (1, 1)),
    ((2, 3), (1, 1), (1, 1)),
    ((3, 2), (1, 2), (0, 1)),
    ((2, 2), (1, 1), (0, 0)),  # overlapping windows
]


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_CASES)
def test_pooling_matches_loops(kernel, stride, padding, device) -> None:
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 6))
    got_max = F.max_pool2d(tg.tensor(x, device=device), kernel, stride, padding)
    got_avg = F.avg_pool2d(tg.tensor(x, device=device), kernel, stride, padding)
    np.testing.assert_array_equal(got_max.numpy(), pool_loops(x, kernel, stride, padding, np.max))
    np.testing.assert_allclose(
        got_avg.numpy(), pool_loops(x, kernel, stride, padding, np.mean), rtol=1e-12
    )


def test_pooling_stride_defaults_to_kernel() -> None:
    x = tg.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(F.max_pool2d(x, 2).numpy(), [[[[5.0, 7.0], [13.0, 15.0]]]])
    np.testing.assert_array_equal(F.avg_pool2d(x, 2).numpy(), [[[[2.5, 4.5], [10.5, 12.5]]]])


def test_max_pool_gradient_goes_to_the_maximum(device) -> None:
    x = tg.tensor(np.array([[[[1.0, 5.0], [3.0, 2.0]]]]), requires_grad=True, device=device)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 1.0], [0.0, 0.0]]]])


# ------------------------------------------------------------------------------ adjoints

ADJOINT_CASES = [
    pytest.param(k, s, p, hw, id=f"k{k}-s{s}-p{p}-in{hw}")
    for k, s, p, hw in itertools.product(
        [(1, 1), (2, 2), (3, 3), (2, 3), (4, 4)],
        [(1, 1), (2, 2), (3, 1)],
        [(0, 0), (1, 1), (0, 2)],
        [(5, 5), (6, 7)],
    )
    if hw[0] + 2 * p[0] >= k[0] and hw[1] + 2 * p[1] >= k[1]
]


def _output_padding(size, kernel, stride, padding):
    """The output_padding that makes conv_transpose2d give back ``size``."""
    return tuple((n + 2 * p - k) % s for n, k, s, p in zip(size, kernel, stride, padding))


@pytest.mark.parametrize(("kernel", "stride", "padding", "hw"), ADJOINT_CASES)
def test_conv_transpose2d_is_adjoint_of_conv2d(kernel, stride, padding, hw) -> None:
    rng = np.random.default_rng(6)
    x = tg.tensor(rng.standard_normal((2, 3, *hw)))
    w = tg.tensor(rng.standard_normal((4, 3, *kernel)))
    y = F.conv2d(x, w, stride=stride, padding=padding)
    g = tg.tensor(rng.standard_normal(y.shape))
    output_padding = _output_padding(hw, kernel, stride, padding)
    back = F.conv_transpose2d(g, w, None, stride, padding, output_padding)
    assert back.shape == x.shape
    np.testing.assert_allclose(
        np.vdot(y.numpy(), g.numpy()), np.vdot(x.numpy(), back.numpy()), rtol=1e-10
    )


@pytest.mark.parametrize(("kernel", "stride", "padding", "hw"), ADJOINT_CASES)
def test_col2im_is_adjoint_of_im2col(kernel, stride, padding, hw) -> None:
    rng = np.random.default_rng(7)
    shape = (2, 3, *hw)
    x = tg.tensor(rng.standard_normal(shape))
    cols = F.im2col(x, kernel, stride, padding)
    c = tg.tensor(rng.standard_normal(cols.shape))
    back = F.col2im(c, shape, kernel, stride, padding)
    assert back.shape == shape
    np.testing.assert_allclose(
        np.vdot(cols.numpy(), c.numpy()), np.vdot(x.numpy(), back.numpy()), rtol=1e-10
    )


# ------------------------------------------------------------------------------ errors


def test_conv_errors_name_the_shapes() -> None:
    x = tg.tensor(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\).*\(2, 4, 3, 3\)"):
        F.conv2d(x, tg.tensor(np.zeros((2, 4, 3, 3))))
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        F.conv_transpose2d(x, tg.tensor(np.zeros((4, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"\(3, 5, 5\).*\(2, 3, 3, 3\)"):
        F.conv2d(tg.tensor(np.zeros((3, 5, 5))), tg.tensor(np.zeros((2, 3, 3, 3))))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(x, tg.tensor(np.zeros((2, 3, 6, 6))))
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(x, tg.tensor(np.zeros((2, 3, 3, 3))), tg.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, tg.tensor(np.zeros((3, 2, 3, 3))), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="cols of shape"):
        F.col2im(tg.tensor(np.zeros((5, 4))), (1, 1, 3, 3), 2)
