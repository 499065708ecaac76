"""Differentiable augmentation (DiffAugment; Zhao et al., 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

Why augment, and why both sides
-------------------------------
With little data a discriminator memorises the real images: D(x) goes to its real target on
the training set, D's loss to 0, and the gradient it gives G stops saying anything useful.
Augmenting the real images alone does not help: D then learns that shifted, cut-out images
are real, and G learns to draw shifted, cut-out images. DiffAugment applies one random
transform T to *every* image D sees, real and fake alike::

    D's loss:  L_D(D(T(x)), D(T(G(z))))
    G's loss:  L_G(D(T(G(z))))           # G's loss must see the augmented fakes too

so D compares the distributions of T(x) and T(G(z)), which match exactly when those of x
and G(z) do (T does not depend on the image's source). For G to learn through D(T(G(z))),
T must be differentiable in its input: every transform below is built from tinygan's
differentiable ops, with the random draws as constants, so dL/dG(z) = T^T dL/dT(G(z)).
Because the backward passes of those ops are themselves tinygan ops, every order of
gradient is right too: an R1 or WGAN-GP penalty that differentiates D(T(x)) with respect to
x, and then the penalty with respect to D's weights, gets the exact second derivative.

The transforms (x: (N, C, H, W), images in [-1, 1]; every draw is one per sample n)
----------------------------------------------------------------------------------
``translation``  shift the image by whole pixels (t_n, s_n), t_n uniform in {-a..a},
    s_n in {-b..b}, a = int(H * 1/8 + 0.5), b = int(W * 1/8 + 0.5); pixels shifted in from
    outside are 0 (zero padding)::

        y[n, c, i, j] = x[n, c, i + t_n, j + s_n]   (0 where i + t_n or j + s_n is outside)

    Composed as ``pad2d`` by (a, b), then ``getitem`` with integer index arrays, whose
    backward is ``scatter_add`` (and the backward of that is ``getitem`` again).
``cutout``  zero a square of side k = int(H / 2 + 0.5) by l = int(W / 2 + 0.5) at a random
    centre (r_n, q_n), r_n uniform in {0..H - 1 + [k even]}, q_n likewise, clipped at the
    borders::

        y = x * m,   m[n, 0, i, j] = 0 if r_n - k//2 <= i < r_n - k//2 + k and
                                          q_n - l//2 <= j < q_n - l//2 + l, else 1

    ``mul`` by a constant mask: dL/dx = m * dL/dy.
``color``  three transforms, in this order (colour images only, C > 1), u_n ~ U(0, 1):

    brightness  y = x + (u_n - 1/2)
    saturation  y = (x - mean_C x) * 2 u_n + mean_C x           (mean over the channels)
    contrast    y = (x - mean_CHW x) * (u_n + 1/2) + mean_CHW x  (mean over C, H and W)

    each composed from ``add``, ``sub``, ``mul`` and ``mean``; the gradient flows through
    the means as well.

Each transform is the reference code's (``DiffAugment_pytorch.py`` of the paper's
repository), with the same ranges and order; only the random numbers differ. They are drawn
on the CPU from the NumPy Generator passed in (the training loop passes a named stream, so
a resumed run draws the same augmentations) and moved to x's device, so the same generator
state gives the same augmentation on every device.

Example::

    import numpy as np
    from tinygan.augment import diff_augment

    augment_rng = np.random.default_rng([seed, AUGMENT_STREAM])   # a named stream
    real_scores = D(diff_augment(real, "translation,cutout", augment_rng))
    fake_scores = D(diff_augment(fake, "translation,cutout", augment_rng))
    ...
    g_loss = losses.lsgan_g_loss(D(diff_augment(G(z), "translation,cutout", augment_rng)))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tinygan import ops
from tinygan.tensor import Tensor

# ------------------------------------------------------------------------------ checks


def _check_images(x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expects a Tensor of images, got {type(x).__name__}")
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(
            f"{what}: expects images of shape (N, C, H, W) with every size >= 1, "
            f"got shape {x.shape}"
        )


def _check_rng(rng: np.random.Generator, what: str) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{what}: rng must be a numpy.random.Generator (a named stream, such as "
            f"np.random.default_rng([seed, stream])), got {type(rng).__name__}"
        )


def _check_colour(x: Tensor, what: str) -> None:
    if x.shape[1] < 2:
        raise ValueError(
            f"{what} needs colour images (C > 1 channels, such as RGB), but the images have "
            f"shape {x.shape} with C = {x.shape[1]}; use 'translation' and 'cutout' on "
            "grey images"
        )


def _per_sample(values: np.ndarray, like: Tensor) -> Tensor:
    """One CPU draw per sample as a constant (N, 1, 1, 1) on ``like``'s device and dtype."""
    return Tensor(like.xp.asarray(values.reshape(-1, 1, 1, 1), dtype=like.dtype))


def _side(size: int, ratio: float) -> int:
    """The reference code's rounding: int(size * ratio + 0.5)."""
    return int(size * ratio + 0.5)


# -------------------------------------------------------------------------- transforms


def translation(x: Tensor, rng: np.random.Generator, ratio: float = 0.125) -> Tensor:
    """Shift each image by whole pixels, filling with zeros.

        y[n, c, i, j] = x[n, c, i + t_n, j + s_n]   (0 outside the image)

    with t_n uniform in {-a..a}, s_n in {-b..b}, a = int(H * ratio + 0.5) and
    b = int(W * ratio + 0.5), drawn in that order (``rng.integers``, N of each).

    Composed as ``pad2d(x, (a, b))`` then ``getitem`` with the integer index arrays
    (n, c, i + t_n + a, j + s_n + b), which never leave the padded image. The gradient is the
    adjoint: dL/dx = the centre of scatter_add(dL/dy) (each pixel read at most once per
    sample, so it gets the gradient of the one output it moved to, or none).

    Args:
        x: (N, C, H, W) images.
        rng: the NumPy Generator the shifts are drawn from.
        ratio: the largest shift as a fraction of each side, in [0, 1).

    Returns:
        (N, C, H, W), the same dtype and device as ``x``.
    """
    _check_images(x, "translation")
    _check_rng(rng, "translation")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"translation: ratio must be in [0, 1), got {ratio}")
    n, c, h, w = x.shape
    a, b = _side(h, ratio), _side(w, ratio)
    t = rng.integers(-a, a + 1, size=n)
    s = rng.integers(-b, b + 1, size=n)
    xp = x.xp
    rows = xp.arange(h).reshape(1, h) + xp.asarray(t + a).reshape(n, 1)  # (N, H)
    cols = xp.arange(w).reshape(1, w) + xp.asarray(s + b).reshape(n, 1)  # (N, W)
    index = (
        xp.arange(n).reshape(n, 1, 1, 1),
        xp.arange(c).reshape(1, c, 1, 1),
        rows.reshape(n, 1, h, 1),
        cols.reshape(n, 1, 1, w),
    )  # broadcasts to (N, C, H, W)
    return ops.getitem(ops.pad2d(x, (a, b)), index)


def cutout(x: Tensor, rng: np.random.Generator, ratio: float = 0.5) -> Tensor:
    """Zero one square of each image, at a random centre, clipped at the borders.

        y = x * m,   m[n, 0, i, j] = 0 inside the square, 1 outside

    The square is k = int(H * ratio + 0.5) rows by l = int(W * ratio + 0.5) columns, rows
    r_n - k//2 .. r_n - k//2 + k - 1 (and the same for columns with q_n, l), where the
    centre r_n is uniform in {0..H - 1 + [k even]} and q_n in {0..W - 1 + [l even]}, drawn in
    that order (the reference code's ranges). dL/dx = m * dL/dy.

    Args:
        x: (N, C, H, W) images.
        rng: the NumPy Generator the centres are drawn from.
        ratio: the square's side as a fraction of each side of the image, in [0, 1].

    Returns:
        (N, C, H, W), the same dtype and device as ``x``.
    """
    _check_images(x, "cutout")
    _check_rng(rng, "cutout")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"cutout: ratio must be in [0, 1], got {ratio}")
    n, _, h, w = x.shape
    k, l = _side(h, ratio), _side(w, ratio)  # noqa: E741 (the formula's name)
    r = rng.integers(0, h + (1 - k % 2), size=n)
    q = rng.integers(0, w + (1 - l % 2), size=n)
    xp = x.xp
    top = xp.asarray(r - k // 2).reshape(n, 1)
    left = xp.asarray(q - l // 2).reshape(n, 1)
    i, j = xp.arange(h).reshape(1, h), xp.arange(w).reshape(1, w)
    in_rows = (i >= top) & (i < top + k)  # (N, H)
    in_cols = (j >= left) & (j < left + l)  # (N, W)
    inside = in_rows.reshape(n, 1, h, 1) & in_cols.reshape(n, 1, 1, w)  # (N, 1, H, W)
    # A constant: the mask depends on the draws only, never on x.
    mask = Tensor((~inside).astype(x.dtype))
    return ops.mul(x, mask)


def brightness(x: Tensor, rng: np.random.Generator) -> Tensor:
    """y = x + (u_n - 1/2), u_n ~ U(0, 1) per sample (``rng.random``).  dL/dx = dL/dy."""
    _check_images(x, "brightness")
    _check_rng(rng, "brightness")
    return ops.add(x, _per_sample(rng.random(x.shape[0]) - 0.5, x))


def saturation(x: Tensor, rng: np.random.Generator) -> Tensor:
    """y = (x - mean_C x) * 2 u_n + mean_C x, u_n ~ U(0, 1) per sample (``rng.random``).

    mean_C is the mean over the channels of each pixel (the grey level): 2 u_n in [0, 2]
    scales the colour's distance from grey, from grey (0) to twice as vivid (2).
    dL/dx = 2 u_n (dL/dy - mean_C dL/dy) + mean_C dL/dy, broadcast over C.
    """
    _check_images(x, "saturation")
    _check_rng(rng, "saturation")
    _check_colour(x, "saturation")
    grey = ops.mean(x, axis=1, keepdims=True)  # (N, 1, H, W)
    scale = _per_sample(rng.random(x.shape[0]) * 2.0, x)
    return ops.add(ops.mul(ops.sub(x, grey), scale), grey)


def contrast(x: Tensor, rng: np.random.Generator) -> Tensor:
    """y = (x - mean x) * (u_n + 1/2) + mean x, u_n ~ U(0, 1) per sample (``rng.random``).

    mean x is the mean of each image over C, H and W: u_n + 1/2 in [1/2, 3/2] scales every
    value's distance from it. dL/dx = (u_n + 1/2) (dL/dy - mean dL/dy) + mean dL/dy.
    """
    _check_images(x, "contrast")
    _check_rng(rng, "contrast")
    centre = ops.mean(x, axis=(1, 2, 3), keepdims=True)  # (N, 1, 1, 1)
    scale = _per_sample(rng.random(x.shape[0]) + 0.5, x)
    return ops.add(ops.mul(ops.sub(x, centre), scale), centre)


# ------------------------------------------------------------------------------ policy

Transform = Callable[[Tensor, np.random.Generator], Tensor]

#: Each policy name and the transforms it applies, in order (the reference code's table).
POLICIES: dict[str, tuple[Transform, ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str | Sequence[str], channels: int | None = None) -> tuple[str, ...]:
    """The policy's names, checked: a comma-separated string or a sequence of names.

    "" (or an empty sequence) is no augmentation. A training loop can call this when it
    reads its flags, before any image exists; ``channels`` (C of the images, when known)
    also checks that "color" meets colour images.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones), or "color"
            with ``channels == 1``.
        TypeError: when ``policy`` is neither a string nor a sequence of strings.
    """
    if isinstance(policy, str):
        names = tuple(p.strip() for p in policy.split(",")) if policy.strip() else ()
    elif isinstance(policy, Sequence) and all(isinstance(p, str) for p in policy):
        names = tuple(policy)
    else:
        raise TypeError(
            "diff_augment: policy must be a string such as 'translation,cutout' or a "
            f"sequence of names, got {policy!r}"
        )
    valid = ", ".join(repr(name) for name in POLICIES)
    for name in names:
        if name not in POLICIES:
            raise ValueError(
                f"diff_augment: unknown augmentation {name!r} in policy {policy!r}; "
                f"the valid names are {valid}"
            )
    if "color" in names and channels is not None and channels < 2:
        raise ValueError(
            f"diff_augment: 'color' needs colour images (C > 1 channels, such as RGB), but "
            f"the images have C = {channels}; use 'translation' and 'cutout' on grey images"
        )
    return names


def diff_augment(x: Tensor, policy: str | Sequence[str], rng: np.random.Generator) -> Tensor:
    """Apply the policy's random, differentiable transforms to a batch of images, in order.

    Call it on the real and on the fake images before every use of D, in D's step and in
    G's (see the module docstring for why, and the math of each transform).

    Args:
        x: (N, C, H, W) images, such as a real batch or G(z).
        policy: names from "translation", "cutout" and "color" (brightness, saturation,
            contrast), as "translation,cutout" or ["translation", "cutout"]; "" applies
            nothing and returns ``x``.
        rng: the NumPy Generator every draw comes from; the same state gives the same
            augmentation, on every device.

    Returns:
        The augmented batch, (N, C, H, W), the same dtype and device as ``x``, connected
        to ``x`` in the graph (the gradient reaches G).

    Raises:
        ValueError: an unknown name, "color" on 1-channel images, or ``x`` not 4-D.
    """
    _check_images(x, "diff_augment")
    _check_rng(rng, "diff_augment")
    names = parse_policy(policy, channels=x.shape[1])  # all checked before any draw
    for name in names:
        for transform in POLICIES[name]:
            x = transform(x, rng)
    return x
