"""Pictures of training: sample grids, strips, loss and score curves (PNG), animations (GIF).

Only Pillow is used (no matplotlib), and every file is written atomically, so a viewer
refreshing ``samples/latest.png`` never catches half a file.

Images come in the generator's convention: float ``(N, C, H, W)`` in [-1, 1] with C = 1
(grey) or 3 (RGB); a pixel value x becomes the byte ``round((x + 1) * 127.5)``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tinygan.backend import to_numpy
from tinygan.utils.fileio import atomic_write

PathLike = str | os.PathLike[str]


def _save_png(image: Image.Image, path: PathLike) -> None:
    """Write ``image`` as a PNG at ``path`` atomically, creating missing parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        image.save(f, format="PNG")


def _to_bytes(x: np.ndarray) -> np.ndarray:
    """[-1, 1] floats to uint8; out-of-range values clip, NaN shows as mid grey."""
    x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.rint((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


# --------------------------------------------------------------------------- sample grids
def save_grid(
    images: Any,
    path: PathLike,
    nrow: int | None = None,
    padding: int = 2,
    pad_value: float = -1.0,
) -> None:
    """Tile a batch of images into one PNG, row by row.

    Image ``i`` goes to row ``i // nrow``, column ``i % nrow``; every tile is surrounded
    by ``padding`` pixels of ``pad_value``, so the file is
    ``cols * (W + padding) + padding`` pixels wide and ``rows * (H + padding) + padding``
    high. One channel gives a greyscale PNG, three an RGB one.

    Args:
        images: float ``(N, C, H, W)`` in [-1, 1], C in {1, 3}, or ``(N, H, W)`` for grey:
            a NumPy or CuPy array, or a Tensor.
        path: the PNG file to write (parent folders are created).
        nrow: images per row (torchvision's meaning); default ``ceil(sqrt(N))``, a square.
        padding: pixels between tiles and around the border.
        pad_value: colour of the padding in image units: -1 black, 1 white.

    Raises:
        ValueError: an empty batch, or a shape that is not (N, C, H, W) with C in {1, 3}.
    """
    _save_png(_grid_image(images, nrow, padding, pad_value), path)


def _grid_image(images: Any, nrow: int | None, padding: int, pad_value: float) -> Image.Image:
    """The grid of :func:`save_grid` as a Pillow image ("L" for grey, "RGB" for colour)."""
    array = images.numpy() if hasattr(images, "numpy") else to_numpy(images)  # Tensor, CuPy
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[1] not in (1, 3) or len(array) == 0:
        raise ValueError(
            f"save_grid needs a non-empty (N, C, H, W) batch with C in {{1, 3}}, "
            f"got shape {array.shape}"
        )
    n, channels, height, width = array.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    step_y, step_x = height + padding, width + padding
    grid = np.full(
        (channels, rows * step_y + padding, cols * step_x + padding), pad_value, np.float32
    )
    for i in range(n):
        row, col = divmod(i, cols)
        top, left = padding + row * step_y, padding + col * step_x
        grid[:, top : top + height, left : left + width] = array[i]
    pixels = _to_bytes(grid)  # (C, H, W)
    return Image.fromarray(pixels[0] if channels == 1 else pixels.transpose(1, 2, 0))


def save_strip(images: Any, path: PathLike, padding: int = 2, pad_value: float = -1.0) -> None:
    """All images in one row: a walk through latent space, say. Arguments as :func:`save_grid`."""
    save_grid(images, path, nrow=len(images), padding=padding, pad_value=pad_value)


# --------------------------------------------------------------------------- animations
def save_gif(
    frames: Sequence[Any],
    path: PathLike,
    steps: Sequence[int] | None = None,
    nrow: int | None = None,
    duration_ms: int = 250,
    last_ms: int = 1500,
    grey_levels: int = 16,
) -> None:
    """Animate sample grids into a looping GIF, each frame labelled with its step.

    Each frame is a grid (:func:`save_grid`'s layout, padding 2, black) with a black band
    above it that reads ``step 1,000`` in white: watch a generator learn. Frames are shown
    ``duration_ms`` each, the last one ``last_ms``, and the animation loops forever.

    Grey grids give a grey GIF with ``grey_levels`` evenly spaced levels: a GIF compresses
    runs of equal pixels (LZW), and a generator's almost-black background, one level less
    here and one more there, breaks them; 16 levels look the same as 256 in a preview (the
    PNG grids keep every level). Twenty frames of an 8 x 8 grid of 28 x 28 digits take
    200 KB for real digits, 370 KB for an MLP GAN's speckled samples of steps 100 to 2,000
    (840 KB in 256 levels). If any frame is in colour, every frame is drawn in RGB and
    Pillow reduces each to a 256-colour palette.

    Args:
        frames: the grids in order, each a batch of images (:func:`save_grid`'s input) or
            the path of a grid PNG (e.g. ``samples/step_001000.png``); all the same size.
        path: the GIF file to write, atomically (parent folders are created).
        steps: the step of each frame; default: the last number in each PNG's file name.
        nrow: images per row of the batches; default a square.
        duration_ms: how long each frame is shown.
        last_ms: how long the last frame is shown, before the animation starts again.
        grey_levels: grey levels of a grey GIF, 2 to 256.

    Raises:
        ValueError: no frames, frames of different sizes, a ``steps`` of another length,
            no ``steps`` for a frame that is not a file named with its step, or
            ``grey_levels`` outside 2..256.
    """
    if len(frames) == 0:
        raise ValueError("save_gif needs at least one frame")
    if not 2 <= grey_levels <= 256:
        raise ValueError(f"save_gif: grey_levels must be in 2..256, got {grey_levels}")
    if steps is None:
        steps = [_step_in_name(frame) for frame in frames]
    if len(steps) != len(frames):
        raise ValueError(f"save_gif: {len(frames)} frames but {len(steps)} steps")
    grids = [_frame_image(frame, nrow) for frame in frames]
    mode = "RGB" if any(grid.mode != "L" for grid in grids) else "L"
    for i, grid in enumerate(grids):
        if grid.size != grids[0].size:
            raise ValueError(
                f"save_gif: frame {i} is {grid.size[0]}x{grid.size[1]} pixels, frame 0 "
                f"{grids[0].size[0]}x{grids[0].size[1]}; every grid must have the same size"
            )
    if mode == "L":
        spacing = 255 / (grey_levels - 1)
        grids = [grid.point([round(round(v / spacing) * spacing) for v in range(256)])
                 for grid in grids]  # fmt: skip
    labelled = [
        _label_above(grid.convert(mode), f"step {step:,}") for grid, step in zip(grids, steps)
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [duration_ms] * (len(labelled) - 1) + [last_ms]
    with atomic_write(path) as f:
        labelled[0].save(
            f, format="GIF", save_all=True, append_images=labelled[1:], duration=durations, loop=0
        )


def _frame_image(frame: Any, nrow: int | None) -> Image.Image:
    """A grid PNG's path or a batch of images, as a Pillow image."""
    if isinstance(frame, (str, os.PathLike)):
        with Image.open(frame) as image:
            return image.convert("L" if image.mode in ("L", "1", "I", "I;16") else "RGB")
    return _grid_image(frame, nrow, padding=2, pad_value=-1.0)


def _step_in_name(frame: Any) -> int:
    """The last number in a frame file's name: 1000 for ``samples/step_001000.png``."""
    if isinstance(frame, (str, os.PathLike)):
        numbers = re.findall(r"\d+", Path(frame).stem)
        if numbers:
            return int(numbers[-1])
        what = f"{os.fspath(frame)!r} (no number in its name)"
    else:
        what = "given as images"
    raise ValueError(f"save_gif: cannot tell the step of a frame {what}: pass steps=[...]")


def _label_above(image: Image.Image, text: str) -> Image.Image:
    """``image`` under a black band that shows ``text`` in white, left-aligned."""
    size = max(10, min(24, image.width // 16))  # text height in pixels
    band = size + size // 2
    out = Image.new(image.mode, (image.width, image.height + band), 0)
    out.paste(image, (0, band))
    white = 255 if image.mode == "L" else (255, 255, 255)
    ImageDraw.Draw(out).text(
        (size // 3, band // 2), text, fill=white, font=_font(size), anchor="lm"
    )
    return out


# --------------------------------------------------------------------------- loss curves
_WIDTH, _HEIGHT = 960, 540  # output pixels
_SUPERSAMPLE = 2  # draw at twice the size and shrink: anti-aliased lines and text
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 84, 28, 52, 64
_COLOURS = (  # matplotlib's "tab10", the colours people read loss curves in
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
_INK, _GRID, _FAINT_TEXT = (34, 34, 34), (228, 228, 228), (110, 110, 110)
_LEGEND_CORNERS = ("upper right", "upper left", "lower right", "lower left")


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Centred moving average that skips NaN and inf and shrinks its window at the ends.

    Point ``i`` becomes the mean of the finite values among ``values[i - window // 2 :
    i - window // 2 + window]``, or NaN if there is none; the result has the input's length.
    """
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    if window <= 1:
        return np.where(finite, x, np.nan)
    kernel = np.ones(window)
    sums = np.convolve(np.where(finite, x, 0.0), kernel, mode="full")
    counts = np.convolve(finite.astype(np.float64), kernel, mode="full")
    start = (window - 1) // 2  # "full" output index of the window centred on point 0
    sums, counts = sums[start : start + len(x)], counts[start : start + len(x)]
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def save_loss_plot(
    curves: Mapping[str, Sequence[float]],
    path: PathLike,
    title: str | None = None,
    steps: Sequence[float] | None = None,
    smooth: int | None = None,
    xlabel: str = "step",
    ylabel: str = "loss",
    legend: str = "upper right",
) -> None:
    """Draw loss curves against training steps into a PNG, with axes, ticks and a legend.

    Any curves can be drawn against any x values (give them as ``steps``, and name the
    axes with ``xlabel`` and ``ylabel``); x ticks are placed at whole numbers.

    GAN losses are noisy, so each curve is drawn twice: the raw values as a thin pale line
    and their centred moving average (:func:`moving_average`) as a bold line on top. NaN
    and inf values are left out (the line breaks there) and counted in the legend. The
    y-range covers the 1st to 99th percentile of the raw values and all of the averages, so
    one early spike does not flatten the rest; values outside are drawn at the border.

    Args:
        curves: curve name -> loss values, e.g. ``{"D": d_losses, "G": g_losses}``.
        path: the PNG file to write (parent folders are created).
        title: text above the plot.
        steps: the x value of each entry (when losses are logged every k steps); default
            0, 1, 2, ... Every curve must then have ``len(steps)`` values.
        smooth: moving-average window in entries; default about 1/40 of the longest curve;
            0 or 1 draws the raw values only.
        xlabel: text under the x axis.
        ylabel: text beside the y axis.
        legend: the corner of the plot that holds the legend: "upper right", "upper left",
            "lower right" or "lower left".

    Raises:
        ValueError: a curve's length differs from ``len(steps)``, or an unknown ``legend``.
    """
    _save_png(_plot(curves, title, steps, smooth, xlabel, ylabel, legend), path)


def _plot(
    curves: Mapping[str, Sequence[float]],
    title: str | None,
    steps: Sequence[float] | None,
    smooth: int | None,
    xlabel: str,
    ylabel: str,
    legend: str,
    size: tuple[int, int] = (_WIDTH, _HEIGHT),
) -> Image.Image:
    """The picture of :func:`save_loss_plot`, ``size`` (width, height) pixels."""
    if legend not in _LEGEND_CORNERS:
        raise ValueError(f"legend must be one of {_LEGEND_CORNERS}, got {legend!r}")
    series = []  # (name, x, raw y, smoothed y or None)
    longest = max((len(v) for v in curves.values()), default=0)
    window = max(1, longest // 40) if smooth is None else max(1, smooth)
    for name, values in curves.items():
        y = np.asarray(values, dtype=np.float64).reshape(-1)
        if steps is None:
            x = np.arange(len(y), dtype=np.float64)
        else:
            x = np.asarray(steps, dtype=np.float64).reshape(-1)
            if len(x) != len(y):
                raise ValueError(f"curve {name!r} has {len(y)} values but steps has {len(x)}")
        series.append((name, x, y, moving_average(y, window) if window > 1 else None))

    (x_lo, x_hi), (y_lo, y_hi) = _data_limits(series)
    s, (width, height) = _SUPERSAMPLE, size
    canvas = Image.new("RGB", (width * s, height * s), "white")
    draw = ImageDraw.Draw(canvas)
    font, small = _font(13 * s), _font(12 * s)
    left, top = _MARGIN_LEFT * s, _MARGIN_TOP * s
    right, bottom = (width - _MARGIN_RIGHT) * s, (height - _MARGIN_BOTTOM) * s

    def px(x: Any) -> Any:  # step -> pixel column (scalar or array)
        return left + (x - x_lo) / (x_hi - x_lo) * (right - left)

    def py(y: Any) -> Any:  # loss -> pixel row; off-scale values sit on the border, inf -> NaN
        y = np.clip(np.where(np.isfinite(y), y, np.nan), y_lo, y_hi)
        return bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)

    # Grid, ticks and tick labels.
    for value, label in _ticks(y_lo, y_hi):
        row = py(value)
        draw.line([(left, row), (right, row)], fill=_GRID, width=s)
        draw.line([(left - 5 * s, row), (left, row)], fill=_INK, width=s)
        draw.text((left - 8 * s, row), label, fill=_INK, font=font, anchor="rm")
    for value, label in _ticks(x_lo, x_hi, integer=True):
        col = px(value)
        draw.line([(col, top), (col, bottom)], fill=_GRID, width=s)
        draw.line([(col, bottom), (col, bottom + 5 * s)], fill=_INK, width=s)
        draw.text((col, bottom + 8 * s), label, fill=_INK, font=font, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline=_INK, width=s)

    # Axis labels and title.
    draw.text(((left + right) / 2, bottom + 32 * s), xlabel, fill=_INK, font=font, anchor="mt")
    _draw_vertical_text(canvas, ylabel, (18 * s, (top + bottom) // 2), font)
    if title:
        centre = ((left + right) / 2, top - 18 * s)
        draw.text(centre, title, fill=_INK, font=_font(16 * s), anchor="mb")

    # Curves: raw values first (pale and thin under an average), then the averages on top.
    for i, (_, x, y, avg) in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        if avg is None:
            _polyline(draw, px(x), py(y), colour, 2 * s)
        else:
            _polyline(draw, px(x), py(y), tuple(round(c + (255 - c) * 0.65) for c in colour), s)
    for i, (_, x, _, avg) in enumerate(series):
        if avg is not None:
            _polyline(draw, px(x), py(avg), _COLOURS[i % len(_COLOURS)], 2 * s)

    _draw_legend(draw, series, window, legend, (left, top, right, bottom), font, small)
    return canvas.resize((width, height), Image.Resampling.LANCZOS)


_METRIC_PANELS = {  # score -> (panel title, legend corner: where the curve is not at the end)
    "fd": ("Frechet distance (lower is better)", "upper right"),  # the font has no é
    "inception_score": ("inception-style score (higher is better)", "lower right"),
    "speckle": ("speckle: isolated pixels per image (lower is better)", "upper right"),
    "classes": ("digits present (of 10)", "lower right"),
    "class_kl": ("class imbalance: KL from uniform (lower is better)", "upper right"),
}
_PANEL_HEIGHT = 300


def save_metrics_plot(
    rows: Sequence[Mapping[str, Any]],
    path: PathLike,
    names: Sequence[str] = ("fd", "inception_score", "speckle"),
    floor: Mapping[str, float] | None = None,
) -> None:
    """Quality scores against training steps: one panel per score, stacked in one PNG.

    Each panel is a :func:`save_loss_plot` drawing, 960 x 300 pixels, of the raw values
    (evaluations are few, so nothing is smoothed), titled with what the score means.

    Args:
        rows: one mapping per evaluation, holding ``"step"`` and every score in ``names``;
            numbers or numeric strings, e.g. the rows of ``metrics.csv`` read by
            ``csv.DictReader``, or ``{"step": s, **scores.as_dict()}``.
        path: the PNG file to write (parent folders are created).
        names: the scores to draw, a panel each, top to bottom.
        floor: score -> the value real images get (``metrics.real_floor().as_dict()``),
            drawn as a flat "real images" line: the target.

    Raises:
        ValueError: no rows, or a row without "step" or one of ``names``.
    """
    if not rows or not names:
        raise ValueError("save_metrics_plot needs at least one row and one score name")
    columns = {}
    for name in ("step", *names):
        missing = [i for i, row in enumerate(rows) if name not in row]
        if missing:
            raise ValueError(f"save_metrics_plot: rows {missing} have no {name!r}")
        columns[name] = [float(row[name]) for row in rows]
    panels = []
    for name in names:
        title, corner = _METRIC_PANELS.get(name, (name, "upper right"))
        curves = {"generated": columns[name]}
        if floor is not None and name in floor:
            curves["real images"] = [float(floor[name])] * len(rows)
        size = (_WIDTH, _PANEL_HEIGHT)
        panels.append(_plot(curves, title, columns["step"], 0, "step", name, corner, size))
    _save_panels(panels, path)


def save_diagnostics_plot(
    history: Mapping[str, Sequence[float]], path: PathLike, title: str | None = None
) -> None:
    """A run's diagnostics against its steps (:mod:`tinygan.utils.diagnostics`), stacked
    panels in one PNG, each smoothed like :func:`save_loss_plot`:

    * D's mean scores ``d_real`` and ``d_fake``: D winning pulls them to their targets;
    * log10 of the gradient norms ``g_grad_norm`` and ``d_grad_norm`` (they span orders of
      magnitude): a generator whose gradient fades has stopped learning;
    * the ``wasserstein`` estimate and the ``penalty``, when the run has a penalty.

    Args:
        history: ``Run.history``: ``"step"`` and those columns, one value per step (NaN
            where a run of an older version recorded none: not drawn).
        path: the PNG file to write (parent folders are created).
        title: text above the first panel.
    """
    steps = history["step"]
    with np.errstate(divide="ignore", invalid="ignore"):  # a norm of 0 is drawn at the border
        norms = {f"log10 {net} gradient norm": np.log10(np.asarray(history[f"{net}_grad_norm"]))
                 for net in ("g", "d")}  # fmt: skip
    scores = {"mean D(x)": history["d_real"], "mean D(G(z))": history["d_fake"]}
    panels = [
        (scores, f"{title}: D's mean scores" if title else "D's mean scores", "score"),
        (norms, "gradient norms of G's and D's parameters", "log10 norm"),
    ]
    if np.nansum(np.abs(history["penalty"])) > 0:
        penalty = {"E[D(x)] - E[D(G(z))]": history["wasserstein"], "penalty": history["penalty"]}
        panels.append((penalty, "Wasserstein estimate and penalty", "value"))
    size = (_WIDTH, _PANEL_HEIGHT)
    _save_panels(
        [_plot(c, t, steps, None, "step", y, "upper right", size) for c, t, y in panels], path
    )


def _save_panels(panels: Sequence[Image.Image], path: PathLike) -> None:
    """Write ``panels`` (each ``_WIDTH`` x ``_PANEL_HEIGHT``) stacked top to bottom."""
    canvas = Image.new("RGB", (_WIDTH, _PANEL_HEIGHT * len(panels)), "white")
    for i, panel in enumerate(panels):
        canvas.paste(panel, (0, i * _PANEL_HEIGHT))
    _save_png(canvas, path)


def _data_limits(series: list) -> tuple[tuple[float, float], tuple[float, float]]:
    """x and y ranges covering the data (robustly in y), never empty."""
    xs, ys = [], []
    for _, x, y, avg in series:
        finite = np.isfinite(y)
        xs.append(x[finite])
        if finite.sum() >= 20:  # enough values for percentiles to mean "ignore rare spikes"
            ys.append(np.percentile(y[finite], [1, 99]))
        else:
            ys.append(y[finite])
        if avg is not None:
            ys.append(avg[np.isfinite(avg)])
    xs_all, ys_all = np.concatenate(xs or [[]]), np.concatenate(ys or [[]])
    if xs_all.size == 0:  # nothing finite to draw: an empty unit frame
        return (0.0, 1.0), (0.0, 1.0)
    x_lo, x_hi = float(xs_all.min()), float(xs_all.max())
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1.0, x_hi + 1.0
    y_lo, y_hi = float(ys_all.min()), float(ys_all.max())
    pad = (y_hi - y_lo) * 0.05 or max(abs(y_lo) * 0.1, 0.5)
    return (x_lo, x_hi), (y_lo - pad, y_hi + pad)


def _ticks(lo: float, hi: float, integer: bool = False, target: int = 6) -> list[tuple[float, str]]:
    """About ``target`` round ticks (1, 2 or 5 times a power of ten) in [lo, hi], labelled.

    Labels get as many decimals as the step needs, or read ``5k, 10k, 15k`` on an axis
    that reaches 10,000 in steps of thousands.
    """
    raw = (hi - lo) / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(step, 1.0)
    values = [float(v) for v in np.arange(math.ceil(lo / step), math.floor(hi / step) + 1) * step]
    if step >= 1000 and max(abs(v) for v in values) >= 10000:
        return [(v, f"{v / 1000:g}k" if v else "0") for v in values]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [(v, f"{v:.{decimals}f}") for v in values]


def _polyline(draw: ImageDraw.ImageDraw, xs: np.ndarray, ys: np.ndarray, colour, width) -> None:
    """Connect consecutive finite points; a NaN or inf value breaks the line."""
    finite = np.isfinite(ys)
    for run in np.split(np.arange(len(xs)), np.flatnonzero(~finite)):
        run = run[finite[run]]
        if len(run) >= 2:
            draw.line(list(zip(xs[run], ys[run])), fill=colour, width=width, joint="curve")
        elif len(run) == 1:
            x, y = xs[run[0]], ys[run[0]]
            draw.ellipse([x - width, y - width, x + width, y + width], fill=colour)


def _draw_legend(draw, series, window, corner, plot_box, font, small) -> None:
    """A framed box in one ``corner`` of the plot: a coloured line and a name per curve."""
    if not series:
        return
    s = _SUPERSAMPLE
    labels = []
    for name, _, y, _ in series:
        bad = int((~np.isfinite(y)).sum())
        labels.append(f"{name}  ({bad} NaN/inf left out)" if bad else str(name))
    note = f"bold: moving average of {window} points" if window > 1 else None
    line_h, swatch, gap = 20 * s, 22 * s, 8 * s
    text_w = max(draw.textbbox((0, 0), t, font=font)[2] for t in labels)
    if note:
        text_w = max(text_w, draw.textbbox((0, 0), note, font=small)[2] - swatch - gap)
    width = 12 * s + swatch + gap + text_w + 12 * s
    height = 8 * s + line_h * (len(labels) + (1 if note else 0)) + 4 * s
    left, top, right, bottom = plot_box
    x0 = left + 10 * s if corner.endswith("left") else right - 10 * s - width
    y0 = top + 10 * s if corner.startswith("upper") else bottom - 10 * s - height
    x1 = x0 + width
    draw.rectangle([x0, y0, x1, y0 + height], fill="white", outline=(200, 200, 200), width=s)
    for i, label in enumerate(labels):
        cy = y0 + 8 * s + line_h * i + line_h // 2
        colour = _COLOURS[i % len(_COLOURS)]
        draw.line([(x0 + 12 * s, cy), (x0 + 12 * s + swatch, cy)], fill=colour, width=3 * s)
        draw.text((x0 + 12 * s + swatch + gap, cy), label, fill=_INK, font=font, anchor="lm")
    if note:
        cy = y0 + 8 * s + line_h * len(labels) + line_h // 2
        draw.text((x0 + 12 * s, cy), note, fill=_FAINT_TEXT, font=small, anchor="lm")


def _draw_vertical_text(canvas: Image.Image, text: str, centre: tuple[int, int], font) -> None:
    """Draw ``text`` rotated 90 degrees counter-clockwise, centred at ``centre``."""
    box = ImageDraw.Draw(canvas).textbbox((0, 0), text, font=font)
    label = Image.new("L", (box[2] + 4, box[3] + 4), 0)
    ImageDraw.Draw(label).text((2, 2), text, fill=255, font=font)
    label = label.rotate(90, expand=True)
    corner = (centre[0] - label.width // 2, centre[1] - label.height // 2)
    canvas.paste(Image.new("RGB", label.size, _INK), corner, mask=label)


def _font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font at ``size`` pixels."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError as e:  # before Pillow 10.1, load_default took no size
        raise RuntimeError("drawing text needs Pillow >= 10.1: pip install -U pillow") from e
