"""tinygan.utils.images (grids, strips, loss plots) and tinygan.utils.fileio.atomic_write."""

import os
import time

import numpy as np
import pytest
from PIL import Image, ImageSequence

import tinygan as tg
from tinygan import data
from tinygan.utils import fileio, images
from tinygan.utils.fileio import atomic_write


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


# --------------------------------------------------------------------------- grids
def test_grid_size_layout_and_known_pixels(tmp_path):
    batch = -np.ones((5, 1, 4, 6), np.float32)  # black tiles...
    batch[4] = 1.0  # ...but image 4, at row 1, column 1 of a 3-wide grid, is white
    batch[0, 0, 1, 2] = 0.0  # mid grey: round(127.5) = 128
    images.save_grid(batch, tmp_path / "grid.png", nrow=3, padding=2, pad_value=1.0)
    with Image.open(tmp_path / "grid.png") as image:
        assert image.mode == "L"
        assert image.size == (3 * (6 + 2) + 2, 2 * (4 + 2) + 2)  # (width, height)
    p = pixels(tmp_path / "grid.png")
    assert p[0, 0] == 255  # padding (pad_value 1 = white)
    assert p[2, 2] == 0  # first pixel of image 0
    assert p[2 + 1, 2 + 2] == 128
    top, left = 2 + 1 * (4 + 2), 2 + 1 * (6 + 2)
    assert (p[top : top + 4, left : left + 6] == 255).all()  # image 4
    assert (p[top : top + 4, left - 2 : left] == 255).all()  # padding between tiles
    assert (p[top:, 2 + 2 * 8 :] == 255).all()  # empty slot after the last image: padding


def test_rgb_grid_colours_clipping_and_nan(tmp_path):
    batch = np.zeros((4, 3, 2, 2), np.float32)
    batch[0] = np.array([1.0, -1.0, -1.0])[:, None, None]  # red
    batch[1] = 5.0  # clipped to white
    batch[2] = np.nan  # mid grey
    images.save_grid(batch, tmp_path / "rgb.png", padding=1)  # default: 2 x 2 grid
    p = pixels(tmp_path / "rgb.png")
    assert p.shape == (2 * 3 + 1, 2 * 3 + 1, 3)
    assert p[0, 0].tolist() == [0, 0, 0]  # default padding is black
    assert p[1, 1].tolist() == [255, 0, 0]
    assert p[1, 4].tolist() == [255, 255, 255]
    assert p[4, 1].tolist() == [128, 128, 128]
    assert p[4, 4].tolist() == [128, 128, 128]  # 0.0 is mid grey too


def test_grid_accepts_tensors_and_greyscale_without_channel_axis(tmp_path):
    images.save_grid(tg.tensor(np.ones((3, 1, 5, 5))), tmp_path / "t.png", padding=0)
    assert pixels(tmp_path / "t.png").shape == (10, 10)  # ceil(sqrt(3)) = 2 columns
    images.save_grid(np.ones((10, 5, 5)), tmp_path / "nested" / "dir" / "g.png", padding=0)
    assert pixels(tmp_path / "nested" / "dir" / "g.png").shape == (15, 20)  # 4 columns


@pytest.mark.parametrize("shape", [(0, 1, 4, 4), (2, 2, 4, 4), (4, 4), (1, 1, 1, 4, 4)])
def test_grid_rejects_bad_shapes(tmp_path, shape):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        images.save_grid(np.zeros(shape), tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def test_strip_is_one_row(tmp_path):
    images.save_strip(np.zeros((7, 3, 8, 8)), tmp_path / "strip.png", padding=2)
    assert pixels(tmp_path / "strip.png").shape == (8 + 4, 7 * 10 + 2, 3)


# --------------------------------------------------------------------------- loss plots
def test_loss_plot_is_written_and_drawn(tmp_path):
    rng = np.random.default_rng(0)
    steps = np.arange(500)
    d = 0.5 + 0.2 * np.exp(-steps / 100) + 0.05 * rng.standard_normal(500)
    g = 1.0 + 0.2 * rng.standard_normal(500)
    g[[10, 11, 300]] = [np.nan, np.inf, -np.inf]
    images.save_loss_plot({"D": d, "G": g}, tmp_path / "loss.png", title="LSGAN")
    p = pixels(tmp_path / "loss.png")
    assert p.shape == (540, 960, 3)
    colours = np.unique(p.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], np.int32))
    assert len(colours) > 100  # lines, text, anti-aliasing
    blue = (np.abs(p.astype(int) - [31, 119, 180]).sum(-1) < 30).sum()
    orange = (np.abs(p.astype(int) - [255, 127, 14]).sum(-1) < 30).sum()
    assert blue > 500 and orange > 500  # both averaged curves (and legend swatches) drawn
    assert (p[0, 0] == 255).all()  # white margin


@pytest.mark.parametrize(
    "curves, kwargs",
    [
        ({}, {}),
        ({"D": []}, {}),
        ({"D": [1.0]}, {}),
        ({"D": [np.nan, np.inf]}, {}),
        ({"D": [2.0, 2.0, 2.0]}, {"smooth": 0}),
        ({"D": [1.0, 2.0], "G": [3.0, 4.0]}, {"steps": [0, 100]}),
        ({f"c{i}": np.arange(30.0) * i for i in range(12)}, {"smooth": 5}),
    ],
)
def test_loss_plot_edge_cases(tmp_path, curves, kwargs):
    images.save_loss_plot(curves, tmp_path / "loss.png", **kwargs)
    assert pixels(tmp_path / "loss.png").shape == (540, 960, 3)


def test_loss_plot_steps_must_match(tmp_path):
    with pytest.raises(ValueError, match="'G' has 3 values but steps has 2"):
        images.save_loss_plot({"G": [1, 2, 3]}, tmp_path / "loss.png", steps=[0, 1])


def test_loss_plot_axis_labels_and_legend_corner(tmp_path):
    curves = {"discriminator loss": np.full(50, 0.5)}  # a flat line: the corners stay empty
    images.save_loss_plot(curves, tmp_path / "a.png")
    images.save_loss_plot(curves, tmp_path / "b.png", xlabel="logit", ylabel="|gradient|")
    a, b = pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png")
    rows, cols = np.nonzero(np.any(a != b, axis=-1))
    assert rows.size > 0  # the labels changed, and nothing but the labels:
    assert np.all((rows > 540 - 64 + 20) | (cols < 40))  # under the plot, left of the ticks

    images.save_loss_plot(curves, tmp_path / "c.png", legend="lower left")
    c = pixels(tmp_path / "c.png")

    def dark_text_in_lower_left(p):  # inside the plot frame, the bottom-left quarter
        return int(np.all(p[300:470, 90:480] < 80, axis=-1).sum())

    assert dark_text_in_lower_left(a) == 0 and dark_text_in_lower_left(c) > 50
    with pytest.raises(ValueError, match="legend must be one of"):
        images.save_loss_plot(curves, tmp_path / "d.png", legend="middle")
    assert not (tmp_path / "d.png").exists()


def test_moving_average():
    np.testing.assert_allclose(images.moving_average([1, 2, 3, 4, 5], 3), [1.5, 2, 3, 4, 4.5])
    np.testing.assert_allclose(images.moving_average([1, np.nan, 3], 3), [1, 2, 3])
    np.testing.assert_allclose(images.moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    out = images.moving_average([np.inf, 1.0], 1)
    assert np.isnan(out[0]) and out[1] == 1
    assert np.isnan(images.moving_average([np.nan, np.nan], 3)).all()


# --------------------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        f.write(b"new")
        assert target.read_bytes() == b"old"  # unchanged until the block ends
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_atomic_write_keeps_the_old_file_when_the_writer_raises(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_write(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "never.bin"):
        raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_atomic_write_removes_temp_files_left_by_a_killed_writer(tmp_path):
    target = tmp_path / "checkpoint.npz"

    def leftover(path, age_s):
        tmp, fd = fileio._create_temp_beside(path)  # what a writer killed with -9 leaves
        os.write(fd, b"half a checkpoint")
        os.close(fd)
        then = time.time() - age_s
        os.utime(tmp, (then, then))
        return tmp.name

    stale = fileio.STALE_AFTER_S + 60
    dead = [leftover(target, stale), leftover(target, 10 * stale)]
    live = leftover(target, fileio.STALE_AFTER_S - 60)  # perhaps a writer still at work
    other_target = leftover(tmp_path / "other.npz", stale)
    unlike = [".checkpoint.npz.0123.tmp", ".checkpoint.npz.mine.tmp", "checkpoint.npz.tmp"]
    for name in unlike:
        (tmp_path / name).write_bytes(b"not atomic_write's")
        os.utime(tmp_path / name, (time.time() - stale, time.time() - stale))

    with atomic_write(target) as f:
        f.write(b"new")
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"checkpoint.npz", live, other_target, *unlike}
    assert not names & set(dead)
    assert target.read_bytes() == b"new"


def test_atomic_write_honours_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "f") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640


def test_failed_png_save_keeps_the_previous_grid(monkeypatch, tmp_path):
    path = tmp_path / "grid.png"
    images.save_grid(np.ones((1, 1, 2, 2)), path, padding=0)
    before = path.read_bytes()

    def broken_save(self, *args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="no space"):
        images.save_grid(-np.ones((1, 1, 2, 2)), path, padding=0)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


# --------------------------------------------------------------------------- animations
def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(image)]


def digit_grids(count: int) -> list[np.ndarray]:
    """``count`` batches of 64 real digits (8 x 8 grids), float32 in [-1, 1]."""
    pictures, _ = data.load_mnist("test", root=data.bundled_dataset_dir(), download=False)
    rng = np.random.default_rng(0)
    return [data.images_to_float(pictures[rng.choice(8000, 64)])[:, None] for _ in range(count)]


def test_gif_has_a_labelled_frame_per_step_and_stays_small(tmp_path):
    grids = digit_grids(20)
    steps = list(range(0, 2000, 100))
    images.save_gif(grids, tmp_path / "progress.gif", steps=steps)
    path = tmp_path / "progress.gif"
    assert path.stat().st_size < 250_000  # 196 KB: 20 frames of 64 real digits
    with Image.open(path) as gif:
        assert gif.n_frames == 20 and gif.info["loop"] == 0
        durations = []
        for frame in ImageSequence.Iterator(gif):
            durations.append(frame.info["duration"])
        assert durations == [250] * 19 + [1500]
    frames = gif_frames(path)
    grid_side = 8 * (28 + 2) + 2
    band = frames[0].shape[0] - grid_side
    assert frames[0].shape[1] == grid_side and 10 <= band <= 40
    for frame, grid in zip(frames, grids):
        images.save_grid(grid, tmp_path / "grid.png", nrow=8)
        spacing = 255 / 15  # 16 grey levels
        expected = np.rint(np.rint(pixels(tmp_path / "grid.png") / spacing) * spacing)
        np.testing.assert_array_equal(frame[band:], expected)  # the grid, below the band
        assert len(np.unique(frame[band:])) <= 16
        assert frame[:band].max() == 255 and np.mean(frame[:band] == 0) > 0.7  # white text
    for a, b in zip(frames, frames[1:]):
        assert not np.array_equal(a[:band], b[:band])  # every label differs from the last


def test_gif_of_grid_pngs_reads_the_steps_from_the_file_names(tmp_path):
    grids = digit_grids(3)
    paths = []
    for step, grid in zip([100, 2000, 30000], grids):
        paths.append(tmp_path / "samples" / f"step_{step:06d}.png")
        images.save_grid(grid, paths[-1], nrow=8)
    images.save_gif(paths, tmp_path / "from_png.gif")
    images.save_gif(grids, tmp_path / "from_arrays.gif", steps=[100, 2000, 30000], nrow=8)
    from_png, from_arrays = (
        gif_frames(tmp_path / "from_png.gif"),
        gif_frames(tmp_path / "from_arrays.gif"),
    )
    assert len(from_png) == 3
    assert all(np.array_equal(a, b) for a, b in zip(from_png, from_arrays))


def test_gif_of_colour_grids_keeps_the_colours(tmp_path):
    red = -np.ones((4, 3, 8, 8), np.float32)
    red[:, 0] = 1.0
    images.save_gif([red, -red], tmp_path / "colour.gif", steps=[1, 2])
    with Image.open(tmp_path / "colour.gif") as gif:
        first = np.asarray(gif.convert("RGB"))
    assert first.shape[1] == 2 * 10 + 2
    assert first[-3, 3].tolist() == [255, 0, 0]  # inside the bottom-left image


def test_gif_refuses_bad_frames_and_writes_nothing(tmp_path):
    grid = np.zeros((4, 1, 8, 8), np.float32)
    target = tmp_path / "bad.gif"
    cases = [
        (([], target), {}, "at least one frame"),
        (([grid, np.zeros((9, 1, 8, 8))], target), {"steps": [1, 2]}, "frame 1 is 32x32"),
        (([grid, grid], target), {"steps": [1]}, "2 frames but 1 steps"),
        (([grid], target), {}, "given as images: pass steps"),
        (([tmp_path / "grid.png"], target), {}, "no number in its name"),
        (([grid], target), {"steps": [1], "grey_levels": 1}, "grey_levels must be in 2..256"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            images.save_gif(*args, **kwargs)
    assert not target.exists()


def test_failed_gif_save_keeps_the_previous_gif(monkeypatch, tmp_path):
    path = tmp_path / "progress.gif"
    grid = np.zeros((4, 1, 8, 8), np.float32)
    images.save_gif([grid, grid], path, steps=[1, 2])
    before = path.read_bytes()

    def broken_save(self, *args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="no space"):
        images.save_gif([grid, -grid, grid], path, steps=[1, 2, 3])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["progress.gif"]


# --------------------------------------------------------------------------- score curves
def test_metrics_plot_draws_a_panel_per_score_with_the_real_floor(tmp_path):
    rows = [
        {
            "step": str(s),
            "fd": str(2000 / (1 + s / 100)),
            "inception_score": str(1 + s / 250),
            "speckle": str(3.0 / (1 + s / 500)),
            "classes": "10",
        }
        for s in range(0, 2001, 250)
    ]  # fmt: skip  (strings, as csv.DictReader gives them)
    floor = {"fd": 5.3, "inception_score": 9.8, "speckle": 0.09}
    images.save_metrics_plot(rows, tmp_path / "metrics.png", floor=floor)
    p = pixels(tmp_path / "metrics.png")
    assert p.shape == (3 * 300, 960, 3)
    for panel in range(3):
        r, _, b = p[panel * 300 : (panel + 1) * 300].astype(int).transpose(2, 0, 1)
        blue, orange = (b - r > 80).sum(), ((r > 200) & (r - b > 120)).sum()  # anti-aliased too
        assert blue > 600 and orange > 600, panel  # the scores and the floor line

    images.save_metrics_plot(rows, tmp_path / "one.png", names=["classes"])
    assert pixels(tmp_path / "one.png").shape == (300, 960, 3)
    with pytest.raises(ValueError, match=r"rows \[0, 1, 2, 3, 4, 5, 6, 7, 8\] have no 'ssim'"):
        images.save_metrics_plot(rows, tmp_path / "bad.png", names=["fd", "ssim"])
    with pytest.raises(ValueError, match="at least one row"):
        images.save_metrics_plot([], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
