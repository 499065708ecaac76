"""Every op, checked the same way from one table.

Each row names an op, the function under test, the shapes of its (float64) inputs and,
where a plain NumPy expression says what the op computes, that expression. Every row is
checked

* forward against its NumPy reference (when it has one; convolution and pooling have
  nested-loop references in test_conv.py),
* first order: reverse-mode gradients against central finite differences (gradcheck),
* second order: the gradient of the gradient against finite differences (gradgradcheck)
  when the row's ``second_order`` flag is set,
* on every device of the ``device`` fixture: forward and backward agree with NumPy.

Inputs are seeded standard normals passed through a per-input ``domain`` that keeps them
where the op is smooth: positive for log/sqrt/division, away from the kinks of
relu/abs/clip (a finite-difference step across a kink measures neither side's slope).

The WGAN-GP penalty of a small conv critic, batch_norm's running statistics and dropout's
mask, which a row cannot express, have their own tests at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import tinygan as tg
from tinygan import functional as F
from tinygan.tensor import Tensor

# Every test here runs twice: with the fast paths (tinygan.fast) and without them.
pytestmark = pytest.mark.usefixtures("fast_paths")

# ------------------------------------------------------------------------------ domains


def real(x: np.ndarray) -> np.ndarray:
    return x


def positive(x: np.ndarray) -> np.ndarray:
    """Strictly positive, at least 0.5 (log, sqrt, division, negative powers)."""
    return np.abs(x) + 0.5


def away_from(*points: float) -> Callable[[np.ndarray], np.ndarray]:
    """Move every value at least 0.1 away from each kink in ``points``."""

    def transform(x: np.ndarray) -> np.ndarray:
        for p in points:
            d = x - p
            x = np.where(np.abs(d) < 0.1, p + np.where(d < 0, -0.1, 0.1), x)
        return x

    transform.__name__ = f"away_from{points}"
    return transform


away_from_zero = away_from(0.0)


def const(like: Tensor, array: Any) -> Tensor:
    """A constant on ``like``'s device, in its dtype, so rows run on CPU and GPU alike."""
    return Tensor(like.xp.asarray(array, dtype=like.dtype))


# ------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Op:
    name: str
    fn: Callable[..., Tensor]
    shapes: tuple[tuple[int, ...], ...]
    ref: Callable[..., np.ndarray] | None = None  # the same op in plain NumPy
    domain: Any = real  # one transform for all inputs, or a tuple with one per input
    second_order: bool = True
    eps: float = 1e-6  # finite-difference step


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bn_ref(x, w=None, b=None, mean=None, var=None, eps=1e-5):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if mean is None:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if w is not None:
        y = y * w.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    return y


def _logsumexp_ref(x, axis=-1, keepdims=False):
    return np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))


def _upsample_loop(x, sh, sw):
    """Nearest upsampling as its definition, pixel by pixel: y[..., i, j] = x[..., i//sh, j//sw]."""
    h, w = x.shape[-2:]
    y = np.empty(x.shape[:-2] + (h * sh, w * sw))
    for i in range(h * sh):
        for j in range(w * sw):
            y[..., i, j] = x[..., i // sh, j // sw]
    return y


def _layer_norm_ref(x, k, w=None, b=None, eps=1e-5):
    """Standardise over the last k axes with NumPy's mean and (biased) var."""
    axes = tuple(range(x.ndim - k, x.ndim))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    return y * (1.0 if w is None else w) + (0.0 if b is None else b)


def _bce_ref(x, y):
    """Binary cross-entropy as its definition, from probabilities (fine at these scales)."""
    p = _sigmoid(x)
    return -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def probability(x: np.ndarray) -> np.ndarray:
    """Into (0, 1): targets of binary cross-entropy."""
    return _sigmoid(x)


ROWS = [2, 0, 2, 2, 1]  # repeated integer indices: their gradients must add up
COLS = [3, 3, 0, 1, 3]
TARGETS = [3, 0, 3, 1, 2]  # class indices for cross_entropy; class 3 twice
MASK = [[True, False, True, True], [False, False, True, False], [True, True, False, True]]
EMBEDDING_INDICES = np.array([[4, 0], [4, 2], [1, 4]])  # row 4 three times: gradients add
RUNNING_MEAN = [0.3, -0.2, 0.1]
RUNNING_VAR = [1.5, 0.7, 2.0]

OPS = [
    # ---- binary arithmetic, with broadcasting and Python/NumPy scalars
    Op("add", lambda a, b: a + b, ((3, 4), (3, 4)), np.add),
    Op("add_broadcast_row", lambda a, b: a + b, ((2, 3, 4), (4,)), np.add),
    Op("add_broadcast_both", lambda a, b: a + b, ((2, 1, 4), (3, 1)), np.add),
    Op("add_0d", lambda a, b: a + b, ((), (2, 3)), np.add),
    Op("add_scalar", lambda x: x + np.float64(1.5), ((2, 3),), lambda x: x + 1.5),
    Op("sub_broadcast", lambda a, b: a - b, ((2, 3), (2, 1)), np.subtract),
    Op("rsub_scalar", lambda x: 3.0 - x, ((2, 3),), lambda x: 3.0 - x),
    Op("mul", lambda a, b: a * b, ((3, 4), (3, 4)), np.multiply),
    Op("mul_broadcast", lambda a, b: a * b, ((2, 3, 4), (3, 1)), np.multiply),
    Op("mul_broadcast_lead", lambda a, b: F.mul(a, b), ((4,), (2, 4)), np.multiply),
    Op("mul_scalar", lambda x: 2.5 * x, ((2, 3),), lambda x: 2.5 * x),
    Op("div", lambda a, b: a / b, ((2, 3), (2, 3)), np.divide, (real, positive)),
    Op("div_broadcast", lambda a, b: a / b, ((2, 3, 1), (3, 4)), np.divide, (real, positive)),
    Op("rdiv_scalar", lambda x: 2.0 / x, ((2, 3),), lambda x: 2.0 / x, positive),
    Op("pow_2", lambda x: x**2, ((2, 3),), lambda x: x**2),
    Op("pow_3", lambda x: x**3, ((2, 3),), lambda x: x**3),
    Op("pow_half", lambda x: x**0.5, ((2, 3),), np.sqrt, positive),
    Op("pow_neg", lambda x: F.pow(x, -1.5), ((2, 3),), lambda x: x**-1.5, positive),
    Op("pow_tensor", lambda a, b: a**b, ((2, 3), (2, 3)), np.power, (positive, real)),
    Op("pow_tensor_broadcast", lambda a, b: a**b, ((2, 3), (3,)), np.power, (positive, real)),
    Op("rpow_scalar", lambda x: 2.0**x, ((2, 3),), lambda x: 2.0**x),
    # ---- unary math
    Op("neg", lambda x: -x, ((2, 3),), np.negative),
    Op("exp", F.exp, ((2, 3),), np.exp),
    Op("log", F.log, ((2, 3),), np.log, positive),
    Op("sqrt", F.sqrt, ((2, 3),), np.sqrt, positive),
    Op("abs", F.abs, ((3, 4),), np.abs, away_from_zero),
    Op(
        "clip",
        lambda x: F.clip(x, -0.5, 0.5),
        ((4, 5),),
        lambda x: np.clip(x, -0.5, 0.5),
        away_from(-0.5, 0.5),
    ),
    Op(
        "clip_min",
        lambda x: x.clip(min=-0.3),
        ((4, 5),),
        lambda x: np.maximum(x, -0.3),
        away_from(-0.3),
    ),
    Op(
        "clip_max",
        lambda x: x.clip(max=0.2),
        ((4, 5),),
        lambda x: np.minimum(x, 0.2),
        away_from(0.2),
    ),
    # ---- matrix products
    Op("matmul", lambda a, b: a @ b, ((3, 4), (4, 2)), np.matmul),
    Op("matmul_batched", lambda a, b: a @ b, ((2, 3, 4), (2, 4, 5)), np.matmul),
    Op("matmul_broadcast_left", F.matmul, ((3, 4), (2, 4, 5)), np.matmul),
    Op("matmul_broadcast_both", F.matmul, ((2, 1, 3, 4), (3, 4, 2)), np.matmul),
    # ---- indexing
    Op("getitem_slices", lambda x: x[1:, ::2], ((3, 4),), lambda x: x[1:, ::2]),
    Op("getitem_int_negstep", lambda x: x[::-1, 1], ((3, 4),), lambda x: x[::-1, 1]),
    Op(
        "getitem_none_ellipsis",
        lambda x: x[None, ..., -1],
        ((2, 3, 4),),
        lambda x: x[None, ..., -1],
    ),
    Op("getitem_int_array_repeated", lambda x: x[ROWS], ((3, 4),), lambda x: x[ROWS]),
    Op("getitem_int_arrays_pairs", lambda x: x[ROWS, COLS], ((3, 4),), lambda x: x[ROWS, COLS]),
    Op("getitem_slice_and_array", lambda x: x[:, COLS], ((3, 4),), lambda x: x[:, COLS]),
    Op("getitem_bool_mask", lambda x: x[MASK], ((3, 4),), lambda x: x[np.array(MASK)]),
    Op(
        "getitem_bool_mask_rows",
        lambda x: x[[True, False, True]],
        ((3, 2, 2),),
        lambda x: x[np.array([True, False, True])],
    ),
    # ---- shapes
    Op("reshape", lambda x: x.reshape(4, -1), ((2, 3, 4),), lambda x: x.reshape(4, -1)),
    Op("reshape_tuple", lambda x: F.reshape(x, (2, 1, 3)), ((6,),), lambda x: x.reshape(2, 1, 3)),
    Op("transpose_2d", lambda x: x.T, ((3, 4),), lambda x: x.T),
    Op(
        "transpose_axes",
        lambda x: x.transpose(2, 0, 1),
        ((2, 3, 4),),
        lambda x: x.transpose(2, 0, 1),
    ),
    Op(
        "permute",
        lambda x: x.permute((1, 3, 0, 2)),
        ((2, 3, 1, 2),),
        lambda x: x.transpose(1, 3, 0, 2),
    ),
    Op(
        "broadcast_to",
        lambda x: F.broadcast_to(x, (2, 3, 4)),
        ((3, 1),),
        lambda x: np.broadcast_to(x, (2, 3, 4)),
    ),
    Op(
        "sum_to",
        lambda x: F.sum_to(x, (3, 1)),
        ((2, 3, 4),),
        lambda x: x.sum(axis=0).sum(axis=1, keepdims=True),
    ),
    Op(
        "concat",
        lambda a, b, c: F.concat([a, b, c], axis=0),
        ((2, 3), (1, 3), (3, 3)),
        lambda a, b, c: np.concatenate([a, b, c], axis=0),
    ),
    Op(
        "concat_last_axis",
        lambda a, b: F.concat([a, b], axis=-1),
        ((2, 2, 3), (2, 2, 1)),
        lambda a, b: np.concatenate([a, b], axis=-1),
    ),
    Op("stack", lambda a, b: F.stack([a, b]), ((2, 3), (2, 3)), lambda a, b: np.stack([a, b])),
    Op(
        "stack_axis_2",
        lambda a, b, c: F.stack([a, b, c], axis=2),
        ((2, 3), (2, 3), (2, 3)),
        lambda a, b, c: np.stack([a, b, c], axis=2),
    ),
    Op("view", lambda x: x.view(4, -1), ((2, 3, 4),), lambda x: x.reshape(4, -1)),
    Op("view_flat", lambda x: F.view(x, -1), ((2, 1, 3),), lambda x: x.reshape(-1)),
    Op(
        "upsample_nearest_x2",
        lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
        ((2, 3, 2, 3),),
        lambda x: _upsample_loop(x, 2, 2),
    ),
    Op(
        "interpolate_size_x2x3",
        lambda x: F.interpolate(x, size=(4, 9)),
        ((1, 2, 2, 3),),
        lambda x: _upsample_loop(x, 2, 3),
    ),
    Op(
        "upsample_nearest_3x1_3d",
        lambda x: F.upsample_nearest(x, (3, 1)),
        ((2, 2, 3),),
        lambda x: _upsample_loop(x, 3, 1),
    ),
    Op(
        "pad2d",
        lambda x: F.pad2d(x, (1, 2), value=0.5),
        ((1, 2, 2, 3),),
        lambda x: np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)), constant_values=0.5),
    ),
    Op(
        "cast_roundtrip",
        lambda x: F.cast(F.cast(x, np.float32), np.float64),
        ((2, 3),),
        lambda x: x.astype(np.float32).astype(np.float64),
        # Linear, so a large step adds no truncation error, and keeps float32 rounding
        # (1e-7 relative) small against the step. Its second derivative is 0 either way.
        second_order=False,
        eps=1e-2,
    ),
    # ---- reductions
    Op("sum_all", lambda x: x.sum(), ((2, 3, 4),), np.sum),
    Op("sum_axis", lambda x: x.sum(axis=1), ((2, 3, 4),), lambda x: x.sum(axis=1)),
    Op(
        "sum_axes_keepdims",
        lambda x: x.sum(axis=(0, 2), keepdims=True),
        ((2, 3, 4),),
        lambda x: x.sum(axis=(0, 2), keepdims=True),
    ),
    Op(
        "sum_neg_axis_keepdims",
        lambda x: F.sum(x, -1, keepdims=True),
        ((2, 3),),
        lambda x: x.sum(axis=-1, keepdims=True),
    ),
    Op("mean_all", lambda x: x.mean(), ((2, 3, 4),), np.mean),
    Op("mean_axis", lambda x: x.mean(axis=0), ((2, 3, 4),), lambda x: x.mean(axis=0)),
    Op(
        "mean_axes_keepdims",
        lambda x: x.mean(axis=(1, 2), keepdims=True),
        ((2, 3, 4),),
        lambda x: x.mean(axis=(1, 2), keepdims=True),
    ),
    Op("max_all", lambda x: x.max(), ((2, 3, 4),), np.max),
    Op("max_axis", lambda x: x.max(axis=1), ((2, 3, 4),), lambda x: x.max(axis=1)),
    Op(
        "max_axes_keepdims",
        lambda x: x.max(axis=(0, 2), keepdims=True),
        ((2, 3, 4),),
        lambda x: x.max(axis=(0, 2), keepdims=True),
    ),
    Op("max_neg_axis", lambda x: F.max(x, -1), ((3, 5),), lambda x: x.max(axis=-1)),
    # ---- activations
    Op("relu", F.relu, ((3, 4),), lambda x: np.maximum(x, 0.0), away_from_zero),
    Op(
        "leaky_relu",
        lambda x: F.leaky_relu(x, 0.2),
        ((3, 4),),
        lambda x: np.where(x > 0, x, 0.2 * x),
        away_from_zero,
    ),
    Op(  # a slope outside [0, 1] takes the mask path instead of maximum(x, a*x)
        "leaky_relu_steep",
        lambda x: F.leaky_relu(x, -1.5),
        ((3, 4),),
        lambda x: np.where(x > 0, x, -1.5 * x),
        away_from_zero,
    ),
    Op(
        "leaky_relu_default",
        F.leaky_relu,
        ((3, 4),),
        lambda x: np.where(x > 0, x, 0.01 * x),
        away_from_zero,
    ),
    Op("sigmoid", F.sigmoid, ((3, 4),), _sigmoid),
    Op("tanh", F.tanh, ((3, 4),), np.tanh),
    Op("softplus", F.softplus, ((3, 4),), lambda x: np.log1p(np.exp(x))),
    Op(
        "softplus_wide",
        lambda x: F.softplus(x * 8.0),
        ((3, 4),),
        lambda x: np.log1p(np.exp(8.0 * x)),
    ),
    # ---- log-sum-exp, softmax, cross-entropy (naive NumPy references: fine at these scales)
    Op("logsumexp", F.logsumexp, ((3, 5),), _logsumexp_ref),
    Op(
        "logsumexp_axes_keepdims",
        lambda x: F.logsumexp(x, (0, 2), keepdims=True),
        ((2, 3, 4),),
        lambda x: _logsumexp_ref(x, (0, 2), keepdims=True),
    ),
    Op(
        "logsumexp_all",
        lambda x: F.logsumexp(x, None),
        ((2, 3),),
        lambda x: _logsumexp_ref(x, None),
    ),
    Op(  # spread logits: the max shift is what keeps exp in range
        "logsumexp_wide",
        lambda x: F.logsumexp(x * 40.0, 1),
        ((3, 4),),
        lambda x: _logsumexp_ref(40.0 * x, 1),
    ),
    Op(
        "log_softmax",
        F.log_softmax,
        ((3, 5),),
        lambda x: x - _logsumexp_ref(x, -1, keepdims=True),
    ),
    Op(
        "log_softmax_axis0",
        lambda x: F.log_softmax(x, axis=0),
        ((4, 3),),
        lambda x: x - _logsumexp_ref(x, 0, keepdims=True),
    ),
    Op("softmax", F.softmax, ((3, 5),), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    Op(
        "cross_entropy",
        lambda x: F.cross_entropy(x, TARGETS),
        ((5, 4),),
        lambda x: np.mean(_logsumexp_ref(x, 1) - x[np.arange(5), TARGETS]),
    ),
    # ---- layers
    Op("linear", F.linear, ((4, 3), (2, 3), (2,)), lambda x, w, b: x @ w.T + b),
    Op("linear_no_bias", F.linear, ((4, 3), (2, 3)), lambda x, w: x @ w.T),
    Op("linear_batched", F.linear, ((2, 4, 3), (2, 3), (2,)), lambda x, w, b: x @ w.T + b),
    Op(
        "batch_norm_train_1d",
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        ((5, 3), (3,), (3,)),
        _bn_ref,
    ),
    Op(
        "batch_norm_train_2d",
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        ((3, 2, 2, 3), (2,), (2,)),
        _bn_ref,
    ),
    Op(
        "batch_norm_train_no_affine",
        lambda x: F.batch_norm(x, None, None, training=True),
        ((4, 3),),
        _bn_ref,
    ),
    Op(
        "batch_norm_eval",
        lambda x, w, b: F.batch_norm(x, const(x, RUNNING_MEAN), const(x, RUNNING_VAR), w, b),
        ((2, 3, 2, 2), (3,), (3,)),
        lambda x, w, b: _bn_ref(x, w, b, np.array(RUNNING_MEAN), np.array(RUNNING_VAR)),
    ),
    Op(
        "layer_norm_last_axis",
        lambda x: F.layer_norm(x, 4),
        ((3, 4),),
        lambda x: _layer_norm_ref(x, 1),
    ),
    Op(
        "layer_norm_chw_affine",
        lambda x, w, b: F.layer_norm(x, (3, 2, 2), w, b),
        ((2, 3, 2, 2), (3, 2, 2), (3, 2, 2)),
        lambda x, w, b: _layer_norm_ref(x, 3, w, b),
    ),
    Op(
        "layer_norm_two_axes_weight",
        lambda x, w: F.layer_norm(x, (2, 3), w, eps=0.1),
        ((2, 2, 3), (2, 3)),
        lambda x, w: _layer_norm_ref(x, 2, w, eps=0.1),
    ),
    Op(
        "embedding",
        lambda w: F.embedding(EMBEDDING_INDICES, w),
        ((5, 3),),
        lambda w: w[EMBEDDING_INDICES],
    ),
    # ---- PyTorch's losses, composed from ops
    Op("mse_loss", F.mse_loss, ((3, 4), (3, 4)), lambda x, y: np.mean((x - y) ** 2)),
    Op(
        "mse_loss_sum",
        lambda x, y: F.mse_loss(x, y, reduction="sum"),
        ((2, 3), (2, 3)),
        lambda x, y: np.sum((x - y) ** 2),
    ),
    Op(
        "mse_loss_none",
        lambda x, y: F.mse_loss(x, y, reduction="none"),
        ((2, 3), (2, 3)),
        lambda x, y: (x - y) ** 2,
    ),
    Op(
        "bce_with_logits",
        F.binary_cross_entropy_with_logits,
        ((3, 4), (3, 4)),
        lambda x, y: np.mean(_bce_ref(x, y)),
        (real, probability),
    ),
    Op(
        "bce_with_logits_weight_sum",
        lambda x, y, w: F.binary_cross_entropy_with_logits(x, y, w, reduction="sum"),
        ((3, 4), (3, 4), (4,)),
        lambda x, y, w: np.sum(_bce_ref(x, y) * w),
        (real, probability, real),
    ),
    Op(
        "bce_with_logits_none_wide",
        lambda x, y: F.binary_cross_entropy_with_logits(x * 8.0, y, reduction="none"),
        ((2, 3), (2, 3)),
        lambda x, y: _bce_ref(8.0 * x, y),
        (real, probability),
    ),
    # ---- convolution and its pieces (forward references: test_conv.py)
    Op("conv2d_k3_s1_p0_bias", F.conv2d, ((2, 2, 5, 5), (3, 2, 3, 3), (3,))),
    Op(
        "conv2d_k3_s2_p1",
        lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        ((1, 2, 6, 6), (2, 2, 3, 3)),
    ),
    Op(
        "conv2d_k2x3_s2x1_p1x0_bias",
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0)),
        ((2, 1, 5, 6), (2, 1, 2, 3), (2,)),
    ),
    Op("conv2d_k1", F.conv2d, ((2, 3, 3, 3), (2, 3, 1, 1))),
    Op(
        "conv2d_k4_s2_p1_bias",
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
        ((1, 1, 6, 6), (2, 1, 4, 4), (2,)),
    ),
    Op(
        "conv2d_k2_s3_leftover", lambda x, w: F.conv2d(x, w, stride=3), ((1, 2, 7, 7), (2, 2, 2, 2))
    ),
    Op("conv_transpose2d_k3_s1_p0_bias", F.conv_transpose2d, ((2, 2, 3, 3), (2, 3, 3, 3), (3,))),
    Op(
        "conv_transpose2d_k4_s2_p1_bias",
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1),
        ((1, 3, 3, 3), (3, 2, 4, 4), (2,)),
    ),
    Op(
        "conv_transpose2d_k3_s2_p1_op1",
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
        ((2, 2, 3, 3), (2, 2, 3, 3)),
    ),
    Op(
        "conv_transpose2d_k2x3_s2x1_p0x1_op1x0",
        lambda x, w, b: F.conv_transpose2d(x, w, b, (2, 1), (0, 1), (1, 0)),
        ((1, 2, 3, 4), (2, 2, 2, 3), (2,)),
    ),
    Op(
        "conv_transpose2d_k3_s3_p1_op2",
        lambda x, w: F.conv_transpose2d(x, w, stride=3, padding=1, output_padding=2),
        ((1, 1, 3, 3), (1, 2, 3, 3)),
    ),
    Op("im2col_k2x3_s1x2_p1x0", lambda x: F.im2col(x, (2, 3), (1, 2), (1, 0)), ((2, 2, 4, 5),)),
    Op("im2col_k3_s2_p1", lambda x: F.im2col(x, 3, 2, 1), ((1, 2, 5, 5),)),
    Op(
        "col2im_k2x3_s1x2_p1x0",
        lambda c: F.col2im(c, (2, 2, 4, 5), (2, 3), (1, 2), (1, 0)),
        ((20, 12),),
    ),
    Op("col2im_k3_s2_p1", lambda c: F.col2im(c, (1, 2, 5, 5), 3, 2, 1), ((9, 18),)),
    # ---- pooling
    Op("max_pool2d_k2", lambda x: F.max_pool2d(x, 2), ((2, 2, 4, 4),)),
    Op("max_pool2d_k3_s2_p1", lambda x: F.max_pool2d(x, 3, 2, 1), ((1, 2, 5, 5),)),
    Op("max_pool2d_k2x3_s1_p1", lambda x: F.max_pool2d(x, (2, 3), 1, 1), ((1, 1, 3, 4),)),
    Op("avg_pool2d_k2", lambda x: F.avg_pool2d(x, 2), ((2, 2, 4, 4),)),
    Op("avg_pool2d_k3_s2_p1", lambda x: F.avg_pool2d(x, 3, 2, 1), ((1, 2, 5, 5),)),
    Op("avg_pool2d_k2x3_s1_p1", lambda x: F.avg_pool2d(x, (2, 3), 1, 1), ((1, 1, 3, 4),)),
]

ALL = [pytest.param(op, id=op.name) for op in OPS]
WITH_REF = [pytest.param(op, id=op.name) for op in OPS if op.ref is not None]
SECOND_ORDER = [pytest.param(op, id=op.name) for op in OPS if op.second_order]


def test_table_names_are_unique() -> None:
    names = [op.name for op in OPS]
    assert len(names) == len(set(names))


def make_arrays(op: Op, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    domains = op.domain if isinstance(op.domain, tuple) else (op.domain,) * len(op.shapes)
    assert len(domains) == len(op.shapes), op.name
    return [domain(rng.standard_normal(shape)) for domain, shape in zip(domains, op.shapes)]


def make_inputs(op: Op, seed: int = 0) -> list[Tensor]:
    return [tg.tensor(a, requires_grad=True) for a in make_arrays(op, seed)]


# ------------------------------------------------------------------------------ checks


@pytest.mark.parametrize("op", WITH_REF)
def test_forward_matches_numpy(op: Op) -> None:
    arrays = make_arrays(op)
    out = op.fn(*[tg.tensor(a) for a in arrays])
    expected = np.asarray(op.ref(*arrays))
    assert out.dtype == np.float64
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ALL)
def test_gradient(op: Op) -> None:
    inputs = make_inputs(op)
    before = [t.numpy() for t in inputs]
    assert tg.gradcheck(op.fn, inputs, eps=op.eps)
    for t, b in zip(inputs, before):  # gradcheck perturbs in place and must restore
        np.testing.assert_array_equal(t.numpy(), b)


@pytest.mark.parametrize("op", SECOND_ORDER)
def test_second_order_gradient(op: Op) -> None:
    assert tg.gradgradcheck(op.fn, make_inputs(op, seed=1), eps=op.eps)


@pytest.mark.parametrize("op", ALL)
def test_forward_and_backward_on_device(op: Op, device: str) -> None:
    arrays = make_arrays(op)

    def run(where: str | None) -> tuple[Tensor, list[Tensor]]:
        """Forward and backward with the inputs on ``where`` (None: plain NumPy)."""
        inputs = []
        for a in arrays:
            t = tg.tensor(a)
            if where is not None:
                t = t.to(where)
            t.requires_grad = True
            inputs.append(t)
        out = op.fn(*inputs)
        g = tg.tensor(np.random.default_rng(3).standard_normal(out.shape))
        out.backward(g if where is None else g.to(where))
        return out, [t.grad for t in inputs]

    ref_out, ref_grads = run(None)
    out, grads = run(device)
    assert out.device.split(":")[0] == device
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), ref_out.numpy(), rtol=1e-10, atol=1e-12)
    for g, ref in zip(grads, ref_grads):
        assert g.device.split(":")[0] == device
        np.testing.assert_allclose(g.numpy(), ref.numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ WGAN-GP


def _critic(x: Tensor, w1, b1, w2, b2, w3, b3) -> Tensor:
    """conv2d -> leaky_relu -> conv2d -> flatten -> linear: (N, 1, 6, 6) -> (N, 1)."""
    h = F.leaky_relu(F.conv2d(x, w1, b1, stride=2, padding=1), 0.2)  # (N, 3, 3, 3)
    h = F.conv2d(h, w2, b2)  # (N, 4, 2, 2)
    return F.linear(h.reshape(x.shape[0], -1), w3, b3)  # (N, 1)


CRITIC_SHAPES = ((3, 1, 3, 3), (3,), (4, 3, 2, 2), (4,), (1, 16), (1,))


def _penalty(x: Tensor, *params: Tensor) -> Tensor:
    """mean over the batch of (||grad_x f(x)||_2 - 1)^2.

    grad_x needs a graph even where the caller records none (gradcheck's finite
    differences run under no_grad), hence enable_grad.
    """
    with tg.enable_grad():
        (gx,) = tg.grad(_critic(x, *params).sum(), [x], create_graph=True)
    norms = (gx * gx).sum(axis=(1, 2, 3)).sqrt()
    return ((norms - 1.0) ** 2).mean()


def test_gradient_penalty_of_conv_critic_wrt_parameters() -> None:
    rng = np.random.default_rng(4)
    x = tg.tensor(rng.standard_normal((2, 1, 6, 6)), requires_grad=True)
    params = [tg.tensor(rng.standard_normal(s) * 0.5, requires_grad=True) for s in CRITIC_SHAPES]
    assert tg.gradcheck(lambda *ps: _penalty(x, *ps), params)
    # The penalty's gradient w.r.t. the weights is a second derivative of the critic and is
    # non-zero, so the check above has something to find. grad_x f(x) does not depend on
    # the biases (leaky_relu is piecewise linear): they are not in the penalty's graph.
    grads = tg.grad(_penalty(x, *params), params, allow_unused=True)
    for g in grads[0::2]:
        assert np.abs(g.numpy()).max() > 1e-3
    assert grads[1::2] == (None, None, None)


def test_critic_second_order_wrt_input_and_parameters() -> None:
    rng = np.random.default_rng(5)
    x = tg.tensor(rng.standard_normal((2, 1, 6, 6)), requires_grad=True)
    params = [tg.tensor(rng.standard_normal(s) * 0.5, requires_grad=True) for s in CRITIC_SHAPES]
    assert tg.gradgradcheck(_critic, [x, *params])


# ------------------------------------------------------------------------------ batch_norm


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 5)])
def test_batch_norm_training_updates_running_stats(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape) * 2.0 + 0.5
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    m = x.size // shape[1]
    mean0, var0 = rng.standard_normal(3), rng.random(3) + 0.5
    running_mean, running_var = tg.tensor(mean0), tg.tensor(var0)
    w, b = tg.tensor(rng.standard_normal(3)), tg.tensor(rng.standard_normal(3))

    y = F.batch_norm(tg.tensor(x), running_mean, running_var, w, b, training=True, momentum=0.3)

    np.testing.assert_allclose(y.numpy(), _bn_ref(x, w.numpy(), b.numpy()), rtol=1e-12)
    batch_mean = x.mean(axis=axes)
    unbiased_var = x.var(axis=axes) * m / (m - 1)
    np.testing.assert_allclose(running_mean.numpy(), 0.7 * mean0 + 0.3 * batch_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var.numpy(), 0.7 * var0 + 0.3 * unbiased_var, rtol=1e-12)
    np.testing.assert_allclose(unbiased_var, x.var(axis=axes, ddof=1), rtol=1e-12)


def test_batch_norm_default_momentum_and_eval_uses_running_stats() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 2)) + 3.0
    running_mean, running_var = tg.tensor(np.zeros(2)), tg.tensor(np.ones(2))
    F.batch_norm(tg.tensor(x), running_mean, running_var, training=True)
    expected_mean = 0.1 * x.mean(axis=0)
    expected_var = 0.9 + 0.1 * x.var(axis=0, ddof=1)
    np.testing.assert_allclose(running_mean.numpy(), expected_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var.numpy(), expected_var, rtol=1e-12)

    x2 = rng.standard_normal((3, 2))
    y = F.batch_norm(tg.tensor(x2), running_mean, running_var, training=False)
    np.testing.assert_allclose(
        y.numpy(), (x2 - expected_mean) / np.sqrt(expected_var + 1e-5), rtol=1e-12
    )
    # Evaluation leaves the running statistics alone.
    np.testing.assert_allclose(running_mean.numpy(), expected_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var.numpy(), expected_var, rtol=1e-12)


def test_batch_norm_rejects_bad_shapes() -> None:
    x = tg.tensor(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        F.batch_norm(x, tg.tensor(np.zeros(2)), tg.tensor(np.ones(3)), training=True)
    with pytest.raises(ValueError, match="more than one value"):
        F.batch_norm(tg.tensor(np.ones((1, 3))), None, None, training=True)


# ------------------------------------------------------------------------------ dropout


def test_dropout_mask_statistics_and_scaling() -> None:
    p = 0.3
    x = tg.tensor(np.random.default_rng(8).random((200, 500)) + 1.0, dtype=np.float32)
    y = F.dropout(x, p, generator=np.random.default_rng(9)).numpy()
    dropped = y == 0.0
    assert abs(dropped.mean() - p) < 0.01  # binomial std over 1e5 draws is 0.0015
    np.testing.assert_allclose(y[~dropped], x.numpy()[~dropped] / (1.0 - p), rtol=1e-6)
    assert y.dtype == np.float32


def test_dropout_gradient_is_mask_over_keep_probability() -> None:
    p = 0.4
    x = tg.tensor(np.random.default_rng(10).standard_normal((50, 40)), requires_grad=True)
    y = F.dropout(x, p, generator=np.random.default_rng(11))
    y.sum().backward()
    mask = (y.numpy() != 0.0).astype(np.float64)
    np.testing.assert_allclose(x.grad.numpy(), mask / (1.0 - p), rtol=1e-12)
    # With the same generator seed the mask is the same, so finite differences apply.
    small = tg.tensor(np.random.default_rng(12).standard_normal((3, 4)), requires_grad=True)
    assert tg.gradcheck(lambda t: F.dropout(t, p, generator=np.random.default_rng(13)), [small])


def test_dropout_eval_is_identity_and_edge_probabilities() -> None:
    x = tg.tensor(np.random.default_rng(14).standard_normal((4, 5)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((4, 5)))
    same = [F.dropout(x, 0.5, generator=np.random.default_rng(15)).numpy() for _ in range(2)]
    np.testing.assert_array_equal(*same)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout"):
            F.dropout(x, bad)


def test_getitem_with_tensor_index() -> None:
    x = tg.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    y = x[tg.tensor([2, 0, 2])]
    np.testing.assert_array_equal(y.numpy(), x.numpy()[[2, 0, 2]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.array([[1.0] * 4, [0.0] * 4, [2.0] * 4]))


# ------------------------------------------------------- log-sum-exp at extreme logits


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_and_log_softmax_are_exact_at_extreme_logits(dtype: str) -> None:
    x = tg.tensor([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], dtype=dtype)
    x.requires_grad = True
    lse = F.logsumexp(x, axis=1)
    assert lse.dtype == dtype
    np.testing.assert_allclose(lse.numpy(), [1000.0, -1000.0 + np.log(3.0)], rtol=1e-6)
    log_p = F.log_softmax(x, axis=1)
    expected = [[0.0, -2000.0, -1000.0], [-np.log(3.0)] * 3]
    np.testing.assert_allclose(log_p.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(F.softmax(x).numpy(), [[1, 0, 0], [1 / 3] * 3], rtol=1e-6)
    # The gradient of logsumexp is the softmax, exp(x - y); in float32 it inherits the
    # rounding of y (999 is stored to within 3e-5), as PyTorch's does. Second derivatives
    # stay finite too.
    (g,) = tg.grad(lse.sum(), [x], create_graph=True)
    rtol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(g.numpy(), [[1, 0, 0], [1 / 3] * 3], rtol=rtol)
    (gg,) = tg.grad((g * g).sum(), [x])
    assert np.all(np.isfinite(gg.numpy()))
    (g_log_p,) = tg.grad((log_p * log_p).sum(), [x])
    assert np.all(np.isfinite(g_log_p.numpy()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_at_extreme_logits(dtype: str) -> None:
    logits = tg.tensor([[1000.0, -1000.0], [1000.0, -1000.0]], dtype=dtype, requires_grad=True)
    right = F.cross_entropy(logits, [0, 0])  # confident and right: loss 0, gradient 0
    assert right.dtype == dtype and right.item() == 0.0
    (g,) = tg.grad(right, [logits])
    np.testing.assert_array_equal(g.numpy(), np.zeros((2, 2)))
    wrong = F.cross_entropy(logits, np.array([1, 0]))  # one confidently wrong: 2000 / 2
    assert wrong.item() == pytest.approx(1000.0)
    (g,) = tg.grad(wrong, [logits])  # (softmax - one-hot) / N
    np.testing.assert_allclose(g.numpy(), [[0.5, -0.5], [0.0, 0.0]])


def test_cross_entropy_rejects_bad_targets() -> None:
    logits = tg.tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"0\.\.3"):
        F.cross_entropy(logits, [0, 4, 1])
    with pytest.raises(ValueError, match=r"0\.\.3"):
        F.cross_entropy(logits, [0, -1, 1])
    with pytest.raises(ValueError, match="expected 3 targets"):
        F.cross_entropy(logits, [0, 1])
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="integer array"):
        F.cross_entropy(logits, tg.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        F.cross_entropy(tg.tensor(np.zeros(4)), [0])
    with pytest.raises(ValueError, match="empty"):
        F.logsumexp(tg.tensor(np.zeros((2, 0))))
